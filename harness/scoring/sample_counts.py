"""Settings that leave a defect class with nothing, or almost nothing, to score.

Checked as the data is loaded, before any gate or model runs: ``--shots K`` is refused when the
support would take every test image of a defect class (the message gives the largest K that works);
any setting (``--shots``, ``--limit``) that leaves a class fewer than `MIN_TO_SCORE` images draws a
warning and a ``benchmark.notes.few_to_score`` note. One image left is only a warning, because the
test kit's tiny benchmark (two images per class) checks few-shot classifiers with ``--shots 1``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from harness.errors import HarnessError
from harness.types import BenchmarkData, Category

#: Fewer images of a defect class than this left to score draws a warning.
MIN_TO_SCORE = 2

#: Classes named in one message; the rest are counted.
_SHOWN = 12

log = logging.getLogger(__name__)


def defect_counts(categories: list[Category]) -> dict[str, Counter]:
    """``{category: Counter({defect class: test images})}`` over the categories' current test sets."""
    return {c.name: Counter(s.label for s in c.test_samples if s.is_anomalous) for c in categories}


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def check_shots(categories: list[Category], shots: int) -> None:
    """Refuse ``--shots`` when the support would take every test image of some defect class."""
    if not shots:
        return
    sizes = defect_counts(categories)
    short = [f"{category}/{label} {n}" for category, counts in sizes.items() for label, n in sorted(counts.items())
             if n <= shots]
    if not short:
        return
    smallest = min(n for counts in sizes.values() for n in counts.values())
    if smallest < 2:
        advice = "a class with a single test image cannot give support, so no --shots works; pick other categories with --category"
    else:
        advice = f"the largest --shots that leaves every class an image to score is {smallest - 1}"
        if smallest - MIN_TO_SCORE >= 1:
            advice += f", and {smallest - MIN_TO_SCORE} leaves {MIN_TO_SCORE}"
    raise HarnessError(
        f"--shots {shots} would take every test image of {len(short)} defect class(es) as support, leaving "
        f"nothing of them to score (test images per class: {_listing(short)}); {advice}"
    )


def warn_few_to_score(data: BenchmarkData, before: dict[str, Counter], shots: int = 0,
                      limit: int | None = None) -> dict[str, Any] | None:
    """Warn when ``--shots``/``--limit`` left a defect class fewer than `MIN_TO_SCORE` images to score.

    ``before`` is `defect_counts` of the data as loaded; a class the data itself holds fewer images of
    draws no warning. The note (None when nothing is short) also goes into ``data.notes``.
    """
    settings = " ".join(f"--{name} {value}" for name, value in (("shots", shots), ("limit", limit)) if value)
    after = defect_counts(data.categories)
    short = {
        category: {label: {"scored": after[category][label], "in_data": n} for label, n in sorted(counts.items())
                   if after[category][label] < MIN_TO_SCORE and after[category][label] < n}
        for category, counts in before.items()
    }
    short = {category: classes for category, classes in short.items() if classes}
    if not short:
        return None
    listed = [f"{category}/{label} {c['scored']} of {c['in_data']}" for category, classes in short.items()
              for label, c in classes.items()]
    scored, anomalous = len(data.samples), sum(sum(counts.values()) for counts in after.values())
    log.warning(
        "%s leaves fewer than %d images to score in %d defect class(es) (%s); %d images are scored, %d of them "
        "anomalous (the data has %d anomalous). Figures over so few images are noisy, and a class with none is "
        "left out of macro-F1.",
        settings, MIN_TO_SCORE, len(listed), _listing(listed), scored, anomalous,
        sum(sum(counts.values()) for counts in before.values()),
    )
    note = {"settings": settings, "min_to_score": MIN_TO_SCORE, "classes": short}
    data.notes["few_to_score"] = note
    return note
