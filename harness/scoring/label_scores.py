"""Label-level scores over plain lists: accuracy, per-class precision/recall/F1, macro-F1, Cohen's kappa, confusion.

Each function takes the true labels and the *prediction keys*
(`harness.scoring.outcomes.pred_key`: a class key, or ``error:<kind>`` for a
failure) of one category's scored images. A figure that is undefined is None,
never 0 or 1 by accident.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.scoring.outcomes import ERROR_PREFIX
from harness.types import ERROR_KINDS


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float | None:
    """Fraction of positions where the prediction key equals the true label; None (undefined) over zero."""
    if not y_true:
        return None
    return float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))


def per_class_scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1, support and predicted count per class.

    Only classes of ``labels`` that occur among the true labels or the
    predictions are scored: for a class nobody has and nobody named every
    figure is 0/0. Precision of a class never predicted and recall of a class
    with no true image are None (0/0, undefined). F1 is ``2 TP / (support +
    predicted)``, the harmonic mean of precision and recall where both exist,
    and defined for every scored class: 0 for a class that is true but never
    predicted, or predicted but never true. Predictions outside ``labels``
    (error keys, ``good`` under the anomalous protocol) are misses for their
    true class and false positives for no class.
    """
    true_counts, pred_counts = Counter(y_true), Counter(y_pred)
    hits = Counter(t for t, p in zip(y_true, y_pred, strict=True) if t == p)
    scores = {}
    for label in labels:
        support, predicted = true_counts.get(label, 0), pred_counts.get(label, 0)
        if support == 0 and predicted == 0:
            continue
        tp = hits.get(label, 0)
        scores[label] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / support if support else None,
            "f1": 2 * tp / (support + predicted),
            "support": support,
            "predicted": predicted,
        }
    return scores


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float | None:
    """Unweighted mean of per-class F1 over the classes `per_class_scores` scores; None over zero samples."""
    scores = per_class_scores(y_true, y_pred, labels)
    if not scores:
        return None
    return float(np.mean([s["f1"] for s in scores.values()]))


def kappa_is_defined(y_true: Sequence[str]) -> bool:
    """Whether `cohen_kappa` is defined: the true labels hold at least two classes."""
    return len(set(y_true)) >= 2


def cohen_kappa(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float | None:
    """Cohen's kappa between true labels and predictions over ``labels``; None where undefined.

    The confusion matrix has a row per label and a column per label plus one
    "other" column for errors and predictions outside ``labels``; that column
    has no row, so it only lowers agreement. ``po = trace / n`` and
    ``pe = sum_k (row_k / n) * (col_k / n)``; kappa is ``(po - pe) / (1 - pe)``.

    Kappa is undefined (None) when the true labels hold fewer than two classes.
    With a single true class ``c`` only row ``c`` is filled, so ``pe = col_c / n
    = po``: the formula is 0/0 when every prediction is ``c`` (``pe == 1``) and
    exactly 0 otherwise, whatever the predictions (never negative). Either value
    would be an accident of the data, not a measure of the answers (a
    single-class category scored 1.0 when every answer parsed and 0.0 after one
    failure). With two or more true classes ``pe <= max_k row_k / n < 1``, so
    the formula is always defined; a constant predictor then scores 0, as it
    should. The rule depends on the truth only, so every model scored on the
    same images has kappa defined in the same categories and their means stay
    comparable.
    """
    if not kappa_is_defined(y_true):
        return None
    n = len(y_true)
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    matrix = np.zeros((len(labels), len(labels) + 1))
    for t, p in zip(y_true, y_pred, strict=True):
        if t not in index:
            raise ValueError(f"true label {t!r} is not in the label set {list(labels)}")
        matrix[index[t], index.get(p, other)] += 1
    po = np.trace(matrix[:, :other]) / n
    pe = float(np.sum(matrix.sum(axis=1) / n * matrix[:, :other].sum(axis=0) / n))
    return float((po - pe) / (1.0 - pe))


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """Confusion counts ``{true_label: {prediction_key: count}}``, zeros left out.

    Rows and columns follow ``labels``; unexpected predicted labels follow, then
    ``error:<kind>`` columns in the order of `ERROR_KINDS`, so the JSON is stable.
    """
    order = {label: i for i, label in enumerate(labels)}
    errors = {ERROR_PREFIX + kind: i for i, kind in enumerate(ERROR_KINDS)}

    def sort_key(key: str) -> tuple[int, int, str]:
        if key in order:
            return (0, order[key], key)
        if key in errors:
            return (2, errors[key], key)
        return (1, 0, key)

    pairs = Counter(zip(y_true, y_pred, strict=True))
    table: dict[str, dict[str, int]] = {}
    for t in sorted({t for t, _ in pairs}, key=sort_key):
        row = {p: c for (tt, p), c in pairs.items() if tt == t}
        table[t] = {p: row[p] for p in sorted(row, key=sort_key)}
    return table
