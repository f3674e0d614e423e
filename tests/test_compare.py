"""`harness compare`: exact McNemar, paired bootstrap, changed images, refusals; the leaderboard's grouping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.scoring import leaderboard
from harness import plugins
from harness.cli import main
from harness_compare.paired import compare_models, compare_runs, mcnemar_exact, pair_models, paired_bootstrap
from harness.errors import HarnessError
from harness.record import Record
from harness.results import load_run
from harness.run.run_folder import RunFolder
from harness.run.runner import Run, RunConfig


def record(sample_id: str, category: str, true: str, predicted: str | None, model: str = "m",
           error: str | None = None, **extra) -> Record:
    return Record.from_json({"sample_id": sample_id, "category": category, "true_label": true,
                             "predicted_label": predicted, "error": error, "model": model, **extra})


def loaded(records: list[Record], run_id: str, manifest: str = "h1", benchmark: str = "demo",
           models: list[str] | None = None) -> RunFolder:
    run = {"run_id": run_id, "status": "finished", "benchmark": {"name": benchmark, "manifest_hash": manifest},
           "config": {"models": models or sorted({r.model for r in records})}}
    return RunFolder(run_id, Path(run_id), run, [r.to_json() for r in records])  # a run folder holds the lines


# --------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize("b, c, expected", [
    (0, 5, 0.0625),             # 2 * C(5,0) / 2^5 = 2/32
    (5, 0, 0.0625),             # two-sided: symmetric
    (1, 4, 0.375),              # 2 * (1 + 5) / 32
    (3, 10, 756 / 8192),        # 2 * (1 + 13 + 78 + 286) / 2^13
    (2, 2, 1.0),                # 2 * (1 + 4 + 6) / 16 > 1, capped
    (0, 0, 1.0),                # no discordant pair: no evidence either way
    (0, 1, 1.0),                # 2 * 1/2
    (100, 100, 1.0),
])
def test_mcnemar_exact_on_small_tables(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_keeps_precision_for_large_counts():
    # 2 * P[Bin(1000, 1/2) <= 400]: tiny but not zero; symmetric in b and c.
    p = mcnemar_exact(400, 600)
    assert 0 < p < 1e-9 and p == mcnemar_exact(600, 400)
    assert mcnemar_exact(0, 30) == pytest.approx(2 / 2**30)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --------------------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_is_seeded_and_brackets_the_difference():
    pairs = {
        "a": [(True, True)] * 10 + [(False, True)] * 6 + [(True, False)] * 2 + [(False, False)] * 2,  # +4/20
        "b": [(True, True)] * 5 + [(False, True)] * 3 + [(False, False)] * 2,                        # +3/10
    }
    overall, per_category = paired_bootstrap(pairs, n_boot=2000, seed=7)
    point = (0.2 + 0.3) / 2
    assert overall[0] < point < overall[1]
    assert per_category["a"][0] < 0.2 < per_category["a"][1]
    assert per_category["b"][0] < 0.3 < per_category["b"][1]
    # Every discordant pair in category b favours B, so no resample makes B worse there.
    assert per_category["b"][0] >= 0.0
    assert paired_bootstrap(pairs, n_boot=2000, seed=7) == (overall, per_category)
    assert paired_bootstrap(pairs, n_boot=2000, seed=8) != (overall, per_category)


def test_paired_bootstrap_of_identical_systems_is_exactly_zero():
    # Pairing matters: both models right or both wrong on each image -> every resampled difference is 0,
    # which an unpaired bootstrap of two accuracies of 50% would not give.
    pairs = {"a": [(True, True), (False, False)] * 10}
    overall, per_category = paired_bootstrap(pairs, n_boot=500, seed=0)
    assert overall == [0.0, 0.0] and per_category["a"] == [0.0, 0.0]


# --------------------------------------------------------------------------- comparing records


def test_compare_models_counts_pairs_and_lists_changed_samples():
    a = [
        record("x/1", "x", "crack", "crack"),                   # both right
        record("x/2", "x", "crack", "crack"),                   # A right, B wrong
        record("x/3", "x", "scratch", "crack"),                 # A wrong, B right
        record("x/4", "x", "good", "good"),                     # both right
        record("y/1", "y", "dent", None, error="unparseable"),  # A wrong (error), B right
        record("y/2", "y", "dent", "rust"),                     # both wrong
        record("y/3", "y", "rust", "rust"),                     # only in A
        record("y/5", "y", "rust", "rust"),                     # true label differs between runs
    ]
    b = [
        record("x/1", "x", "crack", "crack", model="n"),
        record("x/2", "x", "crack", "scratch", model="n"),
        record("x/3", "x", "scratch", "scratch", model="n"),
        record("x/4", "x", "good", "good", model="n"),
        record("y/1", "y", "dent", "dent", model="n"),
        record("y/2", "y", "dent", "scratch", model="n"),
        record("y/4", "y", "dent", "dent", model="n"),          # only in B
        record("y/5", "y", "dent", "rust", model="n"),
    ]
    result = compare_models(a, b, "m", "n", n_boot=200)
    assert result["samples"] == {"compared": 6, "only_in_a": 1, "only_in_b": 1, "true_label_differs": 1}
    x, y = result["categories"]["x"], result["categories"]["y"]
    assert (x["n"], x["accuracy_a"], x["accuracy_b"], x["a_right_b_wrong"], x["a_wrong_b_right"]) == (4, 0.75, 0.75, 1, 1)
    assert (y["n"], y["accuracy_a"], y["accuracy_b"], y["a_right_b_wrong"], y["a_wrong_b_right"]) == (2, 0.0, 0.5, 0, 1)
    overall = result["overall"]
    assert overall["difference"] == pytest.approx((0.0 + 0.5) / 2)  # mean over categories
    assert (overall["a_right_b_wrong"], overall["a_wrong_b_right"], overall["both_right"], overall["both_wrong"]) == (1, 2, 2, 1)
    assert overall["mcnemar_p"] == pytest.approx(1.0)  # 2 * (1 + 3) / 8 capped
    assert result["changed"]["right_to_wrong"] == [
        {"sample_id": "x/2", "category": "x", "true_label": "crack", "a": "crack", "b": "scratch"}]
    assert [c["sample_id"] for c in result["changed"]["wrong_to_right"]] == ["x/3", "y/1"]
    assert result["changed"]["wrong_to_right"][1]["a"] == "error:unparseable"


def test_anomalous_protocol_leaves_good_images_out():
    a = [record("x/1", "x", "good", "good"), record("x/2", "x", "crack", "crack")]
    b = [record("x/1", "x", "good", "crack"), record("x/2", "x", "crack", "crack")]
    assert compare_models(a, b, "m", "m", n_boot=100)["overall"]["n"] == 2
    anomalous = compare_models(a, b, "m", "m", protocol="anomalous", n_boot=100)
    assert anomalous["overall"]["n"] == 1 and anomalous["changed"]["right_to_wrong"] == []


def test_only_repeat_zero_is_compared():
    a = [record("x/1", "x", "crack", "crack", repeat=0), record("x/1", "x", "crack", "dent", repeat=1)]
    b = [record("x/1", "x", "crack", "dent")]  # a record written before repeats existed is repeat 0
    result = compare_models(a, b, "m", "m", n_boot=100)
    assert result["overall"]["n"] == 1 and result["overall"]["a_right_b_wrong"] == 1


def test_runs_over_different_manifests_are_refused_unless_asked():
    a = loaded([record("x/1", "x", "crack", "crack")], "A", manifest="h1")
    b = loaded([record("x/1", "x", "crack", "dent")], "B", manifest="h2")
    with pytest.raises(HarnessError, match="different image sets.*--common-samples"):
        compare_runs(a, b)
    other_benchmark = loaded([record("x/1", "x", "crack", "dent")], "C", manifest="h1", benchmark="mvtec-ac")
    with pytest.raises(HarnessError, match="benchmark demo vs mvtec-ac"):
        compare_runs(a, other_benchmark)
    report = compare_runs(a, b, allow_different_manifests=True, n_boot=100)
    assert "compared on the images both scored only" in report["notes"][0]
    assert report["comparisons"][0]["overall"]["a_right_b_wrong"] == 1


def test_model_pairing():
    a = loaded([record("x/1", "x", "crack", "crack", model=m) for m in ("random", "openai:gpt-4o")], "A",
               models=["random", "openai:gpt-4o"])
    b = loaded([record("x/1", "x", "crack", "crack", model=m) for m in ("random", "imported:velm")], "B",
               models=["random", "imported:velm"])
    assert pair_models(a, b) == [("random", "random")]
    assert pair_models(a, b, ["openai:gpt-4o=imported:velm", "random"]) == [
        ("openai:gpt-4o", "imported:velm"), ("random", "random")]
    with pytest.raises(HarnessError, match="names no model pair.*openai:gpt-4o.*imported:velm"):
        pair_models(a, b, ["openai:gpt-4o"])
    only_a = loaded([record("x/1", "x", "crack", "crack", model="openai:gpt-4o")], "A1")
    only_b = loaded([record("x/1", "x", "crack", "crack", model="imported:velm")], "B1")
    assert pair_models(only_a, only_b) == [("openai:gpt-4o", "imported:velm")]
    with pytest.raises(HarnessError, match="share no model name"):
        pair_models(a, loaded([], "Z", models=["x", "y"]))


# --------------------------------------------------------------------------- the command


def run_random(results: Path, tree: Path, run_id: str, seed: int, limit: int | None = None) -> Path:
    config = RunConfig(benchmark="folder", data_root=tree, gate="oracle", models=["random"], results_dir=results,
                       run_id=run_id, n_boot=100, limit=limit, model_options={"random": {"seed": seed}})
    return Run(config, plugins.load_registry()).execute().run_dir


def harness(*args, capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_command_prints_and_writes_json(tmp_path, small_tree, capsys):
    run_random(tmp_path, small_tree, "a", seed=1)
    run_b = run_random(tmp_path, small_tree, "b", seed=2)
    output = tmp_path / "out" / "compare.json"
    code, out, err = harness("compare", "a", run_b, "--results-dir", tmp_path, "--output", output, capsys=capsys)
    assert code == 0, err
    assert "random (A) vs random (B)" in out and "McNemar p" in out and "overall" in out
    report = json.loads(output.read_text())
    comparison = report["comparisons"][0]
    run_a, records_a = load_run(tmp_path / "a")
    run_b_json, records_b = load_run(run_b)
    # On the same images the overall figures are exactly the runs' own benchmark figures.
    assert comparison["overall"]["accuracy_a"] == pytest.approx(run_a["metrics"]["random"]["protocols"]["velm"]["accuracy"])
    assert comparison["overall"]["accuracy_b"] == pytest.approx(run_b_json["metrics"]["random"]["protocols"]["velm"]["accuracy"])
    truth = {(r["sample_id"]): (r["correct"], s["correct"]) for r in records_a
             for s in records_b if s["sample_id"] == r["sample_id"]}
    assert len(comparison["changed"]["right_to_wrong"]) == sum(1 for x, y in truth.values() if x and not y)
    assert len(comparison["changed"]["wrong_to_right"]) == sum(1 for x, y in truth.values() if y and not x)
    assert comparison["samples"]["compared"] == len(records_a)


def test_compare_command_refuses_different_image_sets(tmp_path, small_tree, capsys):
    run_random(tmp_path, small_tree, "full", seed=1)
    run_random(tmp_path, small_tree, "subset", seed=1, limit=3)
    code, _, err = harness("compare", "full", "subset", "--results-dir", tmp_path, capsys=capsys)
    assert code == 2 and "different image sets" in err and "Traceback" not in err
    code, out, err = harness("compare", "full", "subset", "--results-dir", tmp_path, "--common-samples", capsys=capsys)
    assert code == 0, err
    assert "0 only in B" in out and "only in A" in out
    code, _, err = harness("compare", "full", "missing", "--results-dir", tmp_path, capsys=capsys)
    assert code == 2 and "'missing' not found" in err


# --------------------------------------------------------------------------- the leaderboard


def _finished_run(run_id: str, manifest: str, model: str, accuracy: float) -> dict:
    velm = {"accuracy": accuracy, "accuracy_ci": [accuracy - 0.1, accuracy + 0.1], "macro_f1": 0.5, "kappa": 0.4}
    return {"run_id": run_id, "status": "finished", "created_at": run_id,
            "benchmark": {"name": "demo", "manifest_hash": manifest},
            "config": {"gate": "oracle", "prompt": "velm"},
            "metrics": {model: {"n": 10, "protocols": {"velm": velm}, "outcomes": {}, "usage": {}}}}


def test_leaderboard_never_ranks_different_manifests_together():
    rows = [row for run in (_finished_run("r1", "h1", "weak", 0.3), _finished_run("r2", "h2", "strong", 0.9),
                            _finished_run("r3", "h1", "better", 0.6))
            for row in leaderboard.rows_from_run(run)]
    tables = leaderboard.group(rows)
    assert list(tables) == [("demo", "h1"), ("demo", "h2")]
    assert [r.model for r in tables[("demo", "h1")]] == ["better", "weak"]  # ranked within its own image set
    assert [r.model for r in tables[("demo", "h2")]] == ["strong"]
    markdown = leaderboard.render_markdown(tables)
    assert markdown.count("## demo (manifest") == 2
