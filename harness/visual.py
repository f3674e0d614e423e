"""Visual prompt images: what a classifier is shown besides the query, drawn from the gate's binary
``region`` and float ``anomaly_map`` (`harness.types.GateResult`): the region outlined in red
(`outline_region`, never filled, so the defect stays visible), a close-up (`crop_region`), a heat
map (`heatmap_overlay`), and all of them by name for a template (`visual_prompt_images`).

Only numpy and PIL: morphology is done with array shifts, the colour ramp is written out here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image

ImageLike = Union[Image.Image, np.ndarray]

#: Colour stops of the heat-map ramp (value, (r, g, b)): blue -> cyan -> green -> yellow -> red.
HEAT_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (0, 0, 143)),
    (0.125, (0, 0, 255)),
    (0.375, (0, 255, 255)),
    (0.625, (255, 255, 0)),
    (0.875, (255, 0, 0)),
    (1.0, (128, 0, 0)),
)


# --- conversions -----------------------------------------------------------------------------


def _as_rgb(image: ImageLike) -> Image.Image:
    """An RGB PIL image (a new object when a conversion was needed)."""
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


def as_mask(region: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean HxW mask for an image of ``size`` (width, height), resized nearest-neighbour if need be.

    Booleans are used as they are; floats are thresholded at 0.5, integers at 0 (0/1 and 0/255 both work).
    """
    region = np.asarray(region)
    if region.ndim == 3 and region.shape[2] == 1:
        region = region[:, :, 0]
    if region.ndim != 2:
        raise ValueError(f"a region must be a 2-D array, got shape {region.shape}")
    if region.dtype == bool:
        mask = region
    elif np.issubdtype(region.dtype, np.floating):
        mask = np.nan_to_num(region) > 0.5
    else:
        mask = region > 0
    width, height = size
    if mask.shape != (height, width):
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        mask = np.asarray(resized) > 127
    return mask


def region_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom; right/bottom exclusive) of a mask, or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# --- morphology with shifts ------------------------------------------------------------------


def _shifted(mask: np.ndarray, dy: int, dx: int, fill: bool) -> np.ndarray:
    """``mask`` moved by (dy, dx); uncovered cells take ``fill``."""
    h, w = mask.shape
    out = np.full_like(mask, fill)
    ys_dst = slice(max(dy, 0), h + min(dy, 0))
    xs_dst = slice(max(dx, 0), w + min(dx, 0))
    ys_src = slice(max(-dy, 0), h + min(-dy, 0))
    xs_src = slice(max(-dx, 0), w + min(-dx, 0))
    out[ys_dst, xs_dst] = mask[ys_src, xs_src]
    return out


_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_SQUARE = _CROSS + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def erode(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Binary erosion with a 3x3 cross; outside the array counts as background."""
    out = mask.astype(bool)
    for _ in range(iterations):
        out = np.logical_and.reduce([out] + [_shifted(out, dy, dx, False) for dy, dx in _CROSS])
    return out


def dilate(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Binary dilation, alternating a 3x3 square and a cross (an octagon, close to a disc); after ``k``
    iterations every added pixel is within Chebyshev distance ``k`` of the mask."""
    out = mask.astype(bool)
    for i in range(iterations):
        shape = _SQUARE if i % 2 == 0 else _CROSS
        out = np.logical_or.reduce([out] + [_shifted(out, dy, dx, False) for dy, dx in shape])
    return out


def boundary(mask: np.ndarray) -> np.ndarray:
    """The inner boundary of a mask: its pixels with a 4-neighbour outside it (or at the image edge)."""
    mask = mask.astype(bool)
    return mask & ~erode(mask)


def default_outline_width(size: tuple[int, int]) -> int:
    """Outline thickness for an image of ``size``: about 0.5% of the shorter side, at least 2 px."""
    return max(2, round(0.005 * min(size)))


def outline_mask(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels an outline of ``width`` covers: the boundary and ``width - 1`` px outward, so the
    region's interior (the defect) is never painted over."""
    if width < 1:
        raise ValueError(f"outline width must be at least 1, got {width}")
    mask = mask.astype(bool)
    box = region_bbox(mask)
    if box is None:
        return np.zeros_like(mask)
    # Work inside the bounding box padded by the width: cheap on large images.
    pad = width + 1
    h, w = mask.shape
    left, top = max(box[0] - pad, 0), max(box[1] - pad, 0)
    right, bottom = min(box[2] + pad, w), min(box[3] + pad, h)
    window = mask[top:bottom, left:right]
    # erode() treats the window's border as background: right where the window
    # border is the image border (a region touching the image edge is outlined
    # along it) and irrelevant elsewhere, since the window is padded past the mask.
    edge = boundary(window)
    band = edge | (dilate(window, width - 1) & ~window)
    out = np.zeros_like(mask)
    out[top:bottom, left:right] = band
    return out


# --- the pictures ----------------------------------------------------------------------------


def outline_region(image: ImageLike, region: np.ndarray, color: tuple[int, int, int] = (255, 0, 0),
                   width: int | None = None) -> Image.Image:
    """A copy of ``image`` with the contour of ``region`` drawn in ``color`` (not filled; an empty region:
    an unchanged copy). ``width`` defaults to `default_outline_width`."""
    rgb = _as_rgb(image)
    mask = as_mask(region, rgb.size)
    if width is None:
        width = default_outline_width(rgb.size)
    outlined = rgb.copy()
    # PIL paints through a 1-bit mask in one pass: 3.7 instead of 8.5 ms for a 768 px bottle outline.
    outlined.paste(tuple(color), (0, 0, *rgb.size), Image.fromarray(outline_mask(mask, width)))
    return outlined


def crop_box(size: tuple[int, int], region: np.ndarray, margin: float = 0.25,
             min_size: int | None = None) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom; exclusive) that `crop_region` crops, or None for an empty region.

    The region's bounding box grows by ``margin`` times its size on each side, then to a square of
    its longer side, then to at least ``min_size`` (default: an eighth of the image's shorter side,
    at least 32 px), never beyond the image: a box sticking out is shifted back inside, not cut.
    """
    width, height = size
    mask = as_mask(region, size)
    box = region_bbox(mask)
    if box is None:
        return None
    if min_size is None:
        min_size = max(32, min(size) // 8)
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    mx, my = margin * bw, margin * bh
    x0, x1 = left - mx, right + mx
    y0, y1 = top - my, bottom + my
    side = max(x1 - x0, y1 - y0, float(min_size))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, x1 = _fit_span(cx, side, width, left, right)
    y0, y1 = _fit_span(cy, side, height, top, bottom)
    return x0, y0, x1, y1


def _fit_span(centre: float, length: float, limit: int, lo: int, hi: int) -> tuple[int, int]:
    """A span of ``length`` around ``centre`` inside [0, limit), containing [lo, hi)."""
    n = min(int(np.ceil(length)), limit)
    start = int(np.floor(centre - n / 2))
    start = min(max(start, 0), limit - n)
    # Rounding must never cut the region itself off.
    start = min(start, lo)
    start = max(start, hi - n)
    return start, start + n


def crop_region(image: ImageLike, region: np.ndarray, margin: float = 0.25, min_size: int | None = None) -> Image.Image:
    """A square-ish close-up of ``region`` with a margin (see `crop_box`); ValueError for an empty region."""
    rgb = _as_rgb(image)
    box = crop_box(rgb.size, region, margin=margin, min_size=min_size)
    if box is None:
        raise ValueError("cannot crop an empty region")
    return rgb.crop(box)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map floats in [0, 1] (clipped; NaN as 0) to uint8 RGB along `HEAT_STOPS`."""
    values = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    stops = np.array([s for s, _ in HEAT_STOPS], dtype=np.float32)
    colours = np.array([c for _, c in HEAT_STOPS], dtype=np.float32)
    channels = [np.interp(values, stops, colours[:, i]) for i in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def heatmap_overlay(image: ImageLike, anomaly_map: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """``image`` blended with a colour ramp of ``anomaly_map`` (floats in [0, 1]; resized to fit);
    ``alpha`` is the colour map's weight."""
    rgb = _as_rgb(image)
    amap = np.asarray(anomaly_map, dtype=np.float32)
    if amap.ndim != 2:
        raise ValueError(f"an anomaly map must be a 2-D array, got shape {amap.shape}")
    width, height = rgb.size
    if amap.shape != (height, width):
        amap = np.asarray(Image.fromarray(np.nan_to_num(amap)).resize(rgb.size, Image.Resampling.BILINEAR))
    colours = heat_colors(amap).astype(np.float32)
    base = np.asarray(rgb, dtype=np.float32)
    blended = (1.0 - alpha) * base + alpha * colours
    return Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8))


#: Longest side of the anomaly map a prompt's heat map is drawn from (`map_thumbnail`).
MAP_SIDE = 128


def map_thumbnail(anomaly_map: np.ndarray, max_side: int = MAP_SIDE) -> np.ndarray:
    """The anomaly map as a small uint8 array: at most ``max_side`` on its longer side, 0..255 for 0..1.

    Clipped to [0, 1] (NaN as 0), shrunk bilinearly (never enlarged), rounded to 1/255 steps: a run
    folder stores it exactly (`harness.run.prompt_record`), and the thumbnail of ``thumbnail / 255``
    is the same thumbnail, so a heat map redrawn from a stored one is the same picture.
    """
    amap = np.clip(np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32)), 0.0, 1.0)
    if amap.ndim != 2:
        raise ValueError(f"an anomaly map must be a 2-D array, got shape {amap.shape}")
    size = _shrunk_size((amap.shape[1], amap.shape[0]), max_side)
    if size is not None:
        amap = np.clip(np.asarray(Image.fromarray(amap).resize(size, Image.Resampling.BILINEAR)), 0.0, 1.0)
    return np.round(amap * 255.0).astype(np.uint8)


def _shrunk_size(size: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    """``size`` scaled so its longer side is ``max_side``, or None when it already fits."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return None
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_for_prompt(image: ImageLike, max_side: int = 768) -> Image.Image:
    """Shrink so the longer side is at most ``max_side``, keeping the aspect ratio; an image that fits is
    returned as it is (not copied)."""
    pil = image if isinstance(image, Image.Image) else _as_rgb(image)
    size = _shrunk_size(pil.size, max_side)
    return pil if size is None else pil.resize(size, Image.Resampling.LANCZOS)


class PromptPictures(MutableMapping):
    """Named prompt images, each drawn the first time it is asked for: a template that never shows the
    heat map or the crop costs neither. Names are known at once, in the order they were added; a
    value set directly (`__setitem__`) is used as it is."""

    def __init__(self) -> None:
        self._entries: dict[str, Image.Image | _Drawing] = {}

    def draw_later(self, name: str, draw: Callable[[], Image.Image]) -> None:
        """Add ``name``, drawn by ``draw()`` when first asked for."""
        self._entries[name] = _Drawing(draw)

    def __getitem__(self, name: str) -> Image.Image:
        value = self._entries[name]
        if isinstance(value, _Drawing):
            value = self._entries[name] = value.draw()
        return value

    def __contains__(self, name: object) -> bool:  # Mapping's would draw the picture to find out
        return name in self._entries

    def __setitem__(self, name: str, image: Image.Image) -> None:
        self._entries[name] = image

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class _Drawing:
    draw: Callable[[], Image.Image]


def visual_prompt_images(query: ImageLike, reference: ImageLike | None = None, region: np.ndarray | None = None,
                         anomaly_map: np.ndarray | None = None, max_side: int | None = 768) -> PromptPictures:
    """The named images a prompt template may show: ``query``; ``reference`` when given; ``outlined`` and
    ``crop`` when ``region`` has a pixel; ``heatmap`` (from the map's `map_thumbnail`) when ``anomaly_map``
    is given. Every image is at most ``max_side`` on its longer side (None: full size). All but the
    query are drawn when first asked for (`PromptPictures`).

    Drawn at the size they are sent: the query is shrunk once; the outline (its width from that size,
    `default_outline_width`) is drawn on it from the region resized once more, nearest-neighbour, from
    the query's size; the heat map is the map's thumbnail resized once to it. Only the crop is cut
    from the full-resolution query, keeping the defect's detail, and shrunk afterwards if still too
    large. An image that already fits is drawn exactly as at full size.
    """
    def fit(image: Image.Image) -> Image.Image:
        return image if max_side is None else resize_for_prompt(image, max_side)

    query_rgb = _as_rgb(query)
    sent = fit(query_rgb)
    images = PromptPictures()
    images["query"] = sent
    if reference is not None:
        images.draw_later("reference", lambda: fit(_as_rgb(reference)))
    if region is not None:
        # At the query's size first, as `harness.images.load_mask` reads a stored region back, so a
        # redrawn outline (`harness.run.prompt_record.redraw`) is the one sent whatever the region's size.
        mask = as_mask(region, query_rgb.size)
        if mask.any():
            images.draw_later("outlined", lambda: outline_region(sent, _sent_mask(mask, sent.size)))
            images.draw_later("crop", lambda: fit(crop_region(query_rgb, mask)))
    if anomaly_map is not None:
        images.draw_later("heatmap", lambda: heatmap_overlay(sent, map_thumbnail(anomaly_map).astype(np.float32) / 255.0))
    return images


def _sent_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` resized nearest-neighbour to ``size``; a region too small to survive that (a few pixels
    between the sampled ones) keeps every cell it touches, so it is still outlined."""
    small = as_mask(mask, size)
    if small.any() or not mask.any():
        return small
    touched = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)
    return np.asarray(touched) > 0
