"""Decision reports: a policy applied to a run's records, and the VELM paper's Table 4 experiment.

`decision_report` turns one model's records into action accuracy, escape and overkill rates,
accuracy per severity and total cost; `decisions_for_run` does it for every model of a run.

`table4` is the paper's "negligible anomaly vs. critical defect" setting (README, "Act"), following
the authors' ``anomaly_vs_defect.py`` with two documented differences: a failed record is wrong for
every group (their script counted an unmapped answer as critical), and a category with no image of
a group is left out of that group's mean (theirs counted 0). The random draw is our own, seeded per
(seed, category), so a category's split does not depend on the other categories of a run.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Iterable

import numpy as np

from harness.record import Record
from harness.scoring.class_order import first_repeat
from harness.scoring.decisions import ACCEPTABLE, SEVERITIES, CostMatrix, Decision, Policy
from harness.types import GOOD

#: Table 4's groups, in the paper's column order.
TABLE4_GROUPS: tuple[str, ...] = ("normal", "negligible", "critical")


def is_failed(record: Record) -> bool:
    """A record with no predicted class: an error kind (unparseable, refused, ...) or a missing answer."""
    return record.error is not None or record.predicted_label is None


def record_decisions(record: Record, policy: Policy) -> dict[str, Any]:
    """Severity and action of a record's true and predicted class (a failed record: None and the error action)."""
    true = policy.decide(record.category, record.true_label)
    predicted = policy.decide(record.category, None if is_failed(record) else record.predicted_label)
    return {
        "severity_true": true.severity, "action_true": true.action,
        "severity_predicted": predicted.severity, "action_predicted": predicted.action,
    }


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def decision_report(records: Iterable[Record], policy: Policy, costs: CostMatrix | None = None) -> dict[str, Any]:
    """Action accuracy, escape and overkill rates, severity accuracy and cost of one model's records.

    Rates are over images, since costs add up per part: ``action_accuracy`` (a failed record is never
    correct), ``escape_rate`` (critical parts passed), ``overkill_rate`` (normal or negligible parts
    scrapped), ``review_rate``, ``severity_accuracy``, ``actions`` ({true: {taken: n}}) and ``cost``
    (None without a cost matrix); ``categories`` repeats them per category.
    """
    rows = [(r, record_decisions(r, policy), is_failed(r)) for r in first_repeat(records)]
    summary = _summarise(rows, costs)
    by_category: dict[str, list] = {}
    for row in rows:
        by_category.setdefault(row[0].category, []).append(row)
    summary["categories"] = {
        category: {k: v for k, v in _summarise(rs, costs).items() if k != "actions"}
        for category, rs in by_category.items()
    }
    return summary


def _summarise(rows: list, costs: CostMatrix | None) -> dict[str, Any]:
    n = len(rows)
    correct = sum(1 for _, d, failed in rows if not failed and d["action_predicted"] == d["action_true"])
    critical = [d for _, d, _ in rows if d["severity_true"] == "critical"]
    acceptable = [d for _, d, _ in rows if d["severity_true"] in ACCEPTABLE]
    escapes = sum(1 for d in critical if d["action_predicted"] == "pass")
    overkills = sum(1 for d in acceptable if d["action_predicted"] == "scrap")
    pairs = Counter((d["action_true"], d["action_predicted"]) for _, d, _ in rows)
    severity_accuracy = {}
    for severity in SEVERITIES:
        group = [(d, failed) for _, d, failed in rows if d["severity_true"] == severity]
        if group:
            hits = sum(1 for d, failed in group if not failed and d["severity_predicted"] == severity)
            severity_accuracy[severity] = hits / len(group)
    cost = None
    if costs is not None and n:
        total = float(sum(costs.of(t, p) * count for (t, p), count in pairs.items()))
        cost = {"total": total, "per_image": total / n, "unit": costs.unit}
    return {
        "n": n,
        "n_errors": sum(1 for *_, failed in rows if failed),
        "action_accuracy": _rate(correct, n),
        "n_critical": len(critical), "escapes": escapes, "escape_rate": _rate(escapes, len(critical)),
        "n_acceptable": len(acceptable), "overkills": overkills, "overkill_rate": _rate(overkills, len(acceptable)),
        "review_rate": _rate(sum(1 for _, d, _ in rows if d["action_predicted"] == "review"), n),
        "severity_accuracy": severity_accuracy,
        "actions": {t: {p: c for (tt, p), c in sorted(pairs.items()) if tt == t} for t in sorted({t for t, _ in pairs})},
        "cost": cost,
    }


def _models(records: list[Record], models: list[str] | None) -> list[str]:
    return models or list(dict.fromkeys(r.model for r in records))


def decisions_for_run(
    records: list[Record], policy: Policy, costs: CostMatrix | None, models: list[str] | None = None
) -> dict[str, Any]:
    """The ``decisions`` section of run.json (and of decisions.json): policy, costs, one report per model."""
    return {
        "policy": policy.describe(),
        "costs": costs.describe() if costs else None,
        "error_action": policy.error_action,
        "models": {m: decision_report([r for r in records if r.model == m], policy, costs)
                   for m in _models(records, models)},
    }


def negligible_count(n_anomaly_classes: int) -> int:
    """How many anomaly classes Table 4 marks negligible: 1 for up to 4 classes, else 2."""
    return 1 if n_anomaly_classes <= 4 else 2


def table4_split(label_sets: dict[str, list[str]], seed: int) -> dict[str, list[str]]:
    """``{category: sorted negligible classes}`` for one seed; the rest of each category's anomaly classes are critical."""
    split = {}
    for category, labels in label_sets.items():
        anomaly = sorted(label for label in labels if label != GOOD)
        rng = random.Random(f"table4:{seed}:{category}")
        split[category] = sorted(rng.sample(anomaly, min(negligible_count(len(anomaly)), len(anomaly))))
    return split


def table4_policy(split: dict[str, list[str]], seed: int) -> Policy:
    """The policy of one Table 4 draw: negligible classes pass, every other anomaly class is critical."""
    return Policy(
        source=f"<table4 seed {seed}>",
        default=Decision("critical", "scrap"),
        classes={c: {label: Decision("negligible", "pass") for label in labels} for c, labels in split.items()},
    )


def group_accuracy(records: list[Record], policy: Policy) -> dict[str, dict[str, float]]:
    """``{category: {group: accuracy}}``: per true group, the share of its images predicted in that group."""
    counts: dict[str, dict[str, list[int]]] = {}
    for record in first_repeat(records):
        d = record_decisions(record, policy)
        hit = not is_failed(record) and d["severity_predicted"] == d["severity_true"]
        tally = counts.setdefault(record.category, {}).setdefault(d["severity_true"], [0, 0])
        tally[0] += hit
        tally[1] += 1
    return {c: {g: hits / n for g, (hits, n) in groups.items()} for c, groups in counts.items()}


def table4(records: list[Record], label_sets: dict[str, list[str]], seeds: int = 5) -> dict[str, Any]:
    """Table 4 for one model's records over seeds 0 .. seeds-1: ``accuracy`` per group, their ``mean``,
    ``categories``, ``per_seed``, ``std_over_seeds`` and ``splits``.
    """
    if seeds < 1:
        raise ValueError("table4 needs at least one seed")
    per_category: dict[str, dict[str, list[float]]] = {}
    per_seed, splits = [], {}
    for seed in range(seeds):
        split = table4_split(label_sets, seed)
        splits[str(seed)] = split
        accuracies = group_accuracy(records, table4_policy(split, seed))
        for category, groups in accuracies.items():
            for group, value in groups.items():
                per_category.setdefault(category, {}).setdefault(group, []).append(value)
        per_seed.append({g: _mean([groups[g] for groups in accuracies.values() if g in groups]) for g in TABLE4_GROUPS})
    categories = {c: {g: float(np.mean(v)) for g, v in groups.items()} for c, groups in per_category.items()}
    accuracy = {g: _mean([groups[g] for groups in categories.values() if g in groups]) for g in TABLE4_GROUPS}
    known = [v for v in accuracy.values() if v is not None]
    return {
        "seeds": seeds,
        "accuracy": accuracy,
        "mean": float(np.mean(known)) if len(known) == len(TABLE4_GROUPS) else None,
        "categories": categories,
        "per_seed": per_seed,
        "std_over_seeds": {g: _std([s[g] for s in per_seed]) for g in TABLE4_GROUPS},
        "splits": splits,
    }


def table4_for_run(records: list[Record], label_sets: dict[str, list[str]], seeds: int = 5,
                   models: list[str] | None = None) -> dict[str, Any]:
    """`table4` for every model of a run: ``{"seeds", "models": {model: table4}}``."""
    return {
        "seeds": seeds,
        "models": {m: table4([r for r in records if r.model == m], label_sets, seeds) for m in _models(records, models)},
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _std(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.std(known)) if known else None
