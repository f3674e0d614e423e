"""Gate figures from records, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.record import Record
from harness.scoring.gate_metrics import auroc, gate_metrics


def record(category, label, score, flagged):
    return Record.from_json({"category": category, "true_label": label, "gate": {"score": score, "flagged": flagged}})


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
        Record.from_json({"category": "b", "true_label": "hole", "gate": None}),  # unreadable image
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


def test_pixel_auroc_by_hand_and_after_shrinking():
    import numpy as np

    from harness.scoring.gate_metrics import pixel_auroc, shrink_for_pixel_auroc

    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    scores = np.zeros((4, 4), dtype=np.float32)
    scores[0, 0], scores[3, 3] = 2.0, 3.0  # the defect pixel beats 14 of 15 normal pixels
    assert pixel_auroc([(scores, mask)]) == pytest.approx(14 / 15)
    assert pixel_auroc([]) is None
    big_mask = np.zeros((512, 256), dtype=bool)
    big_mask[100:300, 50:150] = True
    small_scores, small_mask = shrink_for_pixel_auroc(big_mask.astype(np.float32), big_mask)
    assert small_scores.shape == small_mask.shape == (128, 64)
    assert pixel_auroc([(small_scores, small_mask)]) > 0.99


def test_a_run_reports_pixel_auroc_from_the_gates_maps(tmp_path, small_tree):
    from harness import plugins
    from harness.gates import FittedGate, Gate
    from harness.hookspecs import hookimpl
    from harness.images import load_mask
    from harness.run.runner import Run, RunConfig
    from harness.types import GateResult

    class MaskGate(Gate):
        """Maps every image by its true mask, inverted when ``invert`` (a perfectly wrong detector)."""

        name = "mask-map"
        invert = False

        def fit(self, category):
            gate = self

            class Fitted(FittedGate):
                def score(self, sample, image):
                    mask = load_mask(sample.mask, image.size).astype("float32")
                    scores = 1.0 - mask if gate.invert else mask
                    return GateResult(score=float(sample.is_anomalous), flagged=sample.is_anomalous,
                                      threshold=0.5, score_map=scores)

            return Fitted()

    class Plugin:
        @hookimpl
        def register_gates(self, register):
            register(MaskGate)

    registry = plugins.load_registry(extra_plugins=[("mask-gate", Plugin())])
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="mask-map", models=["random"],
                       results_dir=tmp_path, n_boot=20)
    figures = Run(config, registry).execute().run["gate_metrics"]
    # Shrinking blends scores at region edges (bilinear) against a nearest-neighbour mask: nearly, not exactly, 1.
    assert figures["pixel_auroc"] == pytest.approx(1.0, abs=1e-3)
    assert all(c["pixel_auroc"] == pytest.approx(1.0, abs=1e-3) for c in figures["categories"].values())
    MaskGate.invert = True
    config.run_id = "inverted"
    figures = Run(config, registry).execute().run["gate_metrics"]
    assert figures["pixel_auroc"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_auroc_equals_the_pairwise_count_with_ties(dtype):
    # Every (anomalous, normal) pair: 1 when the anomalous one scores higher, 1/2 on a tie.
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 12, 300).astype(dtype)  # many ties
    labels = rng.random(300) < 0.3
    higher = (scores[labels][:, None] > scores[~labels][None, :]).mean()
    tied = (scores[labels][:, None] == scores[~labels][None, :]).mean()
    assert auroc(labels, scores) == pytest.approx(higher + 0.5 * tied, abs=1e-12)


def test_auroc_ranks_nan_above_every_number_and_ties_nans():
    # NaN above +inf, two NaNs tied, -inf below everything: the pairwise count with that order.
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, 400).astype(np.float64)
    scores[rng.random(400) < 0.1] = np.nan
    scores[rng.random(400) < 0.05] = np.inf
    scores[rng.random(400) < 0.05] = -np.inf
    labels = rng.random(400) < 0.4
    rank = np.where(np.isnan(scores), np.inf, scores)  # NaN as a value above inf ...
    rank = np.where(np.isinf(rank) & (rank > 0) & ~np.isnan(scores), np.finfo(np.float64).max, rank)  # ... inf below it
    higher = (rank[labels][:, None] > rank[~labels][None, :]).mean()
    tied = (rank[labels][:, None] == rank[~labels][None, :]).mean()
    assert auroc(labels, scores) == pytest.approx(higher + 0.5 * tied, abs=1e-12)
    assert auroc([1, 0], [np.nan, np.nan]) == 0.5 and auroc([1, 0], [np.nan, np.inf]) == 1.0
