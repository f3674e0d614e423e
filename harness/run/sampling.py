"""Seeded choices of which images a run uses: the reference normal, the support set, the subset.

Each depends only on the seed and the names involved, so a run, its resume and a report agree.
"""

from __future__ import annotations

import random
from pathlib import Path

from harness.types import Category, Sample


def reference_path(category: Category, seed: int) -> Path | None:
    """The training normal a run with ``seed`` shows beside ``category``'s queries: the class file's, else drawn."""
    if category.reference is not None:
        return category.reference
    if not category.train_images:
        return None
    return random.Random(f"{seed}:{category.name}").choice(category.train_images)


def draw_support(samples: list[Sample], shots: int, seed: int) -> list[Sample]:
    """``shots`` samples of each anomaly class (seeded), leaving at least one of each class to score."""
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.is_anomalous:
            by_class.setdefault(sample.label, []).append(sample)
    support = []
    for label, members in sorted(by_class.items()):
        take = min(shots, len(members) - 1)
        rng = random.Random(f"{seed}:support:{label}")
        support.extend(members[i] for i in sorted(rng.sample(range(len(members)), take)))
    return support


def seeded_subset(samples: list[Sample], limit: int, seed: int) -> list[Sample]:
    """At most ``limit`` of ``samples`` (``--limit``), drawn with ``seed`` and kept in their given order."""
    if limit >= len(samples):
        return samples
    chosen = random.Random(seed).sample(range(len(samples)), limit)
    return [samples[i] for i in sorted(chosen)]
