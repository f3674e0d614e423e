"""Metrics against cases worked out by hand (fractions in the comments)."""

from __future__ import annotations

import dataclasses
import json
import random
from fractions import Fraction as F

import pytest

from harness.record import Record
from harness.scoring.metrics import (
    OUTCOMES,
    accuracy,
    bootstrap_accuracy,
    cohen_kappa,
    macro_f1,
    outcome_counts,
    outcome_of,
    per_class_scores,
    percentile,
    score_model,
    score_models,
    usage_summary,
)
from harness.types import ERROR_KINDS
from harness_datasets.benchmarks import MVTecADBenchmark

MODEL = "random"


def rec(category, true, pred, *, flagged=True, error=None, sid=None, **extra):
    """A `Record` read from a samples.jsonl-shaped line. ``pred`` is ignored when ``error`` is set."""
    called = flagged and error != "bad_input"
    record = {
        "sample_id": sid or f"{category}/{true}/{random.random()}",
        "category": category,
        "true_label": true,
        "gate": None if error == "bad_input" else {"name": "g", "score": 1.0, "flagged": flagged, "threshold": 0.5},
        "model": MODEL,
        "predicted_label": None if error else pred,
        "correct": error is None and pred == true,
        "error": error,
        "latency_s": 1.0 if called else None,
        "attempts": 1 if called else 0,
        "tokens_in": 100 if called else None,
        "tokens_out": 5 if called else None,
        "cost_usd": None,
        "called": called,
    }
    record.update(extra)
    return Record.from_json(record)


LABELS = {"bottle": ["good", "crack", "scratch"], "screw": ["good", "thread"]}

# bottle, 9 images:            true     predicted      outcome
BOTTLE = [
    rec("bottle", "good", "good", flagged=False),  # good     good           correct (no call)
    rec("bottle", "good", "good"),  #                good     good           correct
    rec("bottle", "good", "crack"),  #               good     crack          gate_false_alarm
    rec("bottle", "crack", "crack"),  #              crack    crack          correct
    rec("bottle", "crack", "crack"),  #              crack    crack          correct
    rec("bottle", "crack", "good", flagged=False),  # crack   good           gate_miss
    rec("bottle", "scratch", "scratch"),  #          scratch  scratch        correct
    rec("bottle", "scratch", None, error="unparseable"),  # scratch error    unparseable
    rec("bottle", "scratch", "crack"),  #            scratch  crack          wrong_class
]
# screw, 2 images, both right: good -> good (no call), thread -> thread.
SCREW = [rec("screw", "good", "good", flagged=False), rec("screw", "thread", "thread")]


def close(a, b):
    return a == pytest.approx(float(b), abs=1e-12)


# ------------------------------------------------------------------ one category, velm protocol


def test_velm_protocol_on_hand_computed_category():
    scores = score_model(BOTTLE, LABELS, n_boot=200)["protocols"]["velm"]["categories"]["bottle"]
    # 5 of 9 correct; the error record counts as wrong, not dropped.
    assert scores["n"] == 9
    assert close(scores["accuracy"], F(5, 9))
    # good:    support 3, predicted 3 (#1 #2 #6), tp 2 -> P 2/3 R 2/3 F1 2/3
    # crack:   support 3, predicted 4 (#3 #4 #5 #9), tp 2 -> P 1/2 R 2/3 F1 (2/3)/(7/6) = 4/7
    # scratch: support 3, predicted 1 (#7), tp 1 -> P 1 R 1/3 F1 (2/3)/(4/3) = 1/2
    # macro-F1 = (2/3 + 4/7 + 1/2) / 3 = 73/126
    assert close(scores["macro_f1"], F(73, 126))
    # kappa: po = 5/9; rows 3,3,3; columns good 3, crack 4, scratch 1, error 1
    # pe = 1/3 * (3 + 4 + 1)/9 = 8/27; kappa = (15/27 - 8/27) / (19/27) = 7/19
    assert close(scores["kappa"], F(7, 19))


def test_per_class_scores_by_hand():
    y_true = [r.true_label for r in BOTTLE]
    y_pred = ["good", "good", "crack", "crack", "crack", "good", "scratch", "error:unparseable", "crack"]
    per = per_class_scores(y_true, y_pred, LABELS["bottle"])
    assert close(per["crack"]["precision"], F(1, 2))
    assert close(per["crack"]["recall"], F(2, 3))
    assert close(per["crack"]["f1"], F(4, 7))
    assert close(per["scratch"]["precision"], 1) and close(per["scratch"]["recall"], F(1, 3))
    assert per["scratch"]["support"] == 3 and per["scratch"]["predicted"] == 1
    # The error key is no class: it is nobody's false positive.
    assert set(per) == {"good", "crack", "scratch"}


def test_macro_f1_skips_absent_classes_and_zero_prediction_precision():
    labels = ["good", "crack", "scratch", "hole"]
    # hole: never true, never predicted -> F1 0/0, not averaged.
    # scratch: support 1, never predicted -> P undefined (0/0), R 0, F1 2*0/(1+0) = 0 (counted).
    # crack: support 1, predicted 2, tp 1 -> P 1/2 R 1 F1 2/3.  good: support 1, predicted 1, tp 1 -> F1 1.
    y_true, y_pred = ["good", "crack", "scratch"], ["good", "crack", "crack"]
    assert close(macro_f1(y_true, y_pred, labels), (F(1) + F(2, 3) + 0) / 3)
    per = per_class_scores(y_true, y_pred, labels)
    assert per["scratch"]["precision"] is None and per["scratch"]["recall"] == 0.0 and per["scratch"]["f1"] == 0.0
    assert set(per) == {"good", "crack", "scratch"}


def test_macro_f1_counts_a_class_predicted_but_never_true_as_zero():
    labels = ["good", "crack", "scratch", "hole"]
    # No scratch image, but one answer says scratch: P 0 (0 of 1), R undefined (no support), F1 2*0/(0+1) = 0.
    # crack: support 2, predicted 1, tp 1 -> F1 2/3.  good: support 1, predicted 1 -> F1 1.  hole: absent, left out.
    y_true, y_pred = ["good", "crack", "crack"], ["good", "crack", "scratch"]
    per = per_class_scores(y_true, y_pred, labels)
    assert per["scratch"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0, "predicted": 1}
    assert close(macro_f1(y_true, y_pred, labels), (F(1) + F(2, 3) + 0) / 3)
    # An error key or a label outside the set is no class: it only misses its true class.
    assert close(macro_f1(["crack", "crack"], ["crack", "error:refused"], labels), F(2, 3))


def test_macro_f1_absent_classes_are_listed_and_noted():
    # bottle subset without any scratch image, and nobody answers scratch: scratch is left out of macro-F1.
    records = [rec("bottle", "good", "good", flagged=False), rec("bottle", "crack", "crack"), rec("bottle", "crack", "good")]
    result = score_model(records, LABELS, n_boot=20)
    velm = result["protocols"]["velm"]["categories"]["bottle"]
    assert velm["macro_f1_absent_classes"] == ["scratch"]
    # good: support 1, predicted 2, tp 1 -> 2/3; crack: support 2, predicted 1, tp 1 -> 2/3.
    assert close(velm["macro_f1"], F(2, 3))
    assert result["protocols"]["anomalous"]["categories"]["bottle"]["macro_f1_absent_classes"] == ["scratch"]
    assert "velm: macro-F1 averages only the classes with a scored image or a prediction; left out (bottle: scratch)" \
        in result["notes"]


def test_figures_over_zero_samples_are_undefined_not_zero():
    assert accuracy([], []) is None
    assert macro_f1([], [], ["good", "crack"]) is None
    assert cohen_kappa([], [], ["good", "crack"]) is None


def test_confusion_matrix_over_all_images():
    result = score_model(BOTTLE + SCREW, LABELS, n_boot=50)
    assert result["confusion"]["bottle"] == {
        "good": {"good": 2, "crack": 1},
        "crack": {"good": 1, "crack": 2},
        "scratch": {"crack": 1, "scratch": 1, "error:unparseable": 1},
    }
    # Columns follow the label set, errors last: stable JSON.
    assert list(result["confusion"]["bottle"]["scratch"]) == ["crack", "scratch", "error:unparseable"]
    assert result["confusion"]["screw"] == {"good": {"good": 1}, "thread": {"thread": 1}}


# ------------------------------------------------------------------ anomalous protocol


def test_anomalous_protocol_excludes_good_images():
    scores = score_model(BOTTLE, LABELS, n_boot=50)["protocols"]["anomalous"]["categories"]["bottle"]
    # Only #4..#9: true c c c s s s, predicted c c good s error c; labels {crack, scratch}.
    assert scores["n"] == 6
    # 3 of 6 right; the "good" prediction of a crack is wrong.
    assert close(scores["accuracy"], F(1, 2))
    # crack: support 3, predicted 3 (#4 #5 #9), tp 2 -> F1 2/3; scratch: P 1 R 1/3 -> F1 1/2
    assert close(scores["macro_f1"], (F(2, 3) + F(1, 2)) / 2)
    # rows 3,3; columns crack 3, scratch 1, other 2 ("good" and the error)
    # pe = 1/2 * 3/6 + 1/2 * 1/6 = 1/3; po = 1/2; kappa = (1/6) / (2/3) = 1/4
    assert close(scores["kappa"], F(1, 4))


def test_category_with_only_good_images_is_excluded_from_anomalous_mean():
    labels = {**LABELS, "cable": ["good", "cut"]}
    records = BOTTLE + [rec("cable", "good", "good", flagged=False)]
    anomalous = score_model(records, labels, n_boot=50)["protocols"]["anomalous"]
    assert anomalous["excluded"] == ["cable"]
    why = "no image to score under protocol anomalous"
    assert anomalous["categories"]["cable"] == {
        "n": 0, "accuracy": None, "accuracy_ci": None, "macro_f1": None, "kappa": None, "macro_f1_absent_classes": [],
        "undefined": {"accuracy": why, "macro_f1": why, "kappa": why},
    }
    assert anomalous["n_categories"] == 1
    assert anomalous["notes"] == ["anomalous: no image to score in cable; left out of every mean"]
    assert close(anomalous["accuracy"], F(1, 2))  # bottle's alone
    velm = score_model(records, labels, n_boot=50)["protocols"]["velm"]
    assert velm["excluded"] == [] and velm["n_categories"] == 2


# ------------------------------------------------------------------ benchmark mean


def test_benchmark_figure_is_unweighted_mean_over_categories():
    result = score_model(BOTTLE + SCREW, LABELS, n_boot=200)
    velm = result["protocols"]["velm"]
    # bottle 5/9, screw 2/2: mean (5/9 + 1)/2 = 7/9, whereas pooled over images it is 7/11.
    assert close(velm["accuracy"], F(7, 9))
    pooled = sum(r.true_label == (r.predicted_label or "") for r in BOTTLE + SCREW) / 11
    assert close(pooled, F(7, 11)) and abs(velm["accuracy"] - pooled) > 0.1
    # screw: all right, two classes -> macro-F1 1; po 1, pe 1/2 -> kappa 1.
    assert close(velm["macro_f1"], (F(73, 126) + 1) / 2)
    assert close(velm["kappa"], (F(7, 19) + 1) / 2)
    assert velm["n"] == 11
    assert velm["kappa_categories_defined"] == 2 and velm["notes"] == []
    # anomalous: bottle 1/2, screw 1/1. screw has one anomaly class (thread): kappa undefined there,
    # so the mean kappa is bottle's alone, and the notes say so.
    anomalous = result["protocols"]["anomalous"]
    assert close(anomalous["accuracy"], F(3, 4))
    assert anomalous["categories"]["screw"]["kappa"] is None
    assert anomalous["categories"]["screw"]["undefined"] == {
        "kappa": "one true class: 'thread' is the only class under protocol anomalous"}
    assert close(anomalous["kappa"], F(1, 4))
    assert anomalous["kappa_categories_defined"] == 1 and anomalous["n_categories"] == 2
    assert result["notes"] == [
        "anomalous: kappa is undefined in 1 of 2 categories and left out of the mean (screw: one true class: "
        "'thread' is the only class under protocol anomalous); the mean kappa is over the other 1"
    ]


def test_result_is_json_serialisable_with_plain_floats():
    result = score_model(BOTTLE + SCREW, LABELS, n_boot=50)
    assert json.loads(json.dumps(result)) == result

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (int, float, str, bool), (value, type(value))

    walk(result)
    assert result["n"] == 11
    assert set(result["protocols"]) == {"velm", "anomalous"}


# ------------------------------------------------------------------ kappa


def test_kappa_perfect_agreement_is_one():
    y = ["good", "crack", "scratch", "crack"]
    assert cohen_kappa(y, y, ["good", "crack", "scratch"]) == 1.0


def test_kappa_chance_level_is_zero():
    # po = 1/2; rows 2,2 and columns 2,2 -> pe = 1/2 -> kappa exactly 0.
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"], ["a", "b"]) == 0.0
    # Independent random guesses on a large sample: kappa near 0.
    rng = random.Random(1)
    labels = ["a", "b", "c"]
    y_true = [rng.choice(labels) for _ in range(20000)]
    y_pred = [rng.choice(labels) for _ in range(20000)]
    assert abs(cohen_kappa(y_true, y_pred, labels)) < 0.02


def test_kappa_with_one_true_class_is_undefined_whatever_the_answers():
    # One true class c: only row c is filled, so pe = col_c / n = po. The formula would give
    # 0/0 when every answer is c and exactly 0 otherwise: neither measures the answers.
    labels = ["good", "crack", "scratch"]
    assert cohen_kappa(["crack"] * 3, ["crack"] * 3, labels) is None  # pe = po = 1: 0/0
    assert cohen_kappa(["crack"] * 4, ["crack", "crack", "crack", "scratch"], labels) is None  # po = pe = 3/4
    assert cohen_kappa(["crack"] * 4, ["scratch"] * 4, labels) is None  # po = pe = 0
    assert cohen_kappa(["c", "c", "c"], ["c", "c", "error:timeout"], ["c"]) is None  # a single-class label set


def test_kappa_is_defined_once_the_truth_varies_even_for_a_constant_predictor():
    labels = ["good", "crack", "scratch"]
    # Truth crack, scratch; every answer crack: po 1/2, pe = 1/2 * 1 + 1/2 * 0 = 1/2 -> exactly 0.
    assert cohen_kappa(["crack", "scratch"], ["crack", "crack"], labels) == 0.0
    # Every answer an error: po 0, pe 0 -> 0.
    assert cohen_kappa(["crack", "scratch"], ["error:refused"] * 2, labels) == 0.0
    # Systematically swapped: po 0, pe = 1/2 * 1/2 + 1/2 * 1/2 = 1/2 -> (0 - 1/2) / (1/2) = -1.
    assert cohen_kappa(["crack", "scratch"], ["scratch", "crack"], labels) == -1.0
    # With two or more true classes pe <= the largest true share < 1: always a finite number.
    rng = random.Random(5)
    for _ in range(200):
        y_true = [rng.choice(labels) for _ in range(rng.randint(2, 8))]
        if len(set(y_true)) < 2:
            continue
        y_pred = [rng.choice(labels + ["error:timeout"]) for _ in y_true]
        value = cohen_kappa(y_true, y_pred, labels)
        assert value is not None and -1.0 <= value <= 1.0


def _toothbrush(n_wrong: int) -> list[Record]:
    """Records of MVTec-AD's released toothbrush test set: every answer right but the first ``n_wrong`` defects."""
    data = MVTecADBenchmark().released(["toothbrush"])
    records, wrong = [], 0
    for sample in data.samples:
        failed = sample.label != "good" and wrong < n_wrong
        wrong += failed
        records.append(rec("toothbrush", sample.label, None if failed else sample.label,
                           error="unparseable" if failed else None, sid=sample.sample_id,
                           flagged=sample.label != "good"))
    return records


def test_toothbrush_kappa_is_undefined_under_anomalous_with_or_without_a_failure():
    # The case: toothbrush has one defect class (defective); 30 defective and 12 good test images.
    labels = {"toothbrush": MVTecADBenchmark().released(["toothbrush"]).categories[0].labels}
    assert labels == {"toothbrush": ["good", "defective"]}
    all_right = score_model(_toothbrush(0), labels, n_boot=50)
    one_failure = score_model(_toothbrush(1), labels, n_boot=50)
    why = "one true class: 'defective' is the only class under protocol anomalous"
    for result in (all_right, one_failure):
        anomalous = result["protocols"]["anomalous"]
        assert anomalous["n"] == 30
        # Was 1.0 (all right) and 0.0 (one failure: po = pe = 29/30): now undefined, not in the mean.
        assert anomalous["categories"]["toothbrush"]["kappa"] is None and anomalous["kappa"] is None
        assert anomalous["kappa_categories_defined"] == 0
        assert anomalous["categories"]["toothbrush"]["undefined"] == {"kappa": why}
        assert result["notes"] == [f"anomalous: kappa is undefined in 1 of 1 categories and left out of the mean "
                                   f"(toothbrush: {why}); the mean kappa is undefined"]
    assert all_right["protocols"]["anomalous"]["accuracy"] == 1.0
    assert close(one_failure["protocols"]["anomalous"]["accuracy"], F(29, 30))
    # defective: support 30, predicted 29, tp 29 -> F1 = 58/59.
    assert close(one_failure["protocols"]["anomalous"]["macro_f1"], F(58, 59))
    # Under velm toothbrush has two true classes (good 12, defective 30): kappa defined.
    # One failure: po 41/42; rows 12, 30; columns good 12, defective 29 -> pe = (144 + 870) / 1764 = 169/294;
    # kappa = (41/42 - 169/294) / (125/294) = (287 - 169) / 125 = 118/125.
    assert all_right["protocols"]["velm"]["kappa"] == 1.0
    assert close(one_failure["protocols"]["velm"]["kappa"], F(118, 125))


def test_mean_kappa_leaves_undefined_categories_out_with_a_note():
    labels = {**LABELS, "toothbrush": ["good", "defective"]}
    result = score_model(BOTTLE + SCREW + _toothbrush(1), labels, n_boot=50)
    anomalous = result["protocols"]["anomalous"]
    # bottle 1/4 is the only defined kappa; screw (thread) and toothbrush (defective) have one anomaly class.
    assert close(anomalous["kappa"], F(1, 4))
    assert anomalous["kappa_categories_defined"] == 1 and anomalous["n_categories"] == 3
    # accuracy and macro-F1 still average all three: (1/2 + 1 + 29/30) / 3.
    assert close(anomalous["accuracy"], (F(1, 2) + 1 + F(29, 30)) / 3)
    (note,) = [n for n in result["notes"] if "kappa" in n]
    assert note.startswith("anomalous: kappa is undefined in 2 of 3 categories and left out of the mean (screw: ")
    assert "; toothbrush: one true class: 'defective' is the only class" in note
    assert note.endswith("the mean kappa is over the other 1")
    # A subset whose scored images are all one class of a many-class category: undefined too, said so.
    crack_only = score_model([rec("bottle", "crack", "crack"), rec("bottle", "crack", "scratch")], LABELS, n_boot=20)
    assert crack_only["protocols"]["velm"]["categories"]["bottle"]["undefined"] == {
        "kappa": "one true class: all 2 scored images are 'crack'"}


# ------------------------------------------------------------------ outcomes


def test_outcome_branches():
    assert outcome_of(rec("bottle", "crack", "crack")) == "correct"
    assert outcome_of(rec("bottle", "crack", "scratch")) == "wrong_class"
    assert outcome_of(rec("bottle", "crack", "good")) == "wrong_class"  # flagged, model said good
    assert outcome_of(rec("bottle", "crack", "good", flagged=False)) == "gate_miss"
    assert outcome_of(rec("bottle", "good", "crack")) == "gate_false_alarm"
    # The pass-through gate flags everything: a defect named on a good image is the model's.
    assert outcome_of(rec("bottle", "good", "crack"), gate_passes_all=True) == "wrong_class"
    assert outcome_of(rec("bottle", "good", "good"), gate_passes_all=True) == "correct"
    for kind in ERROR_KINDS:
        # An error wins over everything, even on a good image or an unflagged one.
        assert outcome_of(rec("bottle", "good", None, error=kind)) == kind
        assert outcome_of(rec("bottle", "crack", None, error=kind, flagged=False)) == kind
    assert set(OUTCOMES) == {"correct", "wrong_class", "gate_miss", "gate_false_alarm", *ERROR_KINDS}


def test_outcome_counts_for_one_model():
    counts = score_model(BOTTLE, LABELS, n_boot=10)["outcomes"]
    assert list(counts) == list(OUTCOMES)
    assert counts == {
        "correct": 4 + 0 + 1, "wrong_class": 1, "gate_miss": 1, "gate_false_alarm": 1,
        "bad_input": 0, "unparseable": 1, "refused": 0, "backend_error": 0, "timeout": 0,
    }
    assert outcome_counts(BOTTLE, gate_passes_all=True)["gate_false_alarm"] == 0
    assert outcome_counts(BOTTLE, gate_passes_all=True)["wrong_class"] == 2


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_is_deterministic_and_contains_point_estimate():
    a = score_model(BOTTLE + SCREW, LABELS, seed=7, n_boot=500)["protocols"]["velm"]
    b = score_model(BOTTLE + SCREW, LABELS, seed=7, n_boot=500)["protocols"]["velm"]
    assert a["accuracy_ci"] == b["accuracy_ci"]
    assert a["categories"]["bottle"]["accuracy_ci"] == b["categories"]["bottle"]["accuracy_ci"]
    # With 9 images the percentiles are coarse; on a larger category the seed shows.
    big = {"a": [True, True, False] * 50}
    assert bootstrap_accuracy(big, n_boot=200, seed=7) == bootstrap_accuracy(big, n_boot=200, seed=7)
    assert bootstrap_accuracy(big, n_boot=200, seed=7) != bootstrap_accuracy(big, n_boot=200, seed=8)
    lo, hi = a["accuracy_ci"]
    assert lo <= a["accuracy"] <= hi and lo < hi
    lo, hi = a["categories"]["bottle"]["accuracy_ci"]
    assert lo <= F(5, 9) <= hi
    # screw is all correct: every resample is 1.
    assert a["categories"]["screw"]["accuracy_ci"] == [1.0, 1.0]


def test_bootstrap_does_not_depend_on_the_order_records_finished_in():
    # Concurrent model calls finish in any order; the same answers must give the same intervals.
    records = [
        rec("bottle", true, pred, sid=f"bottle/{i:03d}")
        for i, (true, pred) in enumerate([("crack", "crack"), ("crack", "scratch"), ("scratch", "scratch")] * 20)
    ]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != records
    in_order = score_model(records, LABELS, seed=1, n_boot=300)["protocols"]["velm"]
    out_of_order = score_model(shuffled, LABELS, seed=1, n_boot=300)["protocols"]["velm"]
    assert in_order["accuracy_ci"] == out_of_order["accuracy_ci"]
    assert in_order["accuracy_ci"][0] < in_order["accuracy"] < in_order["accuracy_ci"][1]


def test_bootstrap_all_correct_is_degenerate():
    mean_ci, per = bootstrap_accuracy({"a": [True] * 5, "b": [True] * 3}, n_boot=100)
    assert mean_ci == [1.0, 1.0] and per == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def test_bootstrap_wider_for_smaller_n():
    small = {"a": [True, False] * 5}  # n = 10, accuracy 1/2
    large = {"a": [True, False] * 200}  # n = 400, accuracy 1/2
    (lo_s, hi_s), _ = bootstrap_accuracy(small, n_boot=1000, seed=0)
    (lo_l, hi_l), _ = bootstrap_accuracy(large, n_boot=1000, seed=0)
    assert lo_s <= 0.5 <= hi_s and lo_l <= 0.5 <= hi_l
    assert hi_s - lo_s > 2 * (hi_l - lo_l)


# ------------------------------------------------------------------ usage


def test_usage_percentiles_tokens_and_cost():
    records = [rec("bottle", "crack", "crack", latency_s=t, tokens_in=10 * t, cost_usd=None) for t in (1, 2, 3, 4, 5)]
    records.append(rec("bottle", "good", "good", flagged=False))  # no call: no latency, no tokens
    records.append(rec("bottle", "crack", "crack", latency_s=None, tokens_in=None, attempts=3))  # called, no timing
    usage = usage_summary(records)
    assert usage["calls"] == 6
    assert usage["attempts"] == 5 * 1 + 0 + 3
    assert usage["latency_p50"] == 3.0
    # numpy linear: rank 0.95 * (5 - 1) = 3.8 -> 4 + 0.8 * (5 - 4) = 4.8
    assert usage["latency_p95"] == pytest.approx(4.8)
    assert usage["tokens_in_total"] == 150 and usage["tokens_in_mean"] == 30.0
    assert usage["tokens_out_total"] == 6 * 5 and usage["tokens_out_mean"] == 5.0
    assert usage["cost_usd_total"] is None  # every cost unknown

    records[0].cost_usd, records[1].cost_usd = 0.25, 0.5
    assert usage_summary(records)["cost_usd_total"] == pytest.approx(0.75)


def test_usage_with_no_calls():
    usage = usage_summary([rec("bottle", "good", "good", flagged=False)])
    assert usage["calls"] == 0 and usage["latency_p50"] is None and usage["tokens_in_mean"] is None
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], [25, 50]) == [1.75, 2.5]


# ------------------------------------------------------------------ input errors


def test_unknown_category_or_label_raises():
    with pytest.raises(ValueError, match="category 'carpet'"):
        score_model([rec("carpet", "good", "good")], LABELS)
    with pytest.raises(ValueError, match="true label 'hole'"):
        score_model([rec("bottle", "hole", "hole")], LABELS)
    with pytest.raises(ValueError, match="unknown error kind"):
        score_model([rec("bottle", "crack", None, error="exploded")], LABELS)
    with pytest.raises(ValueError, match="neither"):
        score_model([rec("bottle", "crack", None)], LABELS)


def test_mixed_models_are_scored_apart():
    other = [dataclasses.replace(r, model="openai:gpt-4o", predicted_label=r.true_label, error=None) for r in BOTTLE]
    with pytest.raises(ValueError, match="one model"):
        score_model(BOTTLE + other, LABELS)
    results = score_models(BOTTLE + other, LABELS, n_boot=20)
    assert list(results) == [MODEL, "openai:gpt-4o"]
    assert results["openai:gpt-4o"]["protocols"]["velm"]["accuracy"] == 1.0
