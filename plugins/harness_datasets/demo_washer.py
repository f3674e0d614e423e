"""Demo category ``washer``: a turned steel flat washer lying on a dark cloth, seen from above.

Normal: a grey metal ring with fine concentric lathe marks, a bright
anisotropic highlight band, and bevelled inner and outer edges that catch the
light; a soft shadow on the cloth. Position, size, a slight tilt (an ellipse
at a random angle), metal tone and light direction vary from picture to picture.

Defects (folder key: what it looks like):

- ``scratch``: a thin straight groove across the face, a bright line with a dark edge.
- ``crack``: a dark jagged line running from the inner or outer edge into the ring.
- ``dent``: a small round depression, dark on the side nearest the light and bright opposite.
- ``rust``: a blotchy orange-brown corrosion patch, often with small spots around it.
- ``missing_piece``: a ragged bite out of the outer edge; the cloth shows through.
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

CLOTH = (0.15, 0.16, 0.19)
STEEL = (0.60, 0.61, 0.63)


def normal(rng: np.random.Generator) -> Scene:
    """A defect-free washer."""
    yy, xx = grid()
    cy, cx = SIZE / 2 + rng.uniform(-8, 8, 2)
    outer, inner = rng.uniform(88, 94), rng.uniform(36, 41)
    light_from = rng.uniform(-150, -110) * np.pi / 180

    # A slight tilt turns the circle into an ellipse with a random axis.
    tilt_axis, squash = rng.uniform(0, np.pi), rng.uniform(0.95, 1.0)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(tilt_axis) + dy * np.sin(tilt_axis)
    v = (-dx * np.sin(tilt_axis) + dy * np.cos(tilt_axis)) / squash
    radius = np.hypot(u, v)
    angle = np.arctan2(dy, dx)
    coverage = np.clip(outer - radius + 0.5, 0, 1) * np.clip(radius - inner + 0.5, 0, 1)

    cloth = colour(CLOTH, rng, 0.08) * (1 + 0.05 * smooth_noise(rng, 1.2) + 0.05 * smooth_noise(rng, 30))[..., None]
    shadow = blur(np.roll(coverage, (4, 4), axis=(0, 1)), 3.0)  # cast away from the top-left light
    cloth = cloth * (1 - 0.55 * shadow)[..., None]

    metal = _turned_steel(rng, radius, angle, inner, outer, light_from)
    albedo = cloth * (1 - coverage[..., None]) + metal * coverage[..., None]
    return Scene(
        albedo=albedo.astype(np.float32),
        body=coverage > 0,
        anchors=(radius > inner + 9) & (radius < outer - 9),
        light=lighting(rng, gradient=0.05, vignette=0.06),
        noise=sensor_noise(rng, 0.012),
        layers={"cloth": cloth.astype(np.float32)},
        parts={"centre": (cy, cx), "radii": (inner, outer), "radius": radius, "light_from": light_from},
    )


def _turned_steel(
    rng: np.random.Generator, radius: np.ndarray, angle: np.ndarray, inner: float, outer: float, light_from: float
) -> np.ndarray:
    """Steel with concentric lathe marks, a highlight band and lit bevels."""
    # Lathe marks: brightness that varies only with the radius.
    knots = rng.standard_normal(int(SIZE / 1.5) + 2)
    rings = np.interp(radius / 1.5, np.arange(knots.size), knots) * 0.035
    rings += 0.02 * np.sin(radius * rng.uniform(2.2, 2.8) + rng.uniform(0, 2 * np.pi))
    # Turned metal reflects a light as a bright band through the centre, across the light direction.
    across = np.cos(angle - light_from - np.pi / 2)
    highlight = 0.25 * np.abs(across) ** 6 * np.where(across > 0, 1.0, 0.7)
    facing = np.cos(angle - light_from)  # +1 on the side towards the light
    outer_bevel = np.clip(1 - (outer - radius) / 4, 0, 1)
    inner_bevel = np.clip(1 - (radius - inner) / 3, 0, 1)
    shading = 1 + rings + highlight + 0.05 * facing + 0.35 * facing * outer_bevel - 0.35 * facing * inner_bevel
    grain = 0.02 * smooth_noise(rng, 1.0)
    return colour(STEEL, rng, 0.06, hue=0.006) * (shading + grain)[..., None]


def scratch(scene: Scene, rng: np.random.Generator) -> None:
    """A straight groove: a bright line with a dark shadowed edge beside it."""
    y, x = scene.pick_anchor(rng)
    angle = rng.uniform(0, np.pi)
    path = bent_line(rng, (x, y), angle, rng.uniform(30, 80), bend=0.02)
    normal_x, normal_y = -np.sin(angle), np.cos(angle)
    shadow_side = [(px + 1.3 * normal_x, py + 1.3 * normal_y) for px, py in path]
    width = rng.uniform(1.2, 1.8)
    groove = stroke([path], width)
    scene.paint(stroke([shadow_side], width) * (1 - groove) * 0.7, (0.15, 0.15, 0.16))
    scene.paint(groove * rng.uniform(0.75, 0.9), (0.97, 0.97, 0.98))


def crack(scene: Scene, rng: np.random.Generator) -> None:
    """A dark jagged line growing from the inner or outer edge into the ring."""
    cy, cx = scene.parts["centre"]
    inner, outer = scene.parts["radii"]
    at = rng.uniform(0, 2 * np.pi)
    from_inner = rng.random() < 0.5
    start_radius = inner - 1 if from_inner else outer + 1
    heading = at if from_inner else at + np.pi  # into the metal
    start = (cx + start_radius * np.cos(at), cy + start_radius * np.sin(at))
    trunk = wander(rng, start, heading + rng.uniform(-0.4, 0.4), rng.uniform(20, 45), step=3, turn=0.5)
    paths = [trunk]
    if rng.random() < 0.5:
        fork = heading + rng.choice([-1, 1]) * 0.9
        paths.append(wander(rng, trunk[len(trunk) // 2], fork, rng.uniform(8, 18), step=3, turn=0.5))
    scene.paint(stroke(paths, rng.uniform(1.4, 2.1)) * 0.95, (0.06, 0.06, 0.07))


def dent(scene: Scene, rng: np.random.Generator) -> None:
    """A round depression: its wall nearest the light is in shadow, the far wall lit."""
    inner, outer = scene.parts["radii"]
    ring = scene.parts["radius"]
    cy, cx = scene.pick_anchor(rng, (ring > inner + 14) & (ring < outer - 14))
    size = rng.uniform(7, 13)
    bowl = blob(rng, cy, cx, size, wobble=0.08)
    distance, angle = polar(cy, cx)
    towards_light = np.cos(angle - scene.parts["light_from"])
    scene.shade(bowl * (-0.15 - 0.45 * towards_light * np.clip(distance / size, 0, 1)))


def rust(scene: Scene, rng: np.random.Generator) -> None:
    """A blotchy orange-brown corrosion patch with a few satellite spots."""
    cy, cx = scene.pick_anchor(rng)
    size = rng.uniform(10, 24)
    patch = blur(blob(rng, cy, cx, size, wobble=0.45), 1.5)
    spots = rng.integers(2, 6)
    offsets = rng.normal(0, size * 0.9, (spots, 2))
    patch = np.maximum(patch, dots([(cx + ox, cy + oy) for ox, oy in offsets], rng.uniform(1.5, 4.0, spots)))
    grain = np.clip(0.6 + 0.4 * smooth_noise(rng, 2.5), 0.3, 1.0)
    alpha = patch * grain * rng.uniform(0.75, 0.95)
    alpha[alpha < 0.08] = 0
    mix = np.clip(0.5 + 0.5 * smooth_noise(rng, 4), 0, 1)[..., None]
    orange, brown = colour((0.62, 0.31, 0.11), rng, 0.08), np.array([0.33, 0.17, 0.08], dtype=np.float32)
    scene.paint(alpha, orange * mix + brown * (1 - mix))


def missing_piece(scene: Scene, rng: np.random.Generator) -> None:
    """A ragged piece broken out of the outer edge; the cloth shows through."""
    cy, cx = scene.parts["centre"]
    inner, outer = scene.parts["radii"]
    at = rng.uniform(0, 2 * np.pi)
    edge = (cx + outer * np.cos(at), cy + outer * np.sin(at))
    depth = rng.uniform(0.3, 0.6) * (outer - inner)
    outline = jagged_bite(rng, edge, at + np.pi, depth=depth, width=rng.uniform(25, 55))
    scene.reveal(polygons([outline]), "cloth")


RECIPE = CategoryRecipe(
    name="washer",
    normal=normal,
    defects={"crack": crack, "dent": dent, "missing_piece": missing_piece, "rust": rust, "scratch": scratch},
)
