"""Scatter plots as inline SVG, written by hand; every text is XML-escaped (model names are user input)."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 460, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 46
DOT = "#4c6ef5"
FRONT = "#e8590c"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def scatter(points: list[tuple[str, float, float, bool, str]], x_title: str, y_title: str, caption: str) -> str:
    """An SVG scatter of ``(tag, x, y, on_front, name)``, y in [0, 1] shown as percent, with a dashed
    step line through the Pareto front. ``tag`` (the rank) labels the dot, nearly coinciding dots
    share one; ``name`` is its tooltip, ``caption`` the SVG's title. No points: the SVG says so."""
    parts = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(caption)}">',
        f"<title>{escape(caption)}</title>",
    ]
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">'
                     "no model reported this figure</text></svg>")
        return "".join(parts)
    xs = [p[1] for p in points]
    ys = [100 * p[2] for p in points]
    x_ticks = nice_ticks(min(0.0, min(xs)), max(xs) if max(xs) > 0 else 1.0)
    y_ticks = nice_ticks(max(0.0, min(ys) - 10), min(100.0, max(ys) + 10))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    for tick in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(tick):.1f}" y2="{py(tick):.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    for tick in x_ticks:
        parts.append(f'<line class="grid" y1="{TOP}" y2="{TOP + plot_h}" x1="{px(tick):.1f}" x2="{px(tick):.1f}"/>')
        parts.append(f'<text class="tick" x="{px(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_fmt(tick)}</text>')
    parts.append(f'<text class="axis" x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_title)}</text>')
    parts.append(f'<text class="axis" transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_title)}</text>')

    front = sorted((p[1], 100 * p[2]) for p in points if p[3])
    if len(front) > 1:
        # A step line: from each front point go right at its accuracy, then up to the next one.
        path = [f"M{px(front[0][0]):.1f},{py(front[0][1]):.1f}"]
        for x, y in front[1:]:
            path.append(f"H{px(x):.1f}V{py(y):.1f}")
        parts.append(f'<path class="front" d="{"".join(path)}" fill="none" stroke="{FRONT}" '
                     'stroke-width="1.5" stroke-dasharray="5 3"/>')
    # Dots closer than a tag's width share one tag ("2, 6, 7") so crowded points stay readable.
    clusters: list[tuple[float, float, list[str]]] = []
    for tag, x, y, on_front, name in points:
        cx, cy = px(x), py(100 * y)
        colour = FRONT if on_front else DOT
        parts.append(
            f'<circle class="point{" on-front" if on_front else ""}" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(tag)}. {escape(name)}: {100 * y:.1f}% at {_fmt(x)}</title></circle>"
        )
        near = next((c for c in clusters if abs(c[0] - cx) < 14 and abs(c[1] - cy) < 12), None)
        if near:
            near[2].append(tag)
        else:
            clusters.append((cx, cy, [tag]))
    for cx, cy, tags in clusters:
        anchor, dx = ("end", -8) if cx > LEFT + plot_w * 0.8 else ("start", 8)
        parts.append(f'<text class="label" x="{cx + dx:.1f}" y="{cy - 6:.1f}" text-anchor="{anchor}">'
                     f'{escape(", ".join(tags))}</text>')
    parts.append("</svg>")
    return "".join(parts)
