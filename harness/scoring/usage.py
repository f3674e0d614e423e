"""What one model's records cost and how their answers were read: latency, tokens, cost, calls, answer rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness.scoring.answers import RULES
from harness.scoring.intervals import percentile


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
