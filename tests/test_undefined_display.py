"""Undefined figures (None in run.json) show as "n/a" with their note everywhere figures are shown, and never crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.scoring import leaderboard
from harness import plugins
from harness_report.report import build_report
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier

from conftest import run_cli
from harness_datasets.benchmarks import MVTecADBenchmark

KAPPA_NOTE = "velm: kappa is undefined in 3 of 3 categories and left out of the mean"


def _run_json(run_id: str, velm: dict, anomalous: dict | None = None, notes: list[str] | None = None) -> dict:
    scores = {"n": 10, "protocols": {"velm": velm, **({"anomalous": anomalous} if anomalous else {})},
              "outcomes": {}, "usage": {}}
    if notes is not None:
        scores["notes"] = notes
    return {"run_id": run_id, "status": "finished", "created_at": run_id,
            "benchmark": {"name": "demo", "manifest_hash": "h1"}, "config": {"gate": "oracle", "prompt": "velm"},
            "metrics": {"m": scores}}


def test_leaderboard_cells_show_undefined_figures_as_n_a_and_partial_means_with_their_coverage():
    undefined = _run_json("r1", {"accuracy": None, "accuracy_ci": None, "macro_f1": None, "kappa": None,
                                 "kappa_categories_defined": 0, "n_categories": 0},
                          {"accuracy": None}, notes=["anomalous: no image to score in cable; left out of every mean"])
    partial = _run_json("r2", {"accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "macro_f1": 0.25, "kappa": 0.25,
                               "kappa_categories_defined": 1, "n_categories": 3}, notes=["velm: kappa ..."])
    old = _run_json("r3", {"accuracy": 0.5, "accuracy_ci": None, "macro_f1": 0.5, "kappa": 0.1})  # before notes existed
    (row_u,), (row_p,), (row_o,) = (leaderboard.rows_from_run(r) for r in (undefined, partial, old))
    cells = leaderboard.cells(1, row_u)
    assert [cells[c] for c in ("accuracy (95% CI)", "anomalous acc", "macro-F1", "kappa")] == ["n/a"] * 4
    assert cells["cost $"] == "-"  # an unknown cost is not an undefined figure
    assert leaderboard.cells(2, row_p)["kappa"] == "0.250 (1 of 3 cat.)"
    assert leaderboard.cells(2, row_p)["macro-F1"] == "0.250"
    assert leaderboard.cells(3, row_o)["kappa"] == "0.100" and row_o.notes == [] and row_o.kappa_categories is None
    markdown = leaderboard.render_markdown(leaderboard.group([row_u, row_p, row_o]))
    assert "| n/a | n/a | n/a |" in markdown
    assert "- m (r1): anomalous: no image to score in cable; left out of every mean" in markdown
    assert "- m (r2): velm: kappa ..." in markdown


def _first_candidate(prompt):
    return prompt.candidates[0].name


@pytest.fixture(scope="module")
def thin_runs(tmp_path_factory, small_tree):
    """Two runs with one image per category (--limit 1): kappa undefined everywhere, macro-F1 over one class."""
    results = tmp_path_factory.mktemp("thin") / "results"
    _, plugin = scripted_classifier(_first_candidate)
    registry = plugins.load_registry(extra_plugins=[("scripted-thin", plugin)])
    for run_id, model in (("thin-a", "random"), ("thin-b", "scripted")):
        Run(RunConfig(benchmark="folder", data_root=small_tree, models=[model], limit=1, results_dir=results,
                      run_id=run_id, use_cache=False, n_boot=20), registry).execute()
    return results


def test_run_json_holds_null_and_the_note(thin_runs):
    run, _ = load_run(thin_runs / "thin-a")
    velm = run["metrics"]["random"]["protocols"]["velm"]
    assert velm["kappa"] is None and velm["kappa_categories_defined"] == 0 and velm["n_categories"] == 3
    assert all(c["kappa"] is None and c["undefined"]["kappa"].startswith("one true class: all 1 scored images are ")
               for c in velm["categories"].values())
    assert any(note.startswith(KAPPA_NOTE) for note in run["metrics"]["random"]["notes"])
    assert json.loads((thin_runs / "thin-a" / "run.json").read_text())["metrics"]["random"]["protocols"]["velm"]["kappa"] is None


def test_leaderboard_command_shows_n_a_and_prints_the_notes(thin_runs, tmp_path, capsys):
    code, out, err = run_cli("leaderboard", thin_runs, "--output", tmp_path / "LB.md", capsys=capsys)
    assert code == 0, err
    assert "n/a" in out
    assert f"note: random (thin-a): {KAPPA_NOTE}" in " ".join(out.split())
    board = (tmp_path / "LB.md").read_text()
    assert "Notes:" in board and f"- scripted (thin-b): {KAPPA_NOTE}" in board


def test_report_shows_n_a_and_the_notes(thin_runs, tmp_path):
    out = tmp_path / "report.html"
    build_report(["thin-a", "thin-b"], thin_runs, out, per_model=2)
    page = out.read_text(encoding="utf-8")
    assert '<td data-sort="">n/a</td>' in page  # kappa, sorted last
    assert f'<li class="note">random (thin-a): {KAPPA_NOTE}' in page


def test_compare_on_runs_with_undefined_figures(thin_runs, capsys):
    for protocol in ("velm", "anomalous"):
        code, out, err = run_cli("compare", "thin-a", "thin-b", "--model", "random=scripted", "--protocol", protocol,
                                 "--results-dir", thin_runs, capsys=capsys)
        assert code == 0, err
        assert "3 images compared" in " ".join(out.split())


def test_cli_run_table_shows_n_a_and_the_note(tmp_path, small_tree, capsys):
    code, out, err = run_cli("run", "--benchmark", "folder", "--data-root", small_tree, "--models", "random",
                             "--limit", "1", "--results-dir", tmp_path, "--run-id", "one", "--no-cache", capsys=capsys)
    assert code == 0, err
    flat = " ".join(out.split())
    header = next(line for line in out.splitlines() if "kappa" in line and "model" in line)
    row = next(line for line in out.splitlines() if line.startswith("│ 1 "))
    cells = dict(zip([c.strip() for c in header.split("┃")], [c.strip() for c in row.split("│")]))
    assert cells["kappa"] == "n/a" and cells["model"] == "random", cells
    assert f"note: random (one): {KAPPA_NOTE}" in flat
    assert "--limit 1 leaves fewer than 2 images to score in 15 defect class(es)" in " ".join(err.split())


def test_score_toothbrush_with_one_failure_reports_kappa_undefined(tmp_path, capsys):
    # The case through `harness score`: every toothbrush image named right but one defective answered
    # with no class; under protocol anomalous toothbrush has a single class, so kappa is undefined (was 0.0).
    data = MVTecADBenchmark().released(["toothbrush"])
    failing = next(s for s in data.samples if s.label == "defective")
    predictions = {f"toothbrush_{s.label}_{Path(s.relpath).stem}": "no idea" if s is failing else s.label
                   for s in data.samples}
    path = tmp_path / "toothbrush.json"
    path.write_text(json.dumps(predictions))
    code, out, err = run_cli("score", "--benchmark", "mvtec-ad", "--category", "toothbrush", "--predictions", path,
                             "--name", "tb", "--results-dir", tmp_path / "results", "--run-id", "tb", capsys=capsys)
    assert code == 0, err
    run, records = load_run(tmp_path / "results" / "tb")
    assert sum(r["error"] == "unparseable" for r in records) == 1
    anomalous = run["metrics"]["imported:tb"]["protocols"]["anomalous"]
    assert anomalous["kappa"] is None and anomalous["categories"]["toothbrush"]["kappa"] is None
    assert anomalous["accuracy"] == pytest.approx(29 / 30)
    flat = " ".join(out.split())
    assert ("note: imported:tb (tb): anomalous: kappa is undefined in 1 of 1 categories and left out of the mean "
            "(toothbrush: one true class: 'defective' is the only class under protocol anomalous)") in flat
