"""Scores for one model's records: protocols, accuracy, macro-F1, kappa, bootstrap CIs, attribution.

A record is one dict per (sample, model) as written to ``samples.jsonl``. The
label-level functions (`accuracy`, `per_class_scores`, `macro_f1`,
`cohen_kappa`, `confusion`) work on plain lists of true labels and
*prediction keys*: a record's predicted class key, or ``error:<kind>`` when it
failed. An error key never equals a class key, so a failure always counts as
wrong and is never dropped.

Protocols (see DESIGN.md, "Scoring protocols"):

- ``velm``: every test image of a category, over the category's label set
  including ``good``.
- ``anomalous``: anomalous images only, over the anomaly classes; a ``good``
  prediction is then outside the label set and simply wrong.

Either way the benchmark figure is VELM's: score each category first, then take
the plain (unweighted) mean over categories.

A figure that is undefined for a category is None there, never 0 or 1 by
accident, and the mean leaves it out and says so (`harness.scoring.figure_notes`):

- accuracy and macro-F1 are undefined only over zero images;
- Cohen's kappa is undefined when the category's scored images hold fewer than
  two true classes (see `cohen_kappa` for why that is exactly the right line).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from harness.scoring import figure_notes
from harness.scoring.answers import RULES
from harness.errors import HarnessError
from harness.types import ERROR_KINDS, GOOD

PROTOCOLS: tuple[str, ...] = ("velm", "anomalous")

#: Every outcome `outcome_of` can return, in the order reports list them.
OUTCOMES: tuple[str, ...] = ("correct", "wrong_class", "gate_miss", "gate_false_alarm", *ERROR_KINDS)

#: Prefix of the prediction key of a record that failed with an error.
ERROR_PREFIX = "error:"


class ScoringError(HarnessError, ValueError):
    """Records that cannot be scored against the given label sets (unknown category or label)."""


# --------------------------------------------------------------------------- records


def pred_key(record: dict[str, Any]) -> str:
    """The prediction key of a record: its predicted class key, or ``error:<kind>``."""
    error = record.get("error")
    if error is not None:
        return ERROR_PREFIX + str(error)
    label = record.get("predicted_label")
    if label is None:
        # A failure must be a recorded error kind, never a missing answer.
        raise ScoringError(
            f"record {record.get('sample_id')!r} (model {record.get('model')!r}) has neither "
            "a predicted_label nor an error"
        )
    return str(label)


def is_correct(record: dict[str, Any]) -> bool:
    """Whether a record's prediction equals its true label (an errored record never is).

    Derived from the labels rather than read from the record's ``correct`` field,
    so that accuracy, the confusion matrix and kappa can never disagree.
    """
    return pred_key(record) == record["true_label"]


def outcome_of(record: dict[str, Any], gate_passes_all: bool = False) -> str:
    """Attribute one record to exactly one entry of `OUTCOMES`.

    In order: the error kind if the record failed; ``correct``; ``gate_miss``
    when an anomalous image was not flagged (so no model ever saw it);
    ``gate_false_alarm`` when a good image was flagged by a real gate and the
    model then named a defect; otherwise ``wrong_class``.

    With a pass-through gate (``gate_passes_all``) every image is flagged by
    construction, so a defect named on a good image is the model's mistake,
    ``wrong_class``, not the gate's.
    """
    error = record.get("error")
    if error is not None:
        return str(error)
    if is_correct(record):
        return "correct"
    gate = record.get("gate")
    # None means "unknown" (no gate result), which blames nobody but the model.
    flagged = bool(gate["flagged"]) if gate else None
    true_label = record["true_label"]
    if true_label != GOOD and flagged is False:
        return "gate_miss"
    if true_label == GOOD and flagged and not gate_passes_all and record.get("predicted_label") != GOOD:
        return "gate_false_alarm"
    return "wrong_class"


def outcome_counts(records: Iterable[dict[str, Any]], gate_passes_all: bool = False) -> dict[str, int]:
    """``{outcome: count}`` over records, every entry of `OUTCOMES` present (zeros included)."""
    counts = Counter(outcome_of(r, gate_passes_all) for r in records)
    return {name: counts.get(name, 0) for name in OUTCOMES}


def _check_records(records: Sequence[dict[str, Any]], label_sets: dict[str, list[str]]) -> None:
    models = {r.get("model") for r in records}
    if len(models) > 1:
        raise ScoringError(f"score one model at a time; these records mix {sorted(map(str, models))}")
    for r in records:
        where = f"record {r.get('sample_id')!r}"
        category = r.get("category")
        if category not in label_sets:
            raise ScoringError(
                f"{where}: category {category!r} is not in the label sets "
                f"(known: {', '.join(sorted(label_sets)) or 'none'}); score with the benchmark the run used"
            )
        if r.get("true_label") not in label_sets[category]:
            raise ScoringError(
                f"{where}: true label {r.get('true_label')!r} is not in category {category!r}'s "
                f"label set {label_sets[category]}"
            )
        error = r.get("error")
        if error is not None and error not in ERROR_KINDS:
            raise ScoringError(f"{where}: unknown error kind {error!r}; expected one of {ERROR_KINDS}")
        pred_key(r)  # raises on a record with neither label nor error


# --------------------------------------------------------------------------- label-level scores


def protocol_labels(labels: Sequence[str], protocol: str) -> list[str]:
    """A category's label set under a protocol: all of it for ``velm``, the anomaly classes for ``anomalous``."""
    if protocol == "velm":
        return list(labels)
    if protocol == "anomalous":
        return [label for label in labels if label != GOOD]
    raise ScoringError(f"unknown scoring protocol {protocol!r}; expected one of {PROTOCOLS}")


def protocol_records(records: Iterable[dict[str, Any]], protocol: str) -> list[dict[str, Any]]:
    """The records a protocol scores: all of them for ``velm``, anomalous images only for ``anomalous``."""
    protocol_labels([], protocol)  # validates the name
    if protocol == "anomalous":
        return [r for r in records if r["true_label"] != GOOD]
    return list(records)


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


# --------------------------------------------------------------------------- intervals and usage


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


def usage_summary(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Latency, tokens, cost and call counts over one model's records.

    Latency percentiles and token means cover only records where a model was
    called (an image the gate passed costs nothing and would pull them down);
    values a backend did not report (None) are skipped, and a statistic with
    nothing to go on is None. Keys: ``calls``, ``attempts`` (all records),
    ``attempts_total`` (the same with the attempts of records a resume replaced),
    ``latency_p50`` and ``latency_p95`` (seconds), ``tokens_in_total``,
    ``tokens_in_mean``, ``tokens_out_total``, ``tokens_out_mean``, ``cost_usd_total``,
    ``cost_usd_spent`` and ``cost_usd_cached``.

    ``cost_usd_total`` is what the answers cost when they were made (a record's
    ``cost_usd``, cached or not), comparable across runs; it splits into
    ``cost_usd_spent``, over the calls this run paid for, and
    ``cost_usd_cached``, what its answers from the response cache cost when
    first made (this run paid nothing for them). All three are None when no
    cost is known; a fully cached re-run spends 0.
    """
    records = list(records)
    called = [r for r in records if r.get("called")]
    latencies = [r["latency_s"] for r in called if r.get("latency_s") is not None]
    summary: dict[str, Any] = {
        "calls": len(called),
        "attempts": int(sum(r.get("attempts") or 0 for r in records)),
        "attempts_total": int(sum(r.get("attempts_total", r.get("attempts")) or 0 for r in records)),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
    }
    for field in ("tokens_in", "tokens_out"):
        known = [r[field] for r in called if r.get(field) is not None]
        summary[f"{field}_total"] = int(sum(known)) if known else None
        summary[f"{field}_mean"] = float(np.mean(known)) if known else None
    costs = [r["cost_usd"] for r in records if r.get("cost_usd") is not None]
    summary["cost_usd_total"] = float(sum(costs)) if costs else None
    for name, from_cache in (("cost_usd_spent", False), ("cost_usd_cached", True)):
        part = [r["cost_usd"] for r in records if r.get("cost_usd") is not None and bool(r.get("cached")) == from_cache]
        summary[name] = float(sum(part)) if costs else None
    return summary


def answer_rule_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many records each answer rule read (`harness.scoring.answers.RULES` order; rules that read none are left out).

    Records no model was asked about (the gate passed them, bad input, a backend
    error) have no rule and are not counted.
    """
    counts = Counter(r.get("answer_rule") for r in records if r.get("answer_rule") is not None)
    return {rule: counts[rule] for rule in (*RULES, *sorted(set(counts) - set(RULES))) if counts[rule]}


# --------------------------------------------------------------------------- the whole model


def _categories(records: Sequence[dict[str, Any]], label_sets: dict[str, list[str]]) -> dict[str, list[dict]]:
    """Records grouped by category, in label-set order, only categories that have records.

    Within a category records are in sample order (a stable sort, so repeats of
    a sample keep theirs): the bootstrap then draws the same intervals whatever
    order the records finished in, as concurrent model calls make it vary.
    """
    grouped: dict[str, list[dict]] = {c: [] for c in label_sets}
    for r in sorted(records, key=lambda r: str(r.get("sample_id", ""))):
        grouped[r["category"]].append(r)
    return {c: rs for c, rs in grouped.items() if rs}


def score_protocol(
    records: Sequence[dict[str, Any]],
    label_sets: dict[str, list[str]],
    protocol: str,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """One protocol's scores: per category, then the unweighted mean over categories.

    A category with no images under the protocol (say, only good images under
    ``anomalous``) is reported with ``n == 0`` and None scores, listed in
    ``excluded``, and left out of the mean. A figure undefined in a scored
    category (kappa with one true class) is None there, with its reason under
    the category's ``undefined``, and the mean of that figure is over the
    categories where it is defined (``kappa_categories_defined`` of
    ``n_categories``; None when none is). ``notes`` says what was left out
    (`harness.scoring.figure_notes`). Records are assumed validated (`score_model` does that).
    """
    by_category = _categories(records, label_sets)
    categories: dict[str, dict[str, Any]] = {}
    correct_by_category: dict[str, list[bool]] = {}
    excluded = []
    for category, rs in by_category.items():
        rs = protocol_records(rs, protocol)
        labels = protocol_labels(label_sets[category], protocol)
        y_true, y_pred = [r["true_label"] for r in rs], [pred_key(r) for r in rs]
        if rs:
            correct_by_category[category] = [t == p for t, p in zip(y_true, y_pred)]
        else:
            excluded.append(category)
        scores = categories[category] = {
            "n": len(rs),
            "accuracy": accuracy(y_true, y_pred),
            "accuracy_ci": None,  # filled in below, from one bootstrap over all categories
            "macro_f1": macro_f1(y_true, y_pred, labels),
            "kappa": cohen_kappa(y_true, y_pred, labels),
            # Classes of the label set with no scored image and no prediction: F1 0/0, not averaged.
            "macro_f1_absent_classes": [c for c in labels if rs and c not in set(y_true) | set(y_pred)],
        }
        scores["undefined"] = figure_notes.undefined_reasons(scores, y_true, labels, protocol)
    scored = [categories[c] for c in correct_by_category]
    result: dict[str, Any] = {
        "n": sum(s["n"] for s in scored),
        "n_categories": len(scored),
        "excluded": excluded,
        "accuracy": None,
        "accuracy_ci": None,
        "macro_f1": None,
        "kappa": None,
        "kappa_categories_defined": sum(1 for s in scored if s["kappa"] is not None),
        "categories": categories,
    }
    for name in figure_notes.MEAN_FIGURES:
        defined = [s[name] for s in scored if s[name] is not None]
        result[name] = float(np.mean(defined)) if defined else None
    if scored:
        mean_ci, per_category = bootstrap_accuracy(correct_by_category, n_boot=n_boot, seed=seed)
        result["accuracy_ci"] = mean_ci
        for category, ci in per_category.items():
            categories[category]["accuracy_ci"] = ci
    result["notes"] = figure_notes.protocol_notes(protocol, result)
    return result


def score_model(
    records: Iterable[dict[str, Any]],
    label_sets: dict[str, list[str]],
    protocols: Sequence[str] = PROTOCOLS,
    gate_passes_all: bool = False,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Everything run.json reports for one model, as a JSON-serialisable dict.

    ``label_sets`` maps each category to its label list, ``good`` first, then
    the anomaly class keys. Returns::

        {"n": int,
         "protocols": {protocol: {"n", "n_categories", "excluded", "accuracy", "accuracy_ci",
                                  "macro_f1", "kappa", "kappa_categories_defined", "notes",
                                  "categories": {cat: {"n", "accuracy", "accuracy_ci",
                                                       "macro_f1", "kappa", "macro_f1_absent_classes",
                                                       "undefined": {figure: why}}}}},
         "notes": [str],   # every protocol's notes: what each mean left out, and why
         "confusion": {cat: {true_label: {prediction_key: count}}},   # all images
         "outcomes": {outcome: count},
         "answer_rules": {rule: count},   # see `answer_rule_counts`
         "usage": see `usage_summary`}

    A figure is None where it is undefined (see `score_protocol`).

    Raises `ScoringError` (a ValueError) when a record's category or true label
    is not in ``label_sets``, when records of several models are mixed, or when
    a record has an unknown error kind or neither a label nor an error.
    """
    records = list(records)
    _check_records(records, label_sets)
    confusions = {
        category: confusion([r["true_label"] for r in rs], [pred_key(r) for r in rs], label_sets[category])
        for category, rs in _categories(records, label_sets).items()
    }
    scores = {p: score_protocol(records, label_sets, p, seed=seed, n_boot=n_boot) for p in protocols}
    return {
        "n": len(records),
        "protocols": scores,
        "notes": [note for p in protocols for note in scores[p]["notes"]],
        "confusion": confusions,
        "outcomes": outcome_counts(records, gate_passes_all),
        "answer_rules": answer_rule_counts(records),
        "usage": usage_summary(records),
    }


def score_models(records: Iterable[dict[str, Any]], label_sets: dict[str, list[str]], **kwargs: Any) -> dict[str, dict]:
    """`score_model` for each model in mixed records: ``{model spec: scores}``, in first-seen order."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        by_model.setdefault(r["model"], []).append(r)
    return {model: score_model(rs, label_sets, **kwargs) for model, rs in by_model.items()}
