"""`harness report` takes every kind of run folder: imported ones, and odd ones are left out with a message.

The imported run is made by `harness score` from the VELM-format predictions
tests/test_score.py builds; the others are real runs of the folder benchmark.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from harness.errors import HarnessError
from harness_report.report import build_report
from harness.results import load_run

from harness_datasets.benchmarks import MVTecADBenchmark
from test_score import velm_predictions, write_json


def quiet_cli(*args: object) -> int:
    """The ``harness`` CLI in-process for a module fixture (which has no capsys); its exit code."""
    from harness.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


@pytest.fixture(scope="module")
def results(tmp_path_factory, small_tree) -> Path:
    """A results folder with a real run, an imported run, and odd copies of the real one."""
    base = tmp_path_factory.mktemp("report-runs")
    results = base / "results"
    assert quiet_cli("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                     "--results-dir", results, "--run-id", "real", "--no-cache") == 0
    predictions = write_json(base / "bottle.json", velm_predictions(MVTecADBenchmark(), {"bottle": 86.7}))
    assert quiet_cli("score", "--benchmark", "mvtec-ad", "--predictions", predictions, "--name", "velm-gpt-4o",
                     "--category", "bottle", "--results-dir", results, "--run-id", "imported") == 0
    odd = {
        "broken-json": lambda run: "{ not json",
        "unfinished": lambda run: json.dumps({**run, "status": "failed", "failure": "EarlyStop: stopped early"}),
        "no-metrics": lambda run: json.dumps({k: v for k, v in run.items() if k != "metrics"}),
        "metrics-not-a-table": lambda run: json.dumps({**run, "metrics": {"random": 3}}),
    }
    real = json.loads((results / "real" / "run.json").read_text())
    for name, damage in odd.items():
        shutil.copytree(results / "real", results / name)
        (results / name / "run.json").write_text(damage({**real, "run_id": name}))
    return results


def report(results: Path, tmp_path: Path, capsys, *run_ids: str):
    out = tmp_path / "report.html"
    code, stdout, err = run_cli("report", *run_ids, "--results-dir", results, "--output", out, "--per-model", "2",
                                capsys=capsys)
    return code, out, " ".join(err.split())


def test_an_imported_run_gets_a_report(results, tmp_path, capsys):
    code, out, err = report(results, tmp_path, capsys, "imported")
    assert code == 0 and "warning" not in err, err
    page = out.read_text()
    assert "imported:velm-gpt-4o" in page and "Predictions imported with" in page
    assert "86.7" in page  # its accuracy on bottle
    run, _ = load_run(results / "imported")
    assert run["call_failures"] == {"imported:velm-gpt-4o": {"calls": 0, "failed": 0, "errors": {}, "example": None}}


def test_a_real_and_an_imported_run_share_one_report(results, tmp_path, capsys):
    code, out, _ = report(results, tmp_path, capsys, "real", "imported")
    page = out.read_text()
    assert code == 0 and 'data-run="real"' in page and 'data-run="imported"' in page


def test_odd_run_folders_are_left_out_with_a_message_each(results, tmp_path, capsys):
    code, out, err = report(results, tmp_path, capsys, "real", "broken-json", "unfinished", "no-metrics",
                            "metrics-not-a-table", "imported")
    assert code == 0
    assert "run 'broken-json' left out" in err and "not valid JSON" in err
    assert "run 'unfinished' left out" in err and "status 'failed'" in err and "stopped early" in err
    assert "run 'no-metrics' left out" in err and "run 'metrics-not-a-table' left out" in err
    page = out.read_text()
    assert 'data-run="real"' in page and 'data-run="imported"' in page
    assert 'data-run="no-metrics"' not in page and "run &#39;no-metrics&#39; left out" in page  # noted on the page


def test_no_run_left_is_an_error_and_an_unknown_id_still_is(results, tmp_path, capsys):
    code, out, err = report(results, tmp_path, capsys, "broken-json", "unfinished")
    assert code == 2 and "no run could be shown" in err and not out.exists()
    code, _, err = report(results, tmp_path, capsys, "real", "no-such-run")
    assert code == 2 and "unknown run id 'no-such-run'" in err
    with pytest.raises(HarnessError, match="not finished"):  # the library call stays strict without `skipped`
        build_report(["unfinished"], results, tmp_path / "strict.html")


def test_a_demo_run_records_no_machine_path_and_its_report_writes_nothing_outside_the_cache(tmp_path, capsys):
    code, _, err = run_cli("run", "--benchmark", "demo", "--models", "random", "--limit", "2", "--run-id", "demo-run",
                           "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 0, err
    run_json = tmp_path / "results" / "demo-run" / "run.json"
    run = json.loads(run_json.read_text())
    assert run["benchmark"]["data_root"] is None  # the demo lives in whichever cache reads it
    html = build_report(["demo-run"], tmp_path / "results", tmp_path / "a.html", per_model=2).read_text()
    assert "could not be loaded" not in html and "<img data-pic=" in html

    # A run from before this change records one machine's cache path; a missing one is reported, never created.
    gone = tmp_path / "elsewhere" / "demo-v1-seed0"
    run["benchmark"]["data_root"] = str(gone)
    run_json.write_text(json.dumps(run))
    html = build_report(["demo-run"], tmp_path / "results", tmp_path / "b.html", per_model=2).read_text()
    assert "could not be loaded" in html and not (tmp_path / "elsewhere").exists()
