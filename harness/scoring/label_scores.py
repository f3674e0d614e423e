"""Label-level scores: prediction keys and outcomes, accuracy, per-class F1, Cohen's kappa, confusion, bootstrap.

A record is a `harness.record.Record`: one (sample, model, repeat) of ``samples.jsonl``. Its
*prediction key* is its predicted class key, or ``error:<kind>`` when it
failed; an error key never equals a class key, so a failure always counts as
wrong and is never dropped. A figure that is undefined is None, never 0 or 1 by accident.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from harness.errors import HarnessError
from harness.types import ERROR_KINDS, GOOD


class ScoredRecord(Protocol):
    """What this module reads of a `harness.record.Record` (which derives its outcome here, so is not imported)."""

    sample_id: str
    model: str
    true_label: str
    predicted_label: str | None
    error: str | None
    gate: Any  # a harness.record.GateVerdict, or None

#: Every outcome `outcome_of` can return, in the order reports list them.
OUTCOMES: tuple[str, ...] = ("correct", "wrong_class", "gate_miss", "gate_false_alarm", *ERROR_KINDS)

#: Prefix of the prediction key of a record that failed with an error.
ERROR_PREFIX = "error:"


class ScoringError(HarnessError, ValueError):
    """Records that cannot be scored against the given label sets (unknown category or label)."""


def pred_key(record: ScoredRecord) -> str:
    """The prediction key of a record: its predicted class key, or ``error:<kind>``."""
    error = record.error
    if error is not None:
        return ERROR_PREFIX + str(error)
    label = record.predicted_label
    if label is None:
        # A failure must be a recorded error kind, never a missing answer.
        raise ScoringError(
            f"record {record.sample_id!r} (model {record.model!r}) has neither "
            "a predicted_label nor an error"
        )
    return str(label)


def is_correct(record: ScoredRecord) -> bool:
    """Whether a record's prediction key equals its true label (from the labels, not its ``correct`` field)."""
    return pred_key(record) == record.true_label


def outcome_of(record: ScoredRecord, gate_passes_all: bool = False) -> str:
    """Attribute one record to exactly one entry of `OUTCOMES`.

    In order: its error kind; ``correct``; ``gate_miss`` (an anomalous image the gate did not flag);
    ``gate_false_alarm`` (a good image a real gate flagged and the model named a defect on; with a
    pass-through gate, ``gate_passes_all``, that is the model's mistake); else ``wrong_class``.
    """
    error = record.error
    if error is not None:
        return str(error)
    if is_correct(record):
        return "correct"
    gate = record.gate
    # None means "unknown" (no gate result), which blames nobody but the model.
    flagged = bool(gate.flagged) if gate else None
    true_label = record.true_label
    if true_label != GOOD and flagged is False:
        return "gate_miss"
    if true_label == GOOD and flagged and not gate_passes_all and record.predicted_label != GOOD:
        return "gate_false_alarm"
    return "wrong_class"


def outcome_counts(records: Iterable[ScoredRecord], gate_passes_all: bool = False) -> dict[str, int]:
    """``{outcome: count}`` over records, every entry of `OUTCOMES` present (zeros included)."""
    counts = Counter(outcome_of(r, gate_passes_all) for r in records)
    return {name: counts.get(name, 0) for name in OUTCOMES}


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float | None:
    """Fraction of positions where the prediction key equals the true label; None (undefined) over zero."""
    if not y_true:
        return None
    return float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))


def per_class_scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1, support and predicted count per class.

    Only classes of ``labels`` among the true labels or the predictions are scored. Precision of a class
    never predicted and recall of one never true are None (0/0); F1 is ``2 TP / (support + predicted)``,
    0 for a class true but never predicted or predicted but never true. Predictions outside ``labels``
    (error keys, ``good`` under protocol anomalous) are misses for their true class.
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

    Errors and predictions outside ``labels`` fall in an "other" column with no row, which only lowers
    agreement. Kappa is undefined with fewer than two true classes: with one true class ``pe == po``,
    so the formula gives 0/0 or exactly 0 whatever the answers, an accident of the data. With two or
    more ``pe < 1`` always. The rule depends on the truth only, so every model scored on the same
    images has kappa defined in the same categories.
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

    Keys follow ``labels``, then unexpected labels, then error keys in `ERROR_KINDS` order (stable JSON).
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

    Images (any per-image values: `harness.scoring.compare` passes paired differences) are resampled
    *within* each category, so every resample keeps the categories and their sizes. One seeded generator
    draws the categories in the given order. Returns ``([lo, hi], {category: [lo, hi]})``.
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
