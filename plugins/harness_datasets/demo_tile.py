"""Demo category ``tile``: a stone-look glazed ceramic tile seen from above, grout around it.

Normal: a warm beige glaze with soft mottling, faint strata and small dark and
light grains; the tile fills the frame but for a grey grout margin of varying
width, with a slightly bevelled edge; uneven light and sensor noise.

Defects (folder key: what it looks like):

- ``scratch``: a thin, almost straight light line cut into the glaze, 50-130 px long.
- ``crack``: a dark, jagged hairline that wanders across the tile and forks once or more.
- ``hole``: a small dark round pit (5-11 px radius), shadowed on the lit side, with a shaded rim.
- ``stain``: a soft-edged, irregular brownish patch, as from oil or rust-water.
- ``chip``: a ragged piece broken off the tile edge, exposing the red-brown clay body.
"""

from __future__ import annotations

import numpy as np

from harness_datasets.demo_draw import (
    SIZE,
    CategoryRecipe,
    Scene,
    bent_line,
    blob,
    blur,
    colour,
    dots,
    fractal_noise,
    grid,
    jagged_bite,
    lighting,
    polar,
    polygons,
    sensor_noise,
    smooth_noise,
    stroke,
    wander,
)

GLAZE = (0.80, 0.74, 0.64)
GROUT = (0.42, 0.41, 0.39)
CLAY = (0.60, 0.38, 0.28)
LIGHT_FROM = -3 * np.pi / 4  # top-left, the studio light of all demo pictures


def normal(rng: np.random.Generator) -> Scene:
    """A defect-free tile."""
    yy, xx = grid()
    left, top = rng.uniform(8, 15, 2)
    right, bottom = SIZE - rng.uniform(8, 15, 2)
    inside = np.minimum(np.minimum(xx - left, right - xx), np.minimum(yy - top, bottom - yy))
    coverage = np.clip(inside + 0.5, 0.0, 1.0)

    mottling = fractal_noise(rng, (70, 22, 7), (0.045, 0.03, 0.015))
    strata = smooth_noise(rng, 5, 70) if rng.random() < 0.5 else smooth_noise(rng, 70, 5)
    warmth = 0.02 * smooth_noise(rng, 45)
    glaze = colour(GLAZE, rng, 0.03) * (1 + mottling + 0.02 * strata)[..., None]
    glaze = glaze + warmth[..., None] * np.array([1.0, 0.2, -0.8], dtype=np.float32)
    glaze = _with_grains(rng, glaze)

    # A bevel: the edge facing the light is brighter, the far edge darker.
    bevel = np.clip(1 - inside / 3, 0, 1) * (inside > -0.5)
    facing = np.where((xx - left < 3) | (yy - top < 3), 1.0, -1.0)
    glaze *= (1 + 0.12 * bevel * facing)[..., None]

    grout = colour(GROUT, rng, 0.05) * (1 + 0.08 * smooth_noise(rng, 1.5))[..., None]
    albedo = grout * (1 - coverage[..., None]) + glaze * coverage[..., None]
    clay_texture = 1 + 0.12 * smooth_noise(rng, 1.5) + 0.06 * smooth_noise(rng, 6)
    clay = np.asarray(CLAY, dtype=np.float32) * clay_texture[..., None]
    return Scene(
        albedo=albedo.astype(np.float32),
        body=coverage > 0,
        anchors=inside > 16,
        light=lighting(rng, gradient=0.06, vignette=0.08),
        noise=sensor_noise(rng, 0.010),
        layers={"clay": clay.astype(np.float32)},
        parts={"edges": (left, top, right, bottom)},
    )


def _with_grains(rng: np.random.Generator, glaze: np.ndarray) -> np.ndarray:
    """Sprinkle the small dark and light mineral grains of a stone-look glaze."""
    for count, shade in ((int(rng.integers(90, 160)), 0.55), (int(rng.integers(40, 80)), 1.12)):
        centres = [(float(x), float(y)) for x, y in rng.uniform(0, SIZE, (count, 2))]
        radii = rng.uniform(0.5, 1.4, count)
        cover = dots(centres, radii)[..., None] * rng.uniform(0.5, 0.9)
        glaze = glaze * (1 - cover) + np.clip(glaze * shade, 0, 1) * cover
    return glaze


def scratch(scene: Scene, rng: np.random.Generator) -> None:
    """A thin, nearly straight light line where the glaze was scraped."""
    y, x = scene.pick_anchor(rng)
    angle = rng.uniform(0, np.pi)
    path = bent_line(rng, (x, y), angle, rng.uniform(50, 130), bend=0.05)
    # The scraped line is lit; the scraped-up glaze beside it casts a faint shadow.
    shadow_side = [(px - 1.4 * np.sin(angle), py + 1.4 * np.cos(angle)) for px, py in path]
    width = rng.uniform(1.6, 2.6)
    line = stroke([path], width)
    scene.paint(stroke([shadow_side], width * 0.8) * (1 - line) * 0.35, (0.35, 0.32, 0.28))
    scene.paint(line * rng.uniform(0.75, 0.95), (0.99, 0.98, 0.96))


def crack(scene: Scene, rng: np.random.Generator) -> None:
    """A dark jagged hairline with one to three forks."""
    y, x = scene.pick_anchor(rng)
    angle = rng.uniform(0, 2 * np.pi)
    trunk = wander(rng, (x, y), angle, rng.uniform(60, 140), step=4, turn=0.55)
    forks = []
    for _ in range(int(rng.integers(1, 4))):
        start = trunk[int(rng.integers(2, len(trunk)))]
        heading = angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        forks.append(wander(rng, start, heading, rng.uniform(15, 45), step=3, turn=0.6))
    width = rng.uniform(1.4, 2.2)
    cover = np.maximum(stroke([trunk], width), stroke(forks, width * 0.7))
    scene.paint(cover * 0.92, (0.17, 0.14, 0.12))


def hole(scene: Scene, rng: np.random.Generator) -> None:
    """A small round pit: dark inside, its wall nearest the light in shadow, and a shaded rim."""
    cy, cx = scene.pick_anchor(rng)
    radius = rng.uniform(5, 11)
    pit = blob(rng, cy, cx, radius, wobble=0.12)
    distance, angle = polar(cy, cx)
    towards_light = np.cos(angle - LIGHT_FROM)
    depth = np.clip(distance / radius, 0, 1)
    scene.shade(-pit * (0.62 + 0.25 * towards_light * depth))
    rim = np.clip(blob(rng, cy, cx, radius + 2.5, wobble=0.05) - pit, 0, 1)
    # A raised lip: lit on the side facing the light, in shadow opposite; never exactly unchanged.
    scene.shade(rim * 0.3 * np.where(towards_light >= 0, 0.4 + 0.6 * towards_light, -0.4 + 0.6 * towards_light))


def stain(scene: Scene, rng: np.random.Generator) -> None:
    """A soft irregular brownish discolouration."""
    cy, cx = scene.pick_anchor(rng)
    radius = rng.uniform(14, 34)
    shape = blur(blob(rng, cy, cx, radius, wobble=0.4), radius * 0.12)
    texture = np.clip(0.75 + 0.25 * smooth_noise(rng, 6), 0.4, 1.0)
    alpha = shape * texture * rng.uniform(0.55, 0.8)
    alpha[alpha < 0.06] = 0  # no faint halo: the stain ends where it can be seen
    scene.paint(alpha, colour((0.40, 0.26, 0.15), rng, 0.1))


def chip(scene: Scene, rng: np.random.Generator) -> None:
    """A ragged piece missing from the tile edge, showing the clay body beneath the glaze."""
    left, top, right, bottom = scene.parts["edges"]
    along = rng.uniform(40, SIZE - 40)
    side = int(rng.integers(4))
    sides = [((left, along), 0.0), ((right, along), np.pi), ((along, top), np.pi / 2), ((along, bottom), -np.pi / 2)]
    centre, inwards = sides[side]  # a point on that edge, and the direction into the tile
    outline = jagged_bite(rng, centre, inwards, depth=rng.uniform(12, 26), width=rng.uniform(22, 50))
    region = polygons([outline])
    scene.reveal(region, "clay")
    # The broken rim of the glaze catches a dark shadow line along the break.
    edge = np.clip(blur(region, 1.0) - region, 0, 1)
    scene.shade(-0.45 * np.clip(edge * 3, 0, 1))


RECIPE = CategoryRecipe(
    name="tile",
    normal=normal,
    defects={"chip": chip, "crack": crack, "hole": hole, "scratch": scratch, "stain": stain},
)
