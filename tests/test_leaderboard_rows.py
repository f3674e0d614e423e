"""Leaderboard rows: options and seeds are kept apart, failing runs are marked and replace no good one, cost splits.

Real runs of the folder benchmark on a small image tree (``random`` and
scripted models); the creation times are stamped so that "newer" is exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")

from harness.scoring import leaderboard
from harness import plugins
from harness.run import run_identity
from harness.scoring.metrics import usage_summary
from harness_report.report import build_report
from harness.record import records_from_json
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.testing.loopback import Answer, LoopbackServer


def run(results: Path, root: Path, run_id: str, second: int, *, models=("random",), registry=None, **config):
    """A finished run, its ``created_at`` stamped to ``second`` past a fixed minute."""
    Run(RunConfig(benchmark="folder", data_root=root, models=list(models), results_dir=results, run_id=run_id,
                  n_boot=20, use_cache=False, **config), registry or plugins.load_registry()).execute()
    path = results / run_id / "run.json"
    data = json.loads(path.read_text())
    data["created_at"] = f"2025-01-01T00:00:{second:02d}+00:00"
    path.write_text(json.dumps(data))
    return data


def rows_by_run(results: Path) -> dict[str, leaderboard.Row]:
    return {row.run_id: row for row in leaderboard.collect([results])}


def scripted(failing_every: int | None):
    """A registry whose ``scripted`` model answers the first class, failing every Nth call permanently (or never)."""
    calls = iter(range(10**6))

    def script(prompt):
        if failing_every and next(calls) % failing_every == 0:
            return RuntimeError("HTTP 400 from the test backend")
        return prompt.candidates[0].name

    _, plugin = scripted_classifier(script)
    return plugins.load_registry(extra_plugins=[("scripted-rows", plugin)])


def test_runs_with_other_options_or_seeds_are_separate_rows(tmp_path, small_tree):
    results = tmp_path / "results"
    run(results, small_tree, "plain", 1)
    run(results, small_tree, "seed-3", 2, seed=3)
    run(results, small_tree, "option", 3, model_options={"random": {"seed": 5, "concurrency": 2}})
    run(results, small_tree, "plain-again", 4)
    rows = rows_by_run(results)
    assert sorted(rows) == ["option", "plain-again", "seed-3"]  # plain-again replaced plain, nothing else
    assert rows["plain-again"].runs == 2 and "(+1 older)" in leaderboard.cells(1, rows["plain-again"])["run"]
    hashes = {name: row.options_hash for name, row in rows.items()}
    assert hashes["plain-again"] == hashes["seed-3"] != hashes["option"]  # the run seed is no model option
    assert (rows["seed-3"].seed, rows["plain-again"].seed) == (3, 0)
    option_cell = leaderboard.cells(1, rows["option"])["options"]
    assert "seed=5" in option_cell and "concurrency" not in option_cell and hashes["option"] in option_cell
    assert leaderboard.cells(1, rows["seed-3"])["options"] == f"seed 3 ({hashes['seed-3']})"
    provenance = load_run(results / "option")[0]["provenance"]["classifiers"]["random"]
    assert provenance["answer_options"] == {"seed": 5}
    assert provenance["options_hash"] == run_identity.options_hash({"seed": 5})
    (table,) = leaderboard.group(list(rows.values())).values()
    assert len(table) == 3


def test_a_failing_run_never_replaces_a_good_one(tmp_path, small_tree):
    results = tmp_path / "results"
    run(results, small_tree, "good", 1, models=["scripted"], registry=scripted(None))
    run(results, small_tree, "failing", 2, models=["scripted"], registry=scripted(2))  # half its calls fail
    (row,) = leaderboard.collect([results])
    assert row.run_id == "good" and row.runs == 2 and row.hidden_failed == 1
    cells = leaderboard.cells(1, row)
    assert cells["failed calls"] == "0/30" and "1 newer failed over 5.0% of calls" in cells["run"]
    run(results, small_tree, "good-again", 3, models=["scripted"], registry=scripted(None))
    (row,) = leaderboard.collect([results])
    assert row.run_id == "good-again" and row.hidden_failed == 0  # a newer good run replaces as always


def test_a_failing_run_alone_is_shown_marked_and_a_small_share_replaces(tmp_path, small_tree):
    results = tmp_path / "results"
    run(results, small_tree, "failing", 1, models=["scripted"], registry=scripted(2))
    (row,) = leaderboard.collect([results])
    assert row.failed_share == 0.5 and leaderboard.cells(1, row)["failed calls"] == "15/30 (50.0%) !"
    run(results, small_tree, "one-failure", 2, models=["scripted"], registry=scripted(31))  # 1 of 30: 3.3%
    (row,) = leaderboard.collect([results])
    assert row.run_id == "one-failure" and leaderboard.cells(1, row)["failed calls"] == "1/30 (3.3%)"
    board = leaderboard.render_markdown(leaderboard.group([row]))
    assert "| failed calls |" in board and "never replaces" in board


def test_run_folders_without_an_options_hash_still_rank(tmp_path, small_tree):
    results = tmp_path / "results"
    data = run(results, small_tree, "old", 1)
    for identity in data["provenance"]["classifiers"].values():
        del identity["answer_options"], identity["options_hash"]
    (results / "old" / "run.json").write_text(json.dumps(data))
    run(results, small_tree, "new", 2)
    rows = rows_by_run(results)
    assert rows["old"].options_hash is None and leaderboard.cells(1, rows["old"])["options"] == "seed 0"
    assert rows["new"].options_hash is not None  # a different key: both are shown


def test_usage_splits_cost_into_spent_and_cached():
    records = [{"called": True, "cost_usd": 0.25, "cached": False}, {"called": True, "cost_usd": 0.5, "cached": True},
               {"called": True, "cost_usd": None, "cached": False}, {"called": False, "cost_usd": None}]
    usage = usage_summary(records_from_json(records))
    assert (usage["cost_usd_total"], usage["cost_usd_spent"], usage["cost_usd_cached"]) == (0.75, 0.25, 0.5)
    only_cached = usage_summary(records_from_json([{"called": True, "cost_usd": 0.5, "cached": True}]))
    assert (only_cached["cost_usd_spent"], only_cached["cost_usd_cached"]) == (0.0, 0.5)
    unknown = usage_summary(records_from_json([{"called": True, "cost_usd": None, "cached": False}]))
    assert (unknown["cost_usd_total"], unknown["cost_usd_spent"], unknown["cost_usd_cached"]) == (None, None, None)


def test_a_fully_cached_rerun_spends_nothing(tmp_path, small_tree, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cost-split-0123456789abcdef")
    prices = tmp_path / "prices.toml"
    prices.write_text('["openai:gpt-4o"]\ninput = 2.5\noutput = 10.0\n')  # USD per million tokens
    results = tmp_path / "results"
    with LoopbackServer(Answer("crack", tokens_in=1000, tokens_out=10)) as server:
        options = {"openai:gpt-4o": {"base_url": server.openai_base_url, "temperature": 0, "concurrency": 8}}
        for run_id in ("paid", "cached"):
            Run(RunConfig(benchmark="folder", data_root=small_tree, models=["openai:gpt-4o"], categories=["tile"],
                          model_options=options, results_dir=results, run_id=run_id, n_boot=20, prices=prices),
                plugins.load_registry()).execute()
        assert server.count == 10  # the second run sent nothing
    paid, cached = (load_run(results / name)[0]["metrics"]["openai:gpt-4o"]["usage"] for name in ("paid", "cached"))
    expected = 10 * (1000 * 2.5 + 10 * 10.0) / 1e6
    assert paid["cost_usd_total"] == pytest.approx(expected) == paid["cost_usd_spent"] and paid["cost_usd_cached"] == 0
    assert cached["cost_usd_total"] == pytest.approx(expected) == cached["cost_usd_cached"]
    assert cached["cost_usd_spent"] == 0
    row = next(r for r in leaderboard.collect([results]) if r.run_id == "cached")
    cells = leaderboard.cells(1, row)
    assert cells["spent $"] == "0.0000" and cells["cost $"] == f"{expected:.4f}"
    page = build_report(["cached"], results, tmp_path / "r.html", per_model=0).read_text()
    assert "$ spent" in page and ">0.0000<" in page


def test_runs_whose_gate_options_differ_are_separate_rows_that_name_the_options(tmp_path, small_tree):
    # Another coreset or threshold flags other images: the newer run must not replace the older one's row.
    import shutil

    results = tmp_path / "results"
    run(results, small_tree, "default-gate", 1)
    shutil.copytree(results / "default-gate", results / "other-gate")
    path = results / "other-gate" / "run.json"
    data = json.loads(path.read_text())
    data.update(run_id="other-gate", created_at="2025-01-01T00:00:09+00:00")
    data["config"]["gate_options"] = {"threshold": 0.7}
    path.write_text(json.dumps(data))
    rows = rows_by_run(results)
    assert set(rows) == {"default-gate", "other-gate"}
    assert rows["default-gate"].gate == data["config"]["gate"]
    assert rows["other-gate"].gate == f"{data['config']['gate']} (threshold=0.7)"
    assert rows["default-gate"].runs == rows["other-gate"].runs == 1
