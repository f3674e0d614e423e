"""A batch's anomaly maps finished where they were computed: padded to the resized square, resized
to each image's size, thresholded and normalised for display on the device (a GPU's or the CPU), so only
finished maps cross to the host. The resize is PIL's bilinear one to float rounding (tests/test_patchcore.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness_patchcore.features import crop_offset


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
                  top_fraction: float) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
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
