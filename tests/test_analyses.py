"""Analyses: the run.json figures come from registered analyses, computed once from finished records."""

from __future__ import annotations

import json

from harness import plugins
from harness.analyses import FinishedRun
from harness.run.runner import Run, RunConfig
from harness.testing import plugin_of

from conftest import run_cli


class CountAnswers:
    """A plugin's figure: how many records each model has, and how often it was asked."""

    name = "answer_counts"
    description = "records and calls per model"
    seen: list[FinishedRun] = []

    def analyse(self, run: FinishedRun):
        CountAnswers.seen.append(run)
        return {m: {"records": sum(r.model == m for r in run.records),
                    "called": sum(r.model == m and r.called for r in run.records)} for m in run.models}


class NothingToSay:
    name = "nothing"
    description = "writes no section"

    def analyse(self, run):
        return None


def test_the_core_figures_are_registered_analyses_in_run_json_order():
    registry = plugins.load_registry(entry_points=False)
    assert list(registry.analyses) == ["metrics", "decisions", "class_order", "gate_metrics", "call_failures"]
    assert all(entry.plugin == "builtin" for entry in registry.analyses.values())


def test_a_plugins_analysis_runs_once_after_the_last_record_and_writes_its_section(tmp_path, small_tree):
    CountAnswers.seen.clear()
    registry = plugins.load_registry(extra_plugins=[("counts", plugin_of(analyses=[CountAnswers(), NothingToSay()]))])
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], categories=["label"],
                       results_dir=tmp_path, run_id="a", n_boot=20, use_cache=False)
    result = Run(config, registry).execute()
    assert len(CountAnswers.seen) == 1, "computed once"
    finished = CountAnswers.seen[0]
    # Records, each the line the run wrote (the writers' and hook's dicts).
    assert [r.to_json() for r in finished.records] == result.records and len(result.records) == 12  # 2 good + 5 classes x 2
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["answer_counts"] == {"random": {"records": 12, "called": 10}}  # the oracle flags the 10 defects
    assert "nothing" not in run
    keys = list(run)
    # The core's sections first, in their order; the plugin's after them.
    assert keys.index("metrics") < keys.index("gate_metrics") < keys.index("call_failures") < keys.index("answer_counts")


def test_replacing_a_core_analysis_by_name(tmp_path, small_tree):
    class Metrics:
        name = "metrics"
        description = "a replacement"

        def analyse(self, run):
            return {"replaced": True}

    registry = plugins.load_registry(extra_plugins=[("mine", plugin_of(analyses=[Metrics()]))])
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], categories=["label"],
                       results_dir=tmp_path, run_id="b", n_boot=20, use_cache=False)
    Run(config, registry).execute()
    assert json.loads((tmp_path / "b" / "run.json").read_text())["metrics"] == {"replaced": True}


def test_harness_list_shows_the_analyses(capsys):
    code, out, _ = run_cli("list", capsys=capsys)
    assert code == 0 and "Analyses" in out and "gate_metrics" in out
