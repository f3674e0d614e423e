"""The anomaly map's border drawn from features with another neighbourhood padding (option ``map_padding``).

Why: the two paddings of the 3x3 neighbourhood average (`features.embed`)
are each better at one thing. ``zeros`` (anomalib's) shrinks border
features, and the map it gives ranks pixels better (pixel AUROC over the
crop, bottle +0.002); but it lowers the calibrated image threshold more than
the test normals' scores, so it raises false alarms (49 against 37 in 40
runs). ``inside`` gives the better image scores. So by default image scores,
thresholds and verdicts come from ``inside`` features, as before, and only the
map's border cells -- where the two paddings give different features -- come
from ``zeros`` features, searched against a bank of their own: the training
images' border features in that padding, a greedy coreset of `border_ratio`
of them (by default a quarter of ``coreset_ratio``, at least 0.4%; 2.5%: on
bottle 1,568 features beside the main bank's 16,386; 10% gave pixel AUROC at
most 0.0003 higher on bottle and label, and lower on tile, for four times the
border's search and selection time). The pixel threshold is calibrated on maps made
the same way.

Which cells differ depends only on the feature maps' shapes: the average
changes each map's outer ring, and the bilinear upsampling of the stride-16
map carries its outer ring three cells into the stride-8 grid (300 of 784
cells for a 224 crop). `differing_cells` finds them by passing ones through
both paddings, so any backbone's maps work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from harness_patchcore import features
from harness_patchcore.bank import MemoryBank
from harness_patchcore.options import PatchCoreOptions

#: The border bank's ratio, by default, as a share of ``coreset_ratio`` ...
BORDER_SHARE_OF_CORESET = 0.25
#: ... and at least this (never above ``coreset_ratio``): at a 1% coreset, a quarter (0.25%) left the
#: demo's label 0.0037 below anomalib's pixel AUROC (seed 0); 0.4% is where the border bank covers
#: the border features as densely as the main bank covers all (0.33-0.43% on the demo at 1%).
BORDER_RATIO_FLOOR = 0.004


def border_ratio(o: PatchCoreOptions) -> float:
    """The fraction of the training border features the border bank keeps: ``map_border_ratio``, or a
    quarter of ``coreset_ratio`` but at least `BORDER_RATIO_FLOOR` (never above ``coreset_ratio``),
    where the border bank covers the border features about as densely as the main bank covers all
    features (see the option)."""
    if o.map_border_ratio is not None:
        return o.map_border_ratio
    return max(BORDER_SHARE_OF_CORESET * o.coreset_ratio, min(o.coreset_ratio, BORDER_RATIO_FLOOR))


def own_border(o: PatchCoreOptions) -> bool:
    """Whether the map's border cells have a padding, and so a bank, of their own."""
    return o.map_padding != o.neighbourhood_padding


def differing_cells(torch: Any, maps: list[Any], padding: str, other: str) -> Any:
    """Flat positions (R,) of the patch grid whose features ``padding`` and ``other`` make differ."""
    shapes = tuple(tuple(m.shape[-2:]) for m in maps)
    return _cells_of_shapes(torch, shapes, padding, other).to(maps[0].device)


@functools.lru_cache(maxsize=16)
def _cells_of_shapes(torch: Any, shapes: tuple[tuple[int, int], ...], padding: str, other: str) -> Any:
    """`differing_cells` on the CPU, once per map shapes: every batch of a fit or a test set asks again."""
    ones = [torch.ones((1, 1, *shape)) for shape in shapes]
    first = features.local_features(torch, ones, None, padding)[0]
    second = features.local_features(torch, ones, None, other)[0]
    changed = (first - second).abs().amax(dim=-1) > 1e-6
    return changed.reshape(-1).nonzero().squeeze(1)


def embed_batch(torch: Any, backbone: Any, batch: Any, projection: Any | None, o: PatchCoreOptions) -> tuple[Any, Any, Any]:
    """A batch's patch features (N, h, w, D) in ``neighbourhood_padding``; with `own_border`, also the
    border cells (R,) and their features in ``map_padding`` (N, R, D), else None and None."""
    if not own_border(o):
        return features.embed(torch, backbone, batch, projection, o.neighbourhood_padding), None, None
    return embed_with_border(torch, backbone, batch, projection, o.neighbourhood_padding, o.map_padding)


def embed_with_border(
    torch: Any, backbone: Any, batch: Any, projection: Any | None, padding: str, map_padding: str
) -> tuple[Any, Any, Any]:
    """One pass of the network, two paddings: patch features (N, h, w, D) in ``padding``, the
    differing cells (R,), and those cells' features in ``map_padding`` (N, R, D)."""
    with torch.inference_mode():
        maps = backbone.extract(batch)
        patch = features.local_features(torch, maps, projection, padding)
        cells = differing_cells(torch, maps, padding, map_padding)
        other = features.local_features(torch, maps, projection, map_padding)
        count, height, width, dim = other.shape
        return patch, cells, other.reshape(count, height * width, dim).index_select(1, cells).contiguous()


@dataclass
class Border:
    """A batch's border cells, their features in the map's padding, and the bank those are searched against."""

    bank: MemoryBank
    cells: Any  # (R,) flat positions in the patch grid
    features: Any  # (N, R, D)

    def applied(self, distance: Any) -> Any:
        """The (N, P) patch distances with the border cells' replaced by their distances to the border bank."""
        count, cells, dim = self.features.shape
        border_distance, _ = self.bank.nearest(self.features.reshape(count * cells, dim))
        mapped = distance.clone()
        mapped[:, self.cells] = border_distance.view(count, cells)
        return mapped
