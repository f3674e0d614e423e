"""A patchcore verdict for one image: its score, and its maps at the image's size.

The distance map comes with the score (pixel AUROC ranks it). What the map shows -- the region a
visual prompt outlines, the display map its heat map is drawn from -- is worked out from the
distance map when first read, on the reader's thread: a run never computes them for an image the
gate passes, and the gate's own work (on a GPU's host, the part of scoring that does not shrink with a
faster device) is the distance map alone.
For bottle's 900x900 images the gate made all three with torch in 8.2 ms an image on one CPU thread,
in memory new to the process as a run's results are; the distance map alone takes 3.1-3.4 ms, and the
region and display map 0.6 ms more when read (`benchmarks/host_work.py`).
"""

from __future__ import annotations

import numpy as np

from harness.types import GateResult

#: A flagged image with no pixel above the pixel threshold is outlined around its top pixels.
FALLBACK_TOP_FRACTION = 0.01


def map_region(distances: np.ndarray, flagged: bool, pixel_threshold: float,
               top_fraction: float = FALLBACK_TOP_FRACTION) -> np.ndarray | None:
    """The pixels above ``pixel_threshold``; a flagged image with none gets its top ``top_fraction`` of
    pixels instead, so that it always has a region to outline, and an unflagged one with none gets None."""
    region = distances > pixel_threshold
    if region.any():
        return region
    if not flagged:
        return None
    return distances >= np.quantile(distances, 1.0 - top_fraction)


def display_map(distances: np.ndarray, pixel_threshold: float, normal_level: float) -> np.ndarray:
    """``distances`` scaled for display: 0 at ``normal_level``, 0.5 at ``pixel_threshold``, clipped to [0, 1]
    (float32, so colours mean the same on every image of a category)."""
    scale = 0.5 / max(pixel_threshold - normal_level, 1e-12)
    display = np.subtract(distances, normal_level, dtype=np.float32)  # one array, scaled and clipped in place
    display *= np.float32(scale)
    return np.clip(display, 0.0, 1.0, out=display)


class PatchCoreResult(GateResult):
    """A `GateResult` that also carries the raw map: ``distance_map``, the smoothed patch distances at the
    image's size (also its ``score_map``, for pixel metrics and debugging).

    ``region`` (`map_region`) and ``anomaly_map`` (`display_map`, normalised and clipped for display) are
    computed when first read and then kept. Two threads reading one at once may both compute it: the
    same array either way.
    """

    def __init__(self, score: float, flagged: bool, threshold: float | None, distance_map: np.ndarray,
                 pixel_threshold: float, normal_level: float):
        # Not GateResult's __init__: it would store the region and display map, which are read lazily here.
        self.score, self.flagged, self.threshold = score, flagged, threshold
        self.distance_map = self.score_map = distance_map
        self.pixel_threshold, self.normal_level = pixel_threshold, normal_level

    @property
    def region(self) -> np.ndarray | None:  # type: ignore[override]
        if "_region" not in self.__dict__:  # kept in the instance, so a pickled result keeps it too
            self._region = map_region(self.distance_map, self.flagged, self.pixel_threshold)
        return self._region

    @property
    def anomaly_map(self) -> np.ndarray:  # type: ignore[override]
        if "_display" not in self.__dict__:
            self._display = display_map(self.distance_map, self.pixel_threshold, self.normal_level)
        return self._display
