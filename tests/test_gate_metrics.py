"""Gate figures from records, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from harness.gate_metrics import auroc, gate_metrics


def record(category, label, score, flagged):
    return {"category": category, "true_label": label, "gate": {"score": score, "flagged": flagged}}


def test_auroc_by_hand():
    # Positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4.
    assert auroc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert auroc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)  # a tie counts half
    assert math.isnan(auroc([1, 1], [0.1, 0.2]))


def test_decisions_per_category_and_their_mean():
    records = [
        record("a", "crack", 0.9, True), record("a", "crack", 0.4, False),  # one hit, one miss
        record("a", "good", 0.5, True), record("a", "good", 0.1, False),  # one false alarm
        record("b", "hole", 0.8, True), record("b", "good", 0.2, False),  # perfect
        {"category": "b", "true_label": "hole", "gate": None},  # unreadable image
    ]
    figures = gate_metrics(records)
    a, b = figures["categories"]["a"], figures["categories"]["b"]
    assert a["image_auroc"] == pytest.approx(0.75) and b["image_auroc"] == 1.0
    assert (a["precision"], a["recall"], a["false_alarm_rate"], a["miss_rate"]) == (0.5, 0.5, 0.5, 0.5)
    assert a["f1"] == pytest.approx(0.5)
    assert (b["precision"], b["recall"], b["false_alarm_rate"], b["miss_rate"]) == (1.0, 1.0, 0.0, 0.0)
    assert figures["image_auroc"] == pytest.approx((0.75 + 1.0) / 2)
    assert figures["miss_rate"] == pytest.approx(0.25)
    assert figures["unreadable"] == 1
