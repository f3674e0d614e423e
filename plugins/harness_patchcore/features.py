"""From pixels to locally aware patch features, and from patch scores back to pixels.

Geometry (the same for fitting and scoring):

1. the image is resized -- squashed, whatever its aspect ratio -- to
   ``image_size`` x ``image_size`` (bilinear, antialiased by PIL);
2. the central ``crop_size`` x ``crop_size`` square is cut out (the usual
   MVTec protocol: 256 then 224 drops a 6.25% border on each side);
3. the backbone sees the crop; its stride-8 grid gives one patch feature per
   8 x 8 crop pixels.

The anomaly map goes back the same way: patch scores are upsampled to the
crop (bilinear) and smoothed with a Gaussian (sigma in crop pixels, 4 in the
paper); the border that the crop cut off, which the model never saw, gets a
given fill value (the gate uses the typical normal level, so no region ever
reaches into it); and the square is resized (bilinear) to the original width
and height. So the map lines up with the original image, whatever its size
and aspect ratio.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np
from PIL import Image


def crop_offset(image_size: int, crop_size: int) -> int:
    """Pixels cut off on the top (and left) by the center crop."""
    return (image_size - crop_size) // 2


def preprocess(image: Image.Image, image_size: int, crop_size: int) -> np.ndarray:
    """The backbone's view of ``image``: a (crop, crop, 3) uint8 array (see the module docstring).

    Only the crop is computed: PIL resizes the part of the image the crop covers (``box``) straight to
    the crop's size, with the filter the whole resize would use. On a square image at a power-of-two
    ``image_size`` (the default 256) that is the whole resize's crop to the bit (tests/test_patchcore.py);
    on others Pillow may run its two passes in the other order, so a pixel may move by a level or two.
    For bottle's 900x900 it takes 3.2 ms on one CPU thread against 4.1 (a GPU's host does this for
    every image, `FittedPatchCore._score_group`).
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    top, bottom = crop_offset(image_size, crop_size), crop_offset(image_size, crop_size) + crop_size
    box = (top * width / image_size, top * height / image_size, bottom * width / image_size, bottom * height / image_size)
    return np.asarray(rgb.resize((crop_size, crop_size), Image.Resampling.BILINEAR, box=box))


def to_batch(torch: Any, crops: list[np.ndarray], backbone: Any, rows: int | None = None) -> Any:
    """Stack uint8 crops into a normalised (N, 3, C, C) batch on the backbone's device and dtype.

    With ``rows``, black crops are added up to that many: a GPU then sees one batch shape. One H200
    run's timings point to a cost of about 1.5 s for each new shape (fit's features took 3.2 s for 40
    images in batches of 32 and 8, where the network takes 0.14 ms an image once warm; a category's
    last, smaller batch then cost about 2 s more than the same batches again), not yet measured apart.
    The rows are independent (batch norm in eval mode): callers keep the first ``len(crops)``.
    """
    return normalised(torch, to_device(torch, crops, backbone.device, rows).permute(0, 3, 1, 2), backbone)


def to_device(torch: Any, pictures: Sequence[np.ndarray | Image.Image], device: Any, rows: int | None = None,
              workers: Executor | None = None) -> Any:
    """``pictures`` (uint8 arrays or PIL images, all of one shape) stacked into an (N, H, W, C) uint8 tensor on
    ``device``, black rows added up to ``rows``. Each picture is copied once, into a buffer that is pinned
    for a GPU (so the copy to it runs while the host goes on); with ``workers``, each picture is a task there."""
    first = pictures[0]
    shape = first.shape if isinstance(first, np.ndarray) else (first.height, first.width, len(first.getbands()))
    buffer = torch.empty((max(rows or 0, len(pictures)), *shape), dtype=torch.uint8,
                         pin_memory=str(device).startswith("cuda"))
    target = buffer.numpy()
    target[len(pictures):] = 0

    def fill(row: int) -> None:
        target[row] = np.asarray(pictures[row])

    list(workers.map(fill, range(len(pictures))) if workers is not None else map(fill, range(len(pictures))))
    return buffer.to(device, non_blocking=True)


def rows_by(keys: Sequence[Any]) -> dict[Any, list[int]]:
    """The positions of each distinct key in ``keys``, the keys in the order first seen: a batch's images by size."""
    rows: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        rows.setdefault(key, []).append(i)
    return rows


def normalised(torch: Any, pixels: Any, backbone: Any) -> Any:
    """(N, 3, C, C) uint8 pixels on the backbone's device -> the backbone's normalised input, in its dtype and layout."""
    batch = pixels.float().div_(255.0)
    mean = torch.tensor(backbone.mean, device=backbone.device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=backbone.device).view(1, 3, 1, 1)
    batch = ((batch - mean) / std).to(backbone.dtype)
    return batch.contiguous(memory_format=torch.channels_last) if backbone.channels_last else batch


def whole_to_batch(torch: Any, pictures: Sequence[np.ndarray | Image.Image], backbone: Any, image_size: int,
                   crop_size: int, rows: int | None = None, workers: Executor | None = None) -> Any:
    """`to_batch` of whole decoded images (H x W RGB uint8 arrays or PIL images, any sizes), resized and
    cropped on the backbone's device instead of by `preprocess` on the host (option ``resize_on``).

    The images of one size are copied into one pinned buffer (each image a task on ``workers``, if given)
    and to the device together, and resized there with torch's antialiased bilinear filter (PIL's), as PIL
    does it: across, rounded to whole levels, then down, rounded; then the center ``crop_size`` is cut out.
    A pixel differs from `preprocess`'s by a level at most (two where an image is enlarged), on bottle's
    images 0.02% of them (one pass in floats: 11%; tests/test_patchcore_device_resize.py). ``rows`` pads
    with black crops as `to_batch` does.
    """
    top = crop_offset(image_size, crop_size)
    sizes = [p.shape[1::-1] if isinstance(p, np.ndarray) else p.size for p in pictures]  # (width, height)
    crops: list[Any] = [None] * len(pictures)
    for (width, height), same in rows_by(sizes).items():
        pixels = to_device(torch, [pictures[i] for i in same], backbone.device, workers=workers)
        across = _resized_levels(torch, pixels.permute(0, 3, 1, 2).float(), (height, image_size))
        resized = _resized_levels(torch, across, (image_size, image_size))
        for i, crop in zip(same, resized[:, :, top : top + crop_size, top : top + crop_size].to(torch.uint8)):
            crops[i] = crop
    batch = torch.stack(crops)
    if rows is not None and rows > len(pictures):
        batch = torch.cat([batch, batch.new_zeros((rows - len(pictures), *batch.shape[1:]))])
    return normalised(torch, batch, backbone)


def _resized_levels(torch: Any, pixels: Any, size: tuple[int, int]) -> Any:
    """(N, 3, H, W) float levels resized to ``size`` (antialiased bilinear), rounded to whole levels in 0-255."""
    resized = torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.round_().clamp_(0, 255)


def embed(torch: Any, backbone: Any, batch: Any, projection: Any | None = None, padding: str = "inside") -> Any:
    """Patch features of a batch: (N, h, w, D) float32, one row per stride-8 patch.

    Each feature map is averaged over the 3x3 neighbourhood of every position
    (the paper's local aware patch features: a patch sees a little context
    without losing resolution); the stride-16 map is upsampled bilinearly to
    the stride-8 grid, and both are concatenated along channels. With a
    ``projection`` (D x d), features are projected to d dimensions.

    ``padding`` is what the average does at the map's border (option ``neighbourhood_padding``):
    ``inside`` (the default) averages the positions inside the map, so a border feature is as large
    as any other; ``zeros`` counts the positions outside as zeros, as anomalib's ``AvgPool2d(3, 1, 1)``
    does, so border features shrink to 6/9 and corners to 4/9. That shrink is where anomalib's higher
    pixel AUROC comes from (its map's nearest upsampling and smoothing are worth under 0.0005 either
    way), and it lowers the calibrated threshold more than the test normals' scores (see the option).
    `border.embed_with_border` gives both paddings from one pass of the network.
    """
    with torch.inference_mode():
        return local_features(torch, backbone.extract(batch), projection, padding)


def local_features(torch: Any, maps: list[Any], projection: Any | None, padding: str) -> Any:
    """`embed` after the network: the backbone's feature ``maps`` to (N, h, w, D) patch features."""
    if padding not in ("inside", "zeros"):
        raise ValueError(f"padding must be 'inside' or 'zeros', got {padding!r}")
    functional = torch.nn.functional
    with torch.inference_mode():
        maps = [functional.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=padding == "zeros") for m in maps]
        height, width = maps[0].shape[-2:]
        deep = functional.interpolate(maps[1], size=(height, width), mode="bilinear", align_corners=False)
        features = torch.cat([maps[0], deep], dim=1).float().permute(0, 2, 3, 1)
        if projection is not None:
            features = features @ projection
        return features.contiguous()


def gaussian_kernel(torch: Any, sigma: float, device: Any) -> Any:
    """A normalised 1-D Gaussian, truncated at 4 sigma."""
    radius = max(1, int(4.0 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def crop_maps(torch: Any, patch_scores: Any, crop_size: int, sigma: float) -> Any:
    """(N, h, w) patch scores -> (N, C, C) maps over the crop: bilinear upsampling, Gaussian smoothing."""
    functional = torch.nn.functional
    maps = functional.interpolate(
        patch_scores.unsqueeze(1), size=(crop_size, crop_size), mode="bilinear", align_corners=False
    )
    if sigma > 0:
        kernel = gaussian_kernel(torch, sigma, maps.device)
        radius = min(kernel.numel() // 2, crop_size - 1)
        kernel = kernel[kernel.numel() // 2 - radius : kernel.numel() // 2 + radius + 1]
        kernel = kernel / kernel.sum()
        # Separable: rows, then columns; reflected borders keep the edges' level.
        maps = functional.conv2d(functional.pad(maps, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
        maps = functional.conv2d(functional.pad(maps, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return maps.squeeze(1)
