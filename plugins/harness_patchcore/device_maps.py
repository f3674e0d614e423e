"""A batch's anomaly maps brought to each image's size: padded to the resized square, then resized.
The resize is PIL's bilinear one to float rounding (tests/test_patchcore.py). The region and the
display map are read from these later (`result`).

Two places to do it, the same maps either way (`sized_on_host`, `sized_on_device`): on the host,
each image on a thread of its own, from its crop map (0.2 MB at the default crop); or on the device
where the crop maps were computed, the whole batch at once, then copied to the host at the image's
size (3.2 MB for bottle's 900x900), through pinned memory. On a lent H200 the device's way, with the
region and display map copied too (7.3 MB) to pageable memory, took 4.6 ms an image on the one thread
that copies, which by itself held the gate below 220 images/s.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np

from harness_patchcore.features import crop_offset, rows_by


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


def sized_on_host(torch: Any, crop_maps: Any, sizes: Sequence[tuple[int, int]], image_size: int, fill: float,
                  workers: Executor | None = None) -> list[np.ndarray]:
    """Each image's crop map (``crop_maps``: (N, C, C) on the CPU) at its size (``sizes``: width, height;
    `maps_at_size`), one image a task on ``workers`` (or one after another in this thread): the host's
    cores share the work, and only the small crop maps left the device."""

    def one(row: int) -> np.ndarray:
        return maps_at_size(torch, crop_maps[row : row + 1], image_size, sizes[row], fill)[0].numpy()

    rows = range(len(sizes))
    return list(workers.map(one, rows)) if workers is not None else [one(row) for row in rows]


def sized_on_device(torch: Any, crop_maps: Any, sizes: Sequence[tuple[int, int]], image_size: int,
                    fill: float) -> list[np.ndarray]:
    """The batch's maps at their images' sizes (`maps_at_size`) where ``crop_maps`` are, the images of one
    size together (usually the whole batch), then copied to the host (`to_host`)."""
    results: list[np.ndarray | None] = [None] * len(sizes)
    for size, rows in rows_by(sizes).items():
        for i, sized in zip(rows, to_host(torch, maps_at_size(torch, crop_maps[rows], image_size, size, fill))):
            results[i] = sized
    return results


def to_host(torch: Any, tensor: Any) -> np.ndarray:
    """``tensor`` as a numpy array on the host; from a GPU through pinned memory. A pageable copy ran at
    1.6 GB/s on a lent H200 (4.6 ms an image for 7.3 MB), on the one thread that copies. The pinned
    buffer lives as long as any of the arrays cut from it, then goes back to torch's pinned-memory cache."""
    if not tensor.is_cuda:
        return tensor.numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()
    return host.numpy()
