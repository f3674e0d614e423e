"""Percentiles and the percentile bootstrap of the mean-over-categories accuracy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def percentile(values: Iterable[float], q: float | Sequence[float]) -> float | list[float] | None:
    """Percentile(s) ``q`` (0-100) of ``values`` with linear interpolation; None when empty."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return None
    result = np.percentile(array, q)
    return float(result) if np.ndim(result) == 0 else [float(x) for x in result]


def bootstrap_accuracy(
    correct_by_category: dict[str, Sequence[bool]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[list[float], dict[str, list[float]]]:
    """Percentile bootstrap intervals of the mean-over-categories accuracy and of each category's.

    The values may be any per-image numbers, not only hits: `harness.scoring.compare`
    passes paired differences (B correct - A correct) to get a paired interval.

    Images are resampled with replacement *within* each category, so every
    resample keeps each category's size and the mean stays over the same
    categories, as the benchmark figure is. One seeded generator draws the
    categories in the given order, so equal inputs and seed give equal
    intervals. Returns ``([lo, hi], {category: [lo, hi]})``; categories with no
    images must be left out by the caller.
    """
    if not correct_by_category:
        raise ValueError("bootstrap over zero categories is undefined")
    rng = np.random.default_rng(seed)
    tail = (1.0 - level) / 2 * 100
    qs = [tail, 100 - tail]
    resampled = {}
    for category, correct in correct_by_category.items():
        hits = np.asarray(correct, dtype=float)
        if hits.size == 0:
            raise ValueError(f"category {category!r} has no images to resample")
        # (n_boot, n) indices at once: every resample in one vectorised draw.
        draws = rng.integers(0, hits.size, size=(n_boot, hits.size))
        resampled[category] = hits[draws].mean(axis=1)
    means = np.mean(np.stack(list(resampled.values()), axis=1), axis=1)
    per_category = {c: percentile(acc, qs) for c, acc in resampled.items()}
    return percentile(means, qs), per_category
