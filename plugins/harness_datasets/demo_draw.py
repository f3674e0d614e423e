"""Drawing primitives for the demo generator: noise, shapes, strokes, and the `Scene`.

Everything works on float32 arrays in [0, 1] of size `SIZE` x `SIZE` and takes
an explicit ``numpy.random.Generator``, so a picture is a pure function of its
seed. Shapes come back as *coverage* maps (0..1 per pixel, anti-aliased by
supersampling) that a defect multiplies into an opacity.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256
#: Shapes are drawn this many times larger, then box-filtered down: cheap anti-aliasing.
SUPERSAMPLE = 4

Point = tuple[float, float]  # (x, y) in pixels, as PIL expects


@dataclass
class Scene:
    """One normal picture, kept in layers so that a defect can be added before the finish.

    The final image is ``albedo * light + noise``, clipped and quantised. Light
    and noise are fixed per picture and applied pixel by pixel, so a defect
    that changes ``albedo`` changes the final image only where it painted:
    the defect-free and the defective picture differ exactly on the defect.
    """

    albedo: np.ndarray  # HxWx3 surface colours, with the object's own shading baked in
    body: np.ndarray  # HxW bool: the object's pixels; defects never change anything else
    anchors: np.ndarray  # HxW bool: where a defect may be centred (on the object, off its edge)
    light: np.ndarray  # HxW illumination factor
    noise: np.ndarray  # HxWx3 additive sensor noise
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # what a missing piece reveals
    parts: dict[str, Any] = field(default_factory=dict)  # category geometry for its defects

    def copy(self) -> Scene:
        """A copy whose albedo may be painted on without touching this one."""
        return replace(self, albedo=self.albedo.copy())

    def render(self) -> np.ndarray:
        """The finished HxWx3 uint8 picture."""
        image = self.albedo * self.light[..., None] + self.noise
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)

    def paint(self, alpha: np.ndarray, colour: np.ndarray | Sequence[float]) -> None:
        """Blend ``colour`` (RGB, or an HxWx3 array) over the object with opacity ``alpha``."""
        alpha = (np.clip(alpha, 0.0, 1.0) * self.body)[..., None]
        self.albedo[:] = self.albedo * (1.0 - alpha) + np.asarray(colour, dtype=np.float32) * alpha

    def shade(self, amount: np.ndarray) -> None:
        """Brighten (positive) or darken (negative) the object by a relative ``amount`` per pixel."""
        # No clipping here: values above 1 (bright bevels) must stay as they are off the defect.
        factor = np.maximum(1.0 + amount * self.body, 0.0)
        self.albedo[:] = self.albedo * factor[..., None]

    def reveal(self, region: np.ndarray, layer: str) -> None:
        """Replace the object by the named layer (what lies beneath) where ``region`` > 0."""
        alpha = np.clip(region, 0.0, 1.0) * self.body
        self.paint(alpha, self.layers[layer])

    def pick_anchor(self, rng: np.random.Generator, allowed: np.ndarray | None = None) -> tuple[float, float]:
        """A random (y, x) among the anchor pixels (and ``allowed`` ones, when given)."""
        mask = self.anchors if allowed is None else self.anchors & allowed
        ys, xs = np.nonzero(mask)
        i = int(rng.integers(len(ys)))
        return float(ys[i]) + rng.uniform(-0.5, 0.5), float(xs[i]) + rng.uniform(-0.5, 0.5)


#: A defect paints onto a copy of a normal scene, drawing its randomness from ``rng``.
Defect = Callable[[Scene, np.random.Generator], None]


@dataclass(frozen=True)
class CategoryRecipe:
    """How to draw one demo category: a normal scene, and each defect class by folder key."""

    name: str
    normal: Callable[[np.random.Generator], Scene]
    defects: Mapping[str, Defect]


# --- coordinates and noise -------------------------------------------------------------


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (yy, xx), each HxW (read-only, shared)."""
    return _grid()


def polar(cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance and angle (radians) of every pixel from (cy, cx)."""
    yy, xx = grid()
    dy, dx = yy - cy, xx - cx
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def smooth_noise(rng: np.random.Generator, cell: float, cell_x: float | None = None) -> np.ndarray:
    """Smooth random field with unit standard deviation and features about ``cell`` pixels wide.

    ``cell_x`` stretches it horizontally (fibres, strata).
    """
    cell_x = cell if cell_x is None else cell_x
    ny, nx = int(SIZE / cell) + 4, int(SIZE / cell_x) + 4
    coarse = rng.standard_normal((ny, nx)).astype(np.float32)
    box = (1.5, 1.5, 1.5 + SIZE / cell_x, 1.5 + SIZE / cell)
    field_ = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=box))
    return (field_ - field_.mean()) / (field_.std() + 1e-6)


def fractal_noise(rng: np.random.Generator, cells: Sequence[float], weights: Sequence[float]) -> np.ndarray:
    """A sum of `smooth_noise` octaves: natural-looking mottling."""
    return sum(w * smooth_noise(rng, c) for c, w in zip(cells, weights))  # type: ignore[return-value]


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an HxW array (separable, edges reflected)."""
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    padded = np.pad(image, radius, mode="reflect")
    rows = sum(t * padded[:, i : i + image.shape[1]] for i, t in enumerate(taps))
    return sum(t * rows[i : i + image.shape[0]] for i, t in enumerate(taps))  # type: ignore[return-value]


def lighting(rng: np.random.Generator, gradient: float, vignette: float) -> np.ndarray:
    """Illumination: a linear gradient in a random direction times a soft vignette."""
    yy, xx = grid()
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - SIZE / 2) * np.cos(angle) + (yy - SIZE / 2) * np.sin(angle)) / SIZE
    r2 = ((xx - SIZE / 2) ** 2 + (yy - SIZE / 2) ** 2) / (SIZE / 2) ** 2
    return (1.0 + gradient * 2 * ramp) * (1.0 - vignette * r2) * rng.uniform(0.95, 1.05)


def sensor_noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Per-pixel Gaussian noise, slightly correlated across colour channels as in real sensors."""
    shared = rng.standard_normal((SIZE, SIZE, 1), dtype=np.float32)
    own = rng.standard_normal((SIZE, SIZE, 3), dtype=np.float32)
    return sigma * (0.7 * shared + 0.5 * own)


def colour(base: Sequence[float], rng: np.random.Generator, spread: float, hue: float = 0.012) -> np.ndarray:
    """``base`` RGB with a random brightness change of up to ``spread`` and a small hue shift."""
    rgb = np.asarray(base, dtype=np.float32) * rng.uniform(1 - spread, 1 + spread)
    rgb += rng.normal(0, hue, 3).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0)


# --- shapes (coverage maps) ------------------------------------------------------------


def disc(cy: float, cx: float, radius: float) -> np.ndarray:
    """Coverage of a disc, with a one-pixel anti-aliased edge."""
    distance, _ = polar(cy, cx)
    return np.clip(radius - distance + 0.5, 0.0, 1.0)


def blob_depth(rng: np.random.Generator, cy: float, cx: float, radius: float, wobble: float = 0.25) -> np.ndarray:
    """How far (in pixels) each pixel lies inside an irregular rounded shape; negative outside.

    The shape is a disc whose radius wanders with the angle by up to ``wobble``.
    """
    distance, angle = polar(cy, cx)
    edge = np.ones_like(angle)
    for lobes in range(2, 6):
        edge += wobble / lobes * rng.uniform(0.5, 1.0) * np.cos(lobes * angle + rng.uniform(0, 2 * np.pi))
    return radius * edge - distance


def blob(rng: np.random.Generator, cy: float, cx: float, radius: float, wobble: float = 0.25) -> np.ndarray:
    """Coverage of an irregular rounded shape (see `blob_depth`)."""
    return np.clip(blob_depth(rng, cy, cx, radius, wobble) + 0.5, 0.0, 1.0)


def _rasterise(draw_fn) -> np.ndarray:
    canvas = Image.new("L", (SIZE * SUPERSAMPLE, SIZE * SUPERSAMPLE), 0)
    draw_fn(ImageDraw.Draw(canvas), SUPERSAMPLE)
    small = canvas.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def stroke(paths: Sequence[Sequence[Point]], width: float) -> np.ndarray:
    """Coverage of polylines ``width`` pixels wide with round joints and caps."""

    def draw(canvas: ImageDraw.ImageDraw, s: int) -> None:
        w = max(1, round(width * s))
        for path in paths:
            scaled = [(x * s, y * s) for x, y in path]
            canvas.line(scaled, fill=255, width=w, joint="curve")
            for x, y in (scaled[0], scaled[-1]):
                canvas.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=255)

    return _rasterise(draw)


def polygons(shapes: Sequence[Sequence[Point]]) -> np.ndarray:
    """Coverage of filled polygons."""

    def draw(canvas: ImageDraw.ImageDraw, s: int) -> None:
        for shape in shapes:
            canvas.polygon([(x * s, y * s) for x, y in shape], fill=255)

    return _rasterise(draw)


def dots(centres: Sequence[Point], radii: Sequence[float]) -> np.ndarray:
    """Coverage of many small discs at once (grains, speckles, spatter)."""

    def draw(canvas: ImageDraw.ImageDraw, s: int) -> None:
        for (x, y), r in zip(centres, radii):
            canvas.ellipse(((x - r) * s, (y - r) * s, (x + r) * s, (y + r) * s), fill=255)

    return _rasterise(draw)


def rotated_rect(cx: float, cy: float, half_w: float, half_h: float, angle: float) -> list[Point]:
    """Corners of a rectangle centred on (cx, cy), rotated by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return [
        (cx + u * c - v * s, cy + u * s + v * c)
        for u, v in ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h))
    ]


# --- paths ------------------------------------------------------------------------------


def wander(
    rng: np.random.Generator, start: Point, angle: float, length: float, step: float, turn: float
) -> list[Point]:
    """A random walk: ``length`` pixels in steps of ``step``, each turning up to ``turn`` radians."""
    x, y = start
    points = [(x, y)]
    for _ in range(max(1, int(length / step))):
        angle += rng.uniform(-turn, turn)
        x, y = x + step * np.cos(angle), y + step * np.sin(angle)
        points.append((x, y))
    return points


def bent_line(rng: np.random.Generator, centre: Point, angle: float, length: float, bend: float) -> list[Point]:
    """A nearly straight line through ``centre``: a gentle arc whose sag is ``bend`` x length."""
    cx, cy = centre
    sag = bend * length * rng.uniform(-1, 1)
    points = []
    for t in np.linspace(-0.5, 0.5, 12):
        offset = sag * (1 - 4 * t * t)
        x = cx + t * length * np.cos(angle) - offset * np.sin(angle)
        y = cy + t * length * np.sin(angle) + offset * np.cos(angle)
        points.append((float(x), float(y)))
    return points


def jagged_bite(rng: np.random.Generator, centre: Point, direction: float, depth: float, width: float) -> list[Point]:
    """An irregular polygon that bites ``depth`` pixels inwards along ``direction`` from an edge at ``centre``.

    It starts well outside the edge, so the part of the object it covers is a
    notch with a ragged inner outline.
    """
    cx, cy = centre
    ux, uy = np.cos(direction), np.sin(direction)  # inwards
    vx, vy = -uy, ux  # along the edge
    outline: list[Point] = [(cx - ux * 20 - vx * width / 2, cy - uy * 20 - vy * width / 2)]
    steps = 9
    for i in range(steps + 1):
        t = i / steps
        along = (t - 0.5) * width
        reach = depth * np.sin(np.pi * t) ** 0.7 * rng.uniform(0.65, 1.1)
        outline.append((cx + vx * along + ux * reach, cy + vy * along + uy * reach))
    outline.append((cx - ux * 20 + vx * width / 2, cy - uy * 20 + vy * width / 2))
    return [(float(x), float(y)) for x, y in outline]
