"""Scores for one model's records (`harness.record.Record`): the two protocols per category, the mean over
categories, and usage.

Protocols (DESIGN.md, "Scoring protocols"): ``velm`` scores every test image of a category over its
label set including ``good``; ``anomalous`` scores anomalous images only, over the anomaly classes (a
``good`` prediction is then simply wrong). The benchmark figure is VELM's: each category first, then
the unweighted mean over categories. A figure undefined for a category (accuracy and macro-F1 over
zero images, kappa with fewer than two true classes) is None there, and the mean leaves it out and
says so in ``notes``. The label-level pieces live in `harness.scoring.label_scores` and are
re-exported here, so every ``harness.scoring.metrics`` name keeps working.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from harness.record import Record
from harness.scoring.answers import RULES
from harness.scoring.label_scores import (  # noqa: F401 (re-exports)
    ERROR_PREFIX, OUTCOMES, ScoringError, accuracy, bootstrap_accuracy, cohen_kappa, confusion, is_correct,
    kappa_is_defined, macro_f1, outcome_counts, outcome_of, per_class_scores, percentile, pred_key,
)
from harness.types import ERROR_KINDS, GOOD

PROTOCOLS: tuple[str, ...] = ("velm", "anomalous")


def _check_records(records: Sequence[Record], label_sets: dict[str, list[str]]) -> None:
    models = {r.model for r in records}
    if len(models) > 1:
        raise ScoringError(f"score one model at a time; these records mix {sorted(map(str, models))}")
    for r in records:
        where = f"record {r.sample_id!r}"
        category = r.category
        if category not in label_sets:
            raise ScoringError(
                f"{where}: category {category!r} is not in the label sets "
                f"(known: {', '.join(sorted(label_sets)) or 'none'}); score with the benchmark the run used"
            )
        if r.true_label not in label_sets[category]:
            raise ScoringError(
                f"{where}: true label {r.true_label!r} is not in category {category!r}'s "
                f"label set {label_sets[category]}"
            )
        error = r.error
        if error is not None and error not in ERROR_KINDS:
            raise ScoringError(f"{where}: unknown error kind {error!r}; expected one of {ERROR_KINDS}")
        pred_key(r)  # raises on a record with neither label nor error


# --------------------------------------------------------------------------- protocols


def protocol_labels(labels: Sequence[str], protocol: str) -> list[str]:
    """A category's label set under a protocol: all of it for ``velm``, the anomaly classes for ``anomalous``."""
    if protocol == "velm":
        return list(labels)
    if protocol == "anomalous":
        return [label for label in labels if label != GOOD]
    raise ScoringError(f"unknown scoring protocol {protocol!r}; expected one of {PROTOCOLS}")


def protocol_records(records: Iterable[Record], protocol: str) -> list[Record]:
    """The records a protocol scores: all of them for ``velm``, anomalous images only for ``anomalous``."""
    protocol_labels([], protocol)  # validates the name
    if protocol == "anomalous":
        return [r for r in records if r.true_label != GOOD]
    return list(records)


# --------------------------------------------------------------------------- the whole model


def _categories(records: Sequence[Record], label_sets: dict[str, list[str]]) -> dict[str, list[Record]]:
    """Records grouped by category in label-set order, each sorted by sample id (a stable sort), so the
    bootstrap does not depend on the order concurrent calls finished in.
    """
    grouped: dict[str, list[Record]] = {c: [] for c in label_sets}
    for r in sorted(records, key=lambda r: str(r.sample_id)):
        grouped[r.category].append(r)
    return {c: rs for c, rs in grouped.items() if rs}


def score_protocol(
    records: Sequence[Record],
    label_sets: dict[str, list[str]],
    protocol: str,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """One protocol's scores: per category, then the unweighted mean over categories.

    A category with no images under the protocol has ``n == 0``, is listed in ``excluded`` and left out
    of the mean; a figure undefined in a category is None with its reason under ``undefined``, and its
    mean is over the categories where it is defined. Records are assumed validated (`score_model`).
    """
    by_category = _categories(records, label_sets)
    categories: dict[str, dict[str, Any]] = {}
    correct_by_category: dict[str, list[bool]] = {}
    excluded = []
    for category, rs in by_category.items():
        rs = protocol_records(rs, protocol)
        labels = protocol_labels(label_sets[category], protocol)
        y_true, y_pred = [r.true_label for r in rs], [pred_key(r) for r in rs]
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
        scores["undefined"] = undefined_reasons(scores, y_true, labels, protocol)
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
    for name in MEAN_FIGURES:
        defined = [s[name] for s in scored if s[name] is not None]
        result[name] = float(np.mean(defined)) if defined else None
    if scored:
        mean_ci, per_category = bootstrap_accuracy(correct_by_category, n_boot=n_boot, seed=seed)
        result["accuracy_ci"] = mean_ci
        for category, ci in per_category.items():
            categories[category]["accuracy_ci"] = ci
    result["notes"] = protocol_notes(protocol, result)
    return result


def score_model(
    records: Iterable[Record],
    label_sets: dict[str, list[str]],
    protocols: Sequence[str] = PROTOCOLS,
    gate_passes_all: bool = False,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Everything run.json reports for one model: ``n``, ``protocols`` (`score_protocol` of each),
    ``notes``, ``confusion`` (all images), ``outcomes``, ``answer_rules`` and ``usage``.

    Raises `ScoringError` (a ValueError) for a category or true label not in ``label_sets`` (category
    -> labels, ``good`` first), mixed models, or a record with an unknown error kind or no answer.
    """
    records = list(records)
    _check_records(records, label_sets)
    confusions = {
        category: confusion([r.true_label for r in rs], [pred_key(r) for r in rs], label_sets[category])
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


def score_models(records: Iterable[Record], label_sets: dict[str, list[str]], **kwargs: Any) -> dict[str, dict]:
    """`score_model` for each model in mixed records: ``{model spec: scores}``, in first-seen order."""
    by_model: dict[str, list[Record]] = {}
    for r in records:
        by_model.setdefault(r.model, []).append(r)
    return {model: score_model(rs, label_sets, **kwargs) for model, rs in by_model.items()}


#: The figures averaged over categories, with the names notes use for them.
MEAN_FIGURES: dict[str, str] = {"accuracy": "accuracy", "macro_f1": "macro-F1", "kappa": "kappa"}


def undefined_reasons(scores: dict[str, Any], y_true: Sequence[str], labels: Sequence[str], protocol: str) -> dict[str, str]:
    """``{figure: why}`` for each figure of one category's ``scores`` that is None."""
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


def usage_summary(records: Iterable[Record]) -> dict[str, Any]:
    """Latency, tokens, cost and call counts over one model's records.

    Latency and tokens cover only records where a model was called; unreported values are skipped, and
    a statistic with nothing to go on is None. ``cost_usd_total`` is what the answers cost when they
    were made (comparable across runs): ``cost_usd_spent`` (calls this run paid for) plus
    ``cost_usd_cached`` (answers from the response cache).
    """
    records = list(records)
    called = [r for r in records if r.called]
    latencies = [r.latency_s for r in called if r.latency_s is not None]
    summary: dict[str, Any] = {
        "calls": len(called),
        "attempts": int(sum(r.attempts or 0 for r in records)),
        # A record written before attempts_total existed counts its own attempts.
        "attempts_total": int(sum((r.attempts if r.attempts_total is None else r.attempts_total) or 0 for r in records)),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
    }
    for field in ("tokens_in", "tokens_out"):
        known = [getattr(r, field) for r in called if getattr(r, field) is not None]
        summary[f"{field}_total"] = int(sum(known)) if known else None
        summary[f"{field}_mean"] = float(np.mean(known)) if known else None
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    summary["cost_usd_total"] = float(sum(costs)) if costs else None
    for name, from_cache in (("cost_usd_spent", False), ("cost_usd_cached", True)):
        part = [r.cost_usd for r in records if r.cost_usd is not None and bool(r.cached) == from_cache]
        summary[name] = float(sum(part)) if costs else None
    return summary


def answer_rule_counts(records: Iterable[Record]) -> dict[str, int]:
    """How many records each answer rule read, in `answers.RULES` order; records without a rule are left out."""
    counts = Counter(r.answer_rule for r in records if r.answer_rule is not None)
    return {rule: counts[rule] for rule in (*RULES, *sorted(set(counts) - set(RULES))) if counts[rule]}
