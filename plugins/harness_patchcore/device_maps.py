"""A batch's anomaly maps finished: padded to the resized square, resized to each image's size,
thresholded and normalised for display. The resize is PIL's bilinear one to float rounding
(tests/test_patchcore.py).

Two places to do it, the same maps either way (`finished_on_host`, `finished_on_device`): on the
host, each image on a thread of its own, from its crop map (0.2 MB at the default crop); or on the
device where the crop maps were computed, the whole batch at once, then copied to the host at the
image's size (7.3 MB for bottle's 900x900). On a lent H200 the device's way took 4.6 ms an image on
the one thread that copies, which by itself held the gate below 220 images/s.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np

from harness_patchcore.features import crop_offset


#: Per image: (distance map, region or None, display map), at the image's size (`finished_maps`).
Finished = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def maps_at_size(torch: Any, crop_maps: Any, image_size: int, size: tuple[int, int], fill: float) -> Any:
    """(N, C, C) crop maps -> (N, H, W) maps over images of ``size`` (width, height), the cut border at ``fill``."""
    crop_size = crop_maps.shape[-1]
    before = crop_offset(image_size, crop_size)
    after = image_size - crop_size - before
    square = torch.nn.functional.pad(crop_maps[:, None].float(), (before, after, before, after), value=float(fill))
    width, height = size
    if (height, width) != tuple(square.shape[-2:]):
        # Antialiased as PIL's resize is when shrinking. Enlarging is plain bilinear either way, and torch's
        # plain kernel is the faster one: 256 to 900x900 on one CPU thread, 2.1 ms against 2.8, within 1e-5.
        shrinking = height < square.shape[-2] or width < square.shape[-1]
        square = torch.nn.functional.interpolate(square, size=(height, width), mode="bilinear", align_corners=False,
                                                 antialias=shrinking)
    return square[:, 0]


def finished_maps(torch: Any, full: Any, flagged: Sequence[bool], pixel_threshold: float, normal_level: float,
                  top_fraction: float) -> list[Finished]:
    """Per image of ``full`` (N, H, W): (distance map, region or None, display map).

    The region is the pixels above ``pixel_threshold``; a flagged image with none gets its top
    ``top_fraction`` of pixels, an unflagged one None. The display map is 0 at ``normal_level``, 0.5 at
    the pixel threshold, clipped to [0, 1].
    """
    region = full > pixel_threshold
    empty = ~region.flatten(1).any(dim=1)
    for row in (empty & torch.tensor(list(flagged), device=full.device)).nonzero().flatten().tolist():
        region[row] = full[row] >= torch.quantile(full[row].flatten(), 1.0 - top_fraction)
    span = max(pixel_threshold - normal_level, 1e-12)
    display = ((full - normal_level) * (0.5 / span)).clamp_(0.0, 1.0)
    full_h, region_h, display_h, empty_h = (t.cpu().numpy() for t in (full, region, display, empty))
    return [
        (full_h[row], None if empty_h[row] and not flagged[row] else region_h[row], display_h[row])
        for row in range(full_h.shape[0])
    ]


def finished_on_host(torch: Any, crop_maps: Any, sizes: Sequence[tuple[int, int]], flagged: Sequence[bool],
                     image_size: int, pixel_threshold: float, normal_level: float, top_fraction: float,
                     workers: Executor | None = None) -> list[Finished]:
    """Each image's crop map (``crop_maps``: (N, C, C) on the CPU) brought to its size (``sizes``: width,
    height) and finished (`finished_maps`), one image a task on ``workers`` (or one after another in this
    thread): the host's cores share the work, and only the small crop maps left the device."""

    def finish(row: int) -> Finished:
        full = maps_at_size(torch, crop_maps[row : row + 1], image_size, sizes[row], normal_level)
        return finished_maps(torch, full, [flagged[row]], pixel_threshold, normal_level, top_fraction)[0]

    rows = range(len(sizes))
    return list(workers.map(finish, rows)) if workers is not None else [finish(row) for row in rows]


def finished_on_device(torch: Any, crop_maps: Any, sizes: Sequence[tuple[int, int]], flagged: Sequence[bool],
                       image_size: int, pixel_threshold: float, normal_level: float,
                       top_fraction: float) -> list[Finished]:
    """The batch's maps finished where ``crop_maps`` are (`maps_at_size`, `finished_maps`), the images of
    one size together (usually the whole batch), then copied to the host."""
    results: list[Finished | None] = [None] * len(sizes)
    for size in dict.fromkeys(sizes):
        rows = [i for i, other in enumerate(sizes) if other == size]
        full = maps_at_size(torch, crop_maps[rows], image_size, size, normal_level)
        finished = finished_maps(torch, full, [flagged[i] for i in rows], pixel_threshold, normal_level, top_fraction)
        for i, maps in zip(rows, finished):
            results[i] = maps
    return results
