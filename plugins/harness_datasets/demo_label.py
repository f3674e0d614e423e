"""Demo category ``label``: a printed paper product label stuck on a cardboard box.

Normal: an off-white rectangular label, slightly shifted and rotated, with a
coloured frame, a coloured header band with white title lettering, five lines
of dark body text (justified, so the text block has no gaps) and a barcode;
the print content changes from label to label. Kraft cardboard around it.

Defects (folder key: what it looks like):

- ``missing_print``: a rectangular patch of the body text or barcode is absent; blank paper
  shows where the print should be.
- ``ink_smear``: a dark grey streak of ink dragged across the label, fading along its length.
- ``stain``: a roundish light-brown blotch with a darker rim, as from a coffee drop.
- ``crease``: a straight fold line across the label, a dark line with a light edge beside it.
- ``tear``: a ragged notch torn out of the label edge, showing the cardboard beneath.
"""

from __future__ import annotations

import numpy as np

from harness_datasets.demo_draw import (
    SIZE,
    CategoryRecipe,
    Point,
    Scene,
    bent_line,
    blob_depth,
    blur,
    colour,
    grid,
    jagged_bite,
    lighting,
    polygons,
    rotated_rect,
    sensor_noise,
    smooth_noise,
    stroke,
)

CARDBOARD = (0.60, 0.46, 0.31)
PAPER = (0.94, 0.93, 0.89)
INK = (0.12, 0.12, 0.14)
ACCENT = (0.16, 0.28, 0.58)
BODY_LINES = 5
LINE_PITCH = 11.0
MARGIN = 13.0  # print area inset from the label edge


class LabelFrame:
    """The label's own coordinates: ``u`` to the right, ``v`` down, origin at its centre."""

    def __init__(self, cx: float, cy: float, half_w: float, half_h: float, angle: float) -> None:
        self.cx, self.cy, self.half_w, self.half_h, self.angle = cx, cy, half_w, half_h, angle

    def to_image(self, u: float, v: float) -> Point:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return (self.cx + u * c - v * s, self.cy + u * s + v * c)

    def box(self, u0: float, v0: float, u1: float, v1: float) -> list[Point]:
        """The image-space corners of a label-space rectangle."""
        return [self.to_image(u, v) for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]

    def outline(self, inset: float = 0.0) -> list[Point]:
        return rotated_rect(self.cx, self.cy, self.half_w - inset, self.half_h - inset, self.angle)

    def body_top(self) -> float:
        return -self.half_h + 40

    def barcode_top(self) -> float:
        return self.half_h - MARGIN - 17


def normal(rng: np.random.Generator) -> Scene:
    """A defect-free label."""
    frame = LabelFrame(
        cx=SIZE / 2 + rng.uniform(-6, 6),
        cy=SIZE / 2 + rng.uniform(-6, 6),
        half_w=rng.uniform(86, 91),
        half_h=rng.uniform(66, 71),
        angle=rng.uniform(-3, 3) * np.pi / 180,
    )
    paper_cover = polygons([frame.outline()])

    card = colour(CARDBOARD, rng, 0.06)
    texture = 0.035 * smooth_noise(rng, 1.5, 14) + 0.04 * smooth_noise(rng, 28)
    flutes = 0.015 * np.sin(grid()[1] * 2 * np.pi / rng.uniform(8, 10) + rng.uniform(0, 6.3))
    cardboard = card * (1 + texture + flutes)[..., None]
    cardboard *= (1 - 0.35 * blur(np.roll(paper_cover, (3, 2), axis=(0, 1)), 2.5))[..., None]  # drop shadow

    paper = colour(PAPER, rng, 0.015) * (1 + 0.015 * smooth_noise(rng, 2))[..., None]
    accent = colour(ACCENT, rng, 0.08)
    blank = _over(cardboard, paper, paper_cover)
    blank = _over(blank, accent, polygons([frame.outline(6)]) - polygons([frame.outline(8.5)]))
    band = frame.box(-frame.half_w + MARGIN, -frame.half_h + MARGIN, frame.half_w - MARGIN, -frame.half_h + 30)
    blank = _over(blank, accent, polygons([band]))
    blank = _over(blank, paper, polygons(_title(rng, frame)))

    printed = _over(blank, colour(INK, rng, 0.1), polygons(_body_text(rng, frame) + _barcode(rng, frame)))
    return Scene(
        albedo=printed.astype(np.float32),
        body=paper_cover > 0,
        anchors=polygons([frame.outline(MARGIN + 2)]) > 0.99,
        light=lighting(rng, gradient=0.06, vignette=0.06),
        noise=sensor_noise(rng, 0.010),
        layers={"cardboard": cardboard.astype(np.float32), "blank": blank.astype(np.float32)},
        parts={"frame": frame},
    )


def _over(under: np.ndarray, colour_: np.ndarray, cover: np.ndarray) -> np.ndarray:
    cover = np.clip(cover, 0, 1)[..., None]
    return under * (1 - cover) + colour_ * cover


def _letters(
    rng: np.random.Generator, u0: float, u1: float, v_base: float, x_height: float, tall: float
) -> list[tuple[float, float, float, float]]:
    """Word-like runs of letter-sized blocks from ``u0`` to about ``u1``, as label-space boxes (u0, v0, u1, v1)."""
    boxes: list[tuple[float, float, float, float]] = []
    u = u0
    while u < u1:
        for _ in range(int(rng.integers(2, 9))):  # one word
            width = rng.uniform(2.2, 4.2)
            if u + width > u1:
                break
            height = tall if rng.random() < 0.25 else x_height
            boxes.append((u, v_base - height, u + width, v_base))
            u += width + 1.2
        u += 4.5
    return boxes


def _title(rng: np.random.Generator, frame: LabelFrame) -> list[list[Point]]:
    """White title lettering in the header band, left aligned, of varying length."""
    u0 = -frame.half_w + MARGIN + 6
    u1 = u0 + rng.uniform(60, 120)
    v_base = -frame.half_h + 26
    return [frame.box(*b) for b in _letters(rng, u0, u1, v_base, 8.0, 9.5)]


def _body_text(rng: np.random.Generator, frame: LabelFrame) -> list[list[Point]]:
    """Five justified lines of dark text: no line ends short, so the block has no blank holes."""
    u0, u1 = -frame.half_w + MARGIN + 2, frame.half_w - MARGIN - 2
    shapes = []
    for line in range(BODY_LINES):
        v_base = frame.body_top() + line * LINE_PITCH + 6
        shapes += [frame.box(*b) for b in _letters(rng, u0, u1, v_base, 5.0, 7.0)]
    return shapes


def _barcode(rng: np.random.Generator, frame: LabelFrame) -> list[list[Point]]:
    """A barcode of random bars at the bottom left of the label."""
    u = -frame.half_w + MARGIN + 2
    end = u + rng.uniform(95, 115)
    v0, v1 = frame.barcode_top(), frame.half_h - MARGIN
    bars = []
    while u < end:
        width = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        bars.append(frame.box(u, v0, u + width, v1))
        u += width + float(rng.choice([1.0, 1.5, 2.5]))
    return bars


def missing_print(scene: Scene, rng: np.random.Generator) -> None:
    """A rectangle of print that never made it onto the paper: body text or barcode bars."""
    frame: LabelFrame = scene.parts["frame"]
    if rng.random() < 0.7:
        first = int(rng.integers(0, BODY_LINES - 1))
        lines = int(rng.integers(1, 3))
        width = rng.uniform(36, 70)
        u0 = rng.uniform(-frame.half_w + MARGIN, frame.half_w - MARGIN - width)
        v0 = frame.body_top() + first * LINE_PITCH - 2
        region = frame.box(u0, v0, u0 + width, v0 + lines * LINE_PITCH)
    else:
        width = rng.uniform(22, 40)
        u0 = -frame.half_w + MARGIN + rng.uniform(2, 95 - width)
        region = frame.box(u0, frame.barcode_top() - 1, u0 + width, frame.half_h - MARGIN + 1)
    scene.reveal(polygons([region]), "blank")


def ink_smear(scene: Scene, rng: np.random.Generator) -> None:
    """A dark streak of wet ink dragged across the label, fading from where it started."""
    y, x = scene.pick_anchor(rng)
    frame: LabelFrame = scene.parts["frame"]
    angle = frame.angle + rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.5 else 0)
    length = rng.uniform(45, 90)
    path = bent_line(rng, (x + length / 2 * np.cos(angle), y + length / 2 * np.sin(angle)), angle, length, 0.05)
    streak = blur(stroke([path], rng.uniform(10, 16)), 1.5)
    yy, xx = grid()
    along = np.clip(((xx - x) * np.cos(angle) + (yy - y) * np.sin(angle)) / length, 0, 1)
    drag = np.clip(0.8 + 0.2 * smooth_noise(rng, 1.2, 8), 0.5, 1.0)  # streaks along the drag
    alpha = streak * (1 - 0.45 * along) * drag * rng.uniform(0.75, 0.92)
    alpha[alpha < 0.06] = 0
    scene.paint(alpha, (0.17, 0.17, 0.24))


def stain(scene: Scene, rng: np.random.Generator) -> None:
    """A coffee-drop blotch: a light brown fill with a darker dried rim."""
    cy, cx = scene.pick_anchor(rng)
    depth = blob_depth(rng, cy, cx, rng.uniform(14, 30), wobble=0.3)
    inside = np.clip(depth + 0.5, 0, 1)
    rim = inside - np.clip(depth - 2.0, 0, 1)  # the outermost 2.5 px, where the drop dried darker
    fill = inside * np.clip(0.8 + 0.2 * smooth_noise(rng, 5), 0.5, 1.0) * rng.uniform(0.3, 0.45)
    alpha = np.maximum(fill, rim * rng.uniform(0.6, 0.8))
    scene.paint(alpha, colour((0.55, 0.37, 0.18), rng, 0.08))


def crease(scene: Scene, rng: np.random.Generator) -> None:
    """A straight fold across the label: a dark line with a light edge on one side."""
    y, x = scene.pick_anchor(rng)
    angle = rng.uniform(0, np.pi)
    path = bent_line(rng, (x, y), angle, 2 * SIZE, bend=0.0)
    nx, ny = -np.sin(angle), np.cos(angle)
    light_side = [(px + 1.6 * nx, py + 1.6 * ny) for px, py in path]
    fold = stroke([path], 2.0)
    lit = stroke([light_side], 1.6) * (1 - fold)
    # The far side of the fold tilts away from the light: a soft darker band along the line.
    yy, xx = grid()
    across = (xx - x) * nx + (yy - y) * ny  # signed distance from the fold line
    tilted = np.clip(1 - across / -8.0, 0, 1) * (across < 0) * (1 - fold)
    scene.shade(-fold * rng.uniform(0.45, 0.6) + lit * 0.2 - tilted * 0.08)


def tear(scene: Scene, rng: np.random.Generator) -> None:
    """A ragged notch torn out of the label edge, with white paper fibres along the tear."""
    frame: LabelFrame = scene.parts["frame"]
    side = int(rng.integers(4))
    if side < 2:
        along = rng.uniform(-frame.half_w + 25, frame.half_w - 25)
        v = -frame.half_h if side == 0 else frame.half_h
        centre, inwards = frame.to_image(along, v), frame.angle + (np.pi / 2 if side == 0 else -np.pi / 2)
    else:
        along = rng.uniform(-frame.half_h + 25, frame.half_h - 25)
        u = -frame.half_w if side == 2 else frame.half_w
        centre, inwards = frame.to_image(u, along), frame.angle + (0.0 if side == 2 else np.pi)
    outline = jagged_bite(rng, centre, inwards, depth=rng.uniform(10, 22), width=rng.uniform(18, 38))
    region = polygons([outline])
    fibres = np.clip(blur(region, 1.0) * 2.0, 0, 1)
    scene.paint(fibres * 0.8, (1.0, 1.0, 0.98))
    scene.reveal(region, "cardboard")


RECIPE = CategoryRecipe(
    name="label",
    normal=normal,
    defects={"crease": crease, "ink_smear": ink_smear, "missing_print": missing_print, "stain": stain, "tear": tear},
)
