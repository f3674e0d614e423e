"""Position bias: the candidate classes presented in several seeded orders.

``harness run --class-order shuffle --repeats N`` asks every model about every flagged image N
times. Repeat 0 is the benchmark's order (so headline figures and cached answers match a run
without repeats); repeats 1..N-1 are seeded shuffles, one per (category, repeat). `position_bias`
gives per model the accuracy of each order, the share of images answered alike in every order
(images the gate passed left out), and the positions of the named and of the true classes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any, Iterable, Sequence

from harness.errors import HarnessError
from harness.record import Record
from harness.scoring.metrics import pred_key, score_protocol
from harness.types import ClassInfo

CLASS_ORDERS = ("given", "shuffle")

#: Attempts at drawing an order not used yet before accepting a repeat.
_MAX_DRAWS = 64


def check_class_order(mode: str, repeats: int) -> None:
    """Reject a combination that measures nothing; `HarnessError` says what to use instead."""
    if mode not in CLASS_ORDERS:
        raise HarnessError(f"unknown --class-order {mode!r}; expected one of {', '.join(CLASS_ORDERS)}")
    if repeats < 1:
        raise HarnessError(f"--repeats must be at least 1, got {repeats}")
    if mode == "shuffle" and repeats < 2:
        raise HarnessError("--class-order shuffle needs --repeats N with N >= 2 (repeat 0 is the given order)")
    if mode == "given" and repeats > 1:
        raise HarnessError("--repeats N > 1 needs --class-order shuffle (repeats in the given order ask the same question)")


def class_orders(candidates: Sequence[ClassInfo], repeats: int, seed: int, category: str) -> list[list[ClassInfo]]:
    """The candidate lists of repeats 0..repeats-1: the given order, then shuffles seeded by (seed,
    category, repeat), so adding repeats keeps the earlier ones; an order already used is drawn again
    while unused ones remain.
    """
    orders = [list(candidates)]
    used = {tuple(c.key for c in candidates)}
    possible = math.factorial(len(candidates))
    for repeat in range(1, repeats):
        rng = random.Random(f"{seed}:class-order:{category}:{repeat}")
        order = list(candidates)
        for _ in range(_MAX_DRAWS):
            rng.shuffle(order)
            if tuple(c.key for c in order) not in used or len(used) >= possible:
                break
        used.add(tuple(c.key for c in order))
        orders.append(order)
    return orders


def first_repeat(records: Iterable[Record]) -> list[Record]:
    """The records of repeat 0 (a record written before repeats existed is one): what run.json's headline
    metrics and `harness compare` use."""
    return [r for r in records if r.repeat == 0]


def position_bias(
    records: Sequence[Record], label_sets: dict[str, list[str]], repeats: int, seed: int = 0, n_boot: int = 1000
) -> dict[str, Any]:
    """Per-order accuracy, answer consistency across orders and answer positions for one model's records."""
    by_repeat: dict[int, list[Record]] = {r: [] for r in range(repeats)}
    for record in records:
        by_repeat.setdefault(record.repeat, []).append(record)
    per_order = []
    for repeat in range(repeats):
        rs = by_repeat[repeat]
        per_order.append(score_protocol(rs, label_sets, "velm", seed=seed, n_boot=n_boot)["accuracy"] if rs else None)
    known = [a for a in per_order if a is not None]

    # sample id -> {repeat: prediction key}, only for images the model was asked.
    answers: dict[str, dict[int, str]] = {}
    for record in records:
        if record.called:
            answers.setdefault(record.sample_id, {})[record.repeat] = pred_key(record)
    complete = [by_rep for by_rep in answers.values() if len(by_rep) == repeats]
    consistent = sum(1 for by_rep in complete if len(set(by_rep.values())) == 1)

    chosen, truth = Counter(), Counter()
    for record in records:
        order = record.class_order
        if not record.called or not order:
            continue
        if record.true_label in order:
            truth[order.index(record.true_label) + 1] += 1
        if record.error is None and record.predicted_label in order:
            chosen[order.index(record.predicted_label) + 1] += 1
    return {
        "accuracy_per_order": per_order,
        "accuracy_min": min(known) if known else None,
        "accuracy_max": max(known) if known else None,
        "accuracy_spread": (max(known) - min(known)) if known else None,
        "consistency": consistent / len(complete) if complete else None,
        "n_consistent": consistent,
        "n_compared": len(complete),
        "answer_positions": {str(p): chosen[p] for p in sorted(chosen)},
        "true_positions": {str(p): truth[p] for p in sorted(truth)},
    }


def summary_lines(run: dict[str, Any]) -> list[str]:
    """One line per model for the terminal: accuracy per order and consistency (empty without repeats)."""
    section = run.get("class_order") or {}
    lines = []
    for model, figures in (section.get("models") or {}).items():
        accs = " / ".join("-" if a is None else f"{100 * a:.1f}" for a in figures["accuracy_per_order"])
        consistency = figures["consistency"]
        lines.append(
            f"{model}: accuracy per class order {accs}; same answer in all {section['repeats']} orders for "
            + ("no image asked" if consistency is None else
               f"{100 * consistency:.1f}% of {figures['n_compared']} images asked")
        )
    return lines
