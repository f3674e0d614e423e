"""Scores for one model's records: the two protocols, per category, then the mean over categories.

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

The pieces live beside this module and are re-exported from it, so every
``harness.scoring.metrics`` name keeps working: `harness.scoring.outcomes`
(prediction keys, attribution), `harness.scoring.label_scores` (accuracy, F1,
kappa, confusion), `harness.scoring.intervals` (bootstrap) and
`harness.scoring.usage` (latency, tokens, cost, answer rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from harness.scoring import figure_notes
from harness.scoring.intervals import bootstrap_accuracy, percentile  # noqa: F401 (re-exports)
from harness.scoring.label_scores import (  # noqa: F401 (re-exports)
    accuracy, cohen_kappa, confusion, kappa_is_defined, macro_f1, per_class_scores,
)
from harness.scoring.outcomes import (  # noqa: F401 (re-exports)
    ERROR_PREFIX, OUTCOMES, ScoringError, is_correct, outcome_counts, outcome_of, pred_key,
)
from harness.scoring.usage import answer_rule_counts, usage_summary  # noqa: F401 (re-exports)
from harness.types import ERROR_KINDS, GOOD

PROTOCOLS: tuple[str, ...] = ("velm", "anomalous")


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


# --------------------------------------------------------------------------- protocols


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
