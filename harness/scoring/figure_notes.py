"""Why a figure is undefined, and the notes saying what a mean over categories left out.

`harness.scoring.metrics` reports a figure that is undefined for a category as None
(null in run.json), never as 0 or 1 by accident. This module writes the
reason kept beside it (a category's ``undefined``: ``{figure: why}``) and the
``notes`` of a model's metrics, which name the categories each mean left out
and the classes macro-F1 did not average, so a reader of a mean knows what it
covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The figures averaged over categories, with the names notes use for them.
MEAN_FIGURES: dict[str, str] = {"accuracy": "accuracy", "macro_f1": "macro-F1", "kappa": "kappa"}


def undefined_reasons(scores: dict[str, Any], y_true: Sequence[str], labels: Sequence[str], protocol: str) -> dict[str, str]:
    """``{figure: why}`` for each figure of one category's ``scores`` that is None.

    Over zero images every figure is undefined; with images only kappa can be
    (one true class: see `harness.scoring.metrics.cohen_kappa`).
    """
    reasons = {}
    for figure in MEAN_FIGURES:
        if scores.get(figure) is not None:
            continue
        if not y_true:
            reasons[figure] = f"no image to score under protocol {protocol}"
        elif len(labels) == 1:
            reasons[figure] = f"one true class: {labels[0]!r} is the only class under protocol {protocol}"
        else:
            reasons[figure] = f"one true class: all {len(y_true)} scored images are {y_true[0]!r}"
    return reasons


def protocol_notes(protocol: str, result: dict[str, Any]) -> list[str]:
    """The notes of one protocol's scores (`harness.scoring.metrics.score_protocol`), each prefixed with the protocol."""
    categories = result["categories"]
    notes = []
    if result["excluded"]:
        notes.append(f"{protocol}: no image to score in {', '.join(result['excluded'])}; left out of every mean")
    scored = [c for c, entry in categories.items() if entry["n"]]
    for figure, name in MEAN_FIGURES.items():
        undefined = [c for c in scored if categories[c][figure] is None]
        if not undefined:
            continue
        kept = len(scored) - len(undefined)
        covers = f"the mean {name} is over the other {kept}" if kept else f"the mean {name} is undefined"
        reasons = "; ".join(f"{c}: {categories[c]['undefined'][figure]}" for c in undefined)
        notes.append(f"{protocol}: {name} is undefined in {len(undefined)} of {len(scored)} categories "
                     f"and left out of the mean ({reasons}); {covers}")
    absent = {c: categories[c]["macro_f1_absent_classes"] for c in scored if categories[c].get("macro_f1_absent_classes")}
    if absent:
        listed = "; ".join(f"{c}: {', '.join(classes)}" for c, classes in absent.items())
        notes.append(f"{protocol}: macro-F1 averages only the classes with a scored image or a prediction; "
                     f"left out ({listed})")
    return notes
