"""Position bias: `--class-order shuffle --repeats N` asks in N seeded orders and reports consistency."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from harness import plugins
from harness.scoring.class_order import check_class_order, class_orders, position_bias
from harness.cli import main
from harness.errors import HarnessError
from harness.record import Record
from harness.hookspecs import hookimpl
from harness.prompts import template_from_text
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import ClassInfo

CLASSES = [ClassInfo(k, k) for k in ("chip", "crack", "hole", "scratch", "stain")]


def keys(order):
    return [c.key for c in order]


def test_repeat_zero_is_the_given_order_and_shuffles_are_seeded_and_distinct():
    orders = class_orders(CLASSES, 4, seed=0, category="tile")
    assert keys(orders[0]) == keys(CLASSES)
    assert len({tuple(keys(o)) for o in orders}) == 4
    assert all(sorted(keys(o)) == keys(CLASSES) for o in orders)
    assert [keys(o) for o in class_orders(CLASSES, 4, seed=0, category="tile")] == [keys(o) for o in orders]
    # More repeats keep the earlier ones; another seed or category gives other shuffles.
    assert [keys(o) for o in class_orders(CLASSES, 6, seed=0, category="tile")[:4]] == [keys(o) for o in orders]
    assert [keys(o) for o in class_orders(CLASSES, 4, seed=1, category="tile")] != [keys(o) for o in orders]
    # Two classes have two orders: the second repeat is the swap, further repeats must reuse one.
    two = class_orders(CLASSES[:2], 3, seed=0, category="x")
    assert keys(two[1]) == ["crack", "chip"] and len(two) == 3


@pytest.mark.parametrize("mode, repeats, words", [
    ("shuffle", 1, "needs --repeats N with N >= 2"),
    ("given", 3, "needs --class-order shuffle"),
    ("sorted", 2, "unknown --class-order"),
    ("given", 0, "at least 1"),
])
def test_combinations_that_measure_nothing_are_refused(mode, repeats, words):
    with pytest.raises(HarnessError, match=words):
        check_class_order(mode, repeats)
    check_class_order("given", 1)
    check_class_order("shuffle", 2)


def run_scripted(tmp_path, tree, script, repeats=3, run_id="r", models=("scripted",), **config):
    _, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="folder", data_root=tree, gate="oracle", models=list(models), results_dir=tmp_path,
                       run_id=run_id, n_boot=100, class_order="shuffle" if repeats > 1 else "given",
                       repeats=repeats, **config)
    return Run(config, registry).execute()


def test_option_numbers_follow_each_order_and_consistency_is_counted(tmp_path, small_tree):
    # Always answers option 1: the prediction is whatever each order lists first -- pure position bias.
    result = run_scripted(tmp_path, small_tree, lambda prompt: "1")
    run, records = load_run(result.run_dir)
    n_samples = run["benchmark"]["n_samples"]
    assert len(records) == 3 * n_samples
    assert Counter(r["repeat"] for r in records) == {0: n_samples, 1: n_samples, 2: n_samples}
    orders = run["class_order"]["orders"]
    for category, per_repeat in orders.items():
        assert len({tuple(o) for o in per_repeat}) == 3, f"{category}: the three orders differ"
    called = [r for r in records if r["called"]]
    assert called and all(r["class_order"] == orders[r["category"]][r["repeat"]] for r in called)
    assert all(r["predicted_label"] == r["class_order"][0] for r in called), "'1' parsed against the order shown"
    # The prompt (and so the cache key) differs between orders of the same image.
    by_sample = {}
    for r in called:
        by_sample.setdefault(r["sample_id"], set()).add(r["prompt"]["hash"])
    assert all(len(hashes) == 3 for hashes in by_sample.values())

    figures = run["class_order"]["models"]["scripted"]
    # By hand: an image's answers agree across orders iff its category's three orders start with the same class.
    same_first = {c: len({o[0] for o in per_repeat}) == 1 for c, per_repeat in orders.items()}
    asked = {r["sample_id"]: r["category"] for r in called}
    expected = sum(same_first[c] for c in asked.values()) / len(asked)
    assert figures["n_compared"] == len(asked)
    assert figures["consistency"] == pytest.approx(expected)
    for repeat in range(3):
        per_category = [np.mean([r["correct"] for r in records if r["repeat"] == repeat and r["category"] == c])
                        for c in orders]
        assert figures["accuracy_per_order"][repeat] == pytest.approx(np.mean(per_category))
    assert figures["answer_positions"] == {"1": len(called)}  # every answer was the first listed class
    # Headline metrics are repeat 0's, i.e. the given order.
    assert run["metrics"]["scripted"]["protocols"]["velm"]["accuracy"] == pytest.approx(figures["accuracy_per_order"][0])
    assert run["metrics"]["scripted"]["n"] == n_samples


def test_an_order_blind_model_is_fully_consistent(tmp_path, small_tree):
    # Names the alphabetically first class whatever the order: the same answer in every order.
    result = run_scripted(tmp_path, small_tree, lambda prompt: min(c.name for c in prompt.candidates), repeats=4)
    figures = result.run["class_order"]["models"]["scripted"]
    assert figures["consistency"] == 1.0 and figures["n_compared"] > 0
    assert figures["accuracy_spread"] == 0.0
    positions = figures["answer_positions"]
    assert len(positions) > 1  # the chosen class moved around the list


def test_default_runs_are_unchanged_and_equal_repeat_zero(tmp_path, small_tree):
    registry = plugins.load_registry()
    plain = Run(RunConfig(benchmark="folder", data_root=small_tree, gate="none", models=["random"],
                          results_dir=tmp_path, run_id="plain", n_boot=100), registry).execute()
    assert "class_order" not in plain.run
    assert all(r["repeat"] == 0 for r in plain.records)
    shuffled = Run(RunConfig(benchmark="folder", data_root=small_tree, gate="none", models=["random"],
                             results_dir=tmp_path, run_id="shuffled", n_boot=100, class_order="shuffle", repeats=2),
                   registry).execute()
    first = {r["sample_id"]: (r["prompt"]["hash"], r["predicted_label"]) for r in shuffled.records if r["repeat"] == 0}
    assert first == {r["sample_id"]: (r["prompt"]["hash"], r["predicted_label"]) for r in plain.records}
    for protocol in ("velm", "anomalous"):
        ours, theirs = (r.run["metrics"]["random"]["protocols"][protocol] for r in (shuffled, plain))
        # (Intervals may differ: the bootstrap follows the order records finished in.)
        assert [ours[k] for k in ("n", "accuracy", "macro_f1", "kappa")] == [theirs[k] for k in ("n", "accuracy", "macro_f1", "kappa")]


def test_resume_keys_records_by_repeat(tmp_path, small_tree):
    calls = []

    def script(prompt):
        calls.append(prompt.hash)
        return prompt.candidates[0].name

    result = run_scripted(tmp_path, small_tree, script, repeats=2)
    total, asked = len(result.records), len(calls)
    samples = result.run_dir / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:7]))
    run_file = result.run_dir / "run.json"
    run = json.loads(run_file.read_text())
    run["status"], run["metrics"] = "running", {}
    run_file.write_text(json.dumps(run))

    calls.clear()
    _, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    Run(RunConfig.from_json(run["config"], tmp_path, "r"), registry).execute(resume=True)
    resumed, on_disk = load_run(result.run_dir)
    assert len(on_disk) == total
    assert Counter((r["sample_id"], r["model"], r["repeat"]) for r in on_disk).most_common(1)[0][1] == 1
    kept_called = sum(1 for line in lines[:7] if json.loads(line)["called"])
    assert len(calls) == asked - kept_called
    assert resumed["class_order"]["models"]["scripted"]["n_compared"] > 0


def test_a_template_that_hides_the_order_is_refused(tmp_path, small_tree):
    hidden = template_from_text("hidden", "[[user]]\n{{ image(\"query\") }}\nName the defect.")

    class TemplatePlugin:
        @hookimpl
        def register_prompt_templates(self, register):
            register(hidden)

    _, scripted = scripted_classifier(lambda prompt: prompt.candidates[0].name)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", scripted), ("hidden-template", TemplatePlugin())])
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="oracle", models=["scripted"], prompt="hidden",
                       results_dir=tmp_path, run_id="h", n_boot=100, class_order="shuffle", repeats=2)
    with pytest.raises(HarnessError, match="does not list `classes`"):
        Run(config, registry).execute()


def test_cli_flags(tmp_path, small_tree, capsys):
    def harness(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        return code, *capsys.readouterr()

    code, out, err = harness("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                             "--class-order", "shuffle", "--repeats", "2", "--results-dir", tmp_path, "--run-id", "c")
    assert code == 0, err
    assert "position bias: random: accuracy per class order" in out and "same answer in all 2 orders" in out
    run, records = load_run(tmp_path / "c")
    assert run["config"]["class_order"] == "shuffle" and run["config"]["repeats"] == 2
    assert len(records) == 2 * run["benchmark"]["n_samples"]
    code, out, err = harness("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                             "--repeats", "3", "--results-dir", tmp_path)
    assert code == 2 and "needs --class-order shuffle" in err


def test_position_bias_by_hand():
    def rec(sid, repeat, predicted, true="a", order=("a", "b")):
        return Record.from_json({"sample_id": sid, "category": "c", "true_label": true, "predicted_label": predicted,
                                 "error": None, "model": "m", "called": True, "repeat": repeat, "class_order": list(order)})

    records = [
        rec("1", 0, "a"), rec("1", 1, "a", order=("b", "a")),    # same answer: consistent
        rec("2", 0, "a"), rec("2", 1, "b", order=("b", "a")),    # changed with the order
        rec("3", 0, "b", true="b"),                              # repeat 1 missing: not compared
    ]
    figures = position_bias(records, {"c": ["good", "a", "b"]}, repeats=2, n_boot=50)
    assert (figures["consistency"], figures["n_consistent"], figures["n_compared"]) == (0.5, 1, 2)
    assert figures["accuracy_per_order"] == [pytest.approx(1.0), pytest.approx(0.5)]
    # chosen class at positions 1, 2, 1, 1, 2; true class at 1, 2, 1, 2, 2
    assert figures["answer_positions"] == {"1": 3, "2": 2}
    assert figures["true_positions"] == {"1": 2, "2": 3}
