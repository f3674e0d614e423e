"""`harness report`: the HTML page built from real runs (scripted models on a real image tree).

The browser half (does it render in Chromium?) is tests/test_report_browser.py;
this file checks the page's content, escaping, self-containment and errors.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import pytest

from harness import plugins
from harness.errors import HarnessError
from harness.record import Record
from harness_report import data, gallery
from harness_report.report import build_report
from harness_report.svg import nice_ticks, scatter
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import Response

#: An answer that would run script in the page if it were not escaped.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def mixed_script():
    """A model that answers a class, hostile markup (unparseable), a refusal, or fails, in turn."""
    turns = itertools.count()

    def script(prompt):
        turn = next(turns) % 4
        if turn == 0:
            return Response(text=prompt.candidates[-1].name, tokens_in=900, tokens_out=3)
        if turn == 1:
            return HOSTILE
        if turn == 2:
            return "I'm sorry, I can't help with that."
        return RuntimeError("HTTP 400 bad request from the test backend")

    return script


def make_runs(results: Path, root: Path) -> tuple[str, str]:
    """Two finished runs over the same images: oracle gate (scripted + random), none gate (random)."""
    _, plugin = scripted_classifier(mixed_script())
    registry = plugins.load_registry(extra_plugins=[("scripted-report", plugin)])
    first = Run(RunConfig(benchmark="folder", data_root=root, gate="oracle", models=["scripted", "random"],
                          results_dir=results, run_id="oracle-run", n_boot=100), registry).execute()
    second = Run(RunConfig(benchmark="folder", data_root=root, gate="none", models=["random"],
                           results_dir=results, run_id="none-run", n_boot=100), registry).execute()
    return first.run["run_id"], second.run["run_id"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_tree):
    """A private copy of the image tree (tests delete files from it) and two runs over it."""
    base = tmp_path_factory.mktemp("report")
    root = base / "tree"
    shutil.copytree(small_tree, root)
    results = base / "results"
    make_runs(results, root)
    return results, root


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory):
    results, _ = runs
    out = tmp_path_factory.mktemp("page") / "report.html"
    build_report(["oracle-run", "none-run"], results, out, per_model=6)
    return out.read_text(encoding="utf-8")


def test_the_page_is_self_contained(page):
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    for source in sources:
        assert source.startswith(("data:", "#")), f"external reference {source[:60]!r}"
    assert "<link rel=\"stylesheet\"" not in page and "<script src" not in page
    # Pictures are embedded once each, as JPEG data URIs, and every card refers to one that exists.
    table = json.loads(re.search(r'<script id="pictures" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert table and all(uri.startswith("data:image/jpeg;base64,") for uri in table.values())
    keys = re.findall(r'<img data-pic="(p\d+)"', page)
    assert keys and set(keys) == set(table)
    assert len(keys) > len(table)  # the same query shown for several models is stored once
    # Thumbnails, not the originals: the whole page stays small.
    assert len(page.encode()) < 1_000_000


def test_the_leaderboard_has_one_row_per_run_and_model_with_intervals_and_manifest(page, runs):
    results, _ = runs
    run = json.loads((results / "oracle-run" / "run.json").read_text())
    manifest = run["benchmark"]["manifest_hash"]
    table = re.search(r'<table class="leaderboard sortable"[^>]*data-manifest="([0-9a-f]+)".*?</table>', page, re.S)
    assert table and table.group(1) == manifest
    rows = re.findall(r'<tr data-model="([^"]+)" data-run="([^"]+)">', table.group(0))
    assert sorted(rows) == [("random", "none-run"), ("random", "oracle-run"), ("scripted", "oracle-run")]
    ci = run["metrics"]["scripted"]["protocols"]["velm"]["accuracy_ci"]
    assert f"({100 * ci[0]:.1f}–{100 * ci[1]:.1f})" in table.group(0)


def test_untrusted_answers_are_escaped(page):
    assert "window.__pwned" in page  # the answer is shown ...
    assert "<script>window.__pwned" not in page  # ... but never as markup
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&lt;img src=x onerror=" in page
    assert "<img src=x" not in page


def test_gate_figures_sit_next_to_end_to_end_accuracy(page):
    gate = re.search(r'<section id="gate">.*?</section>', page, re.S).group(0)
    assert "ground truth (oracle)" in gate and "none (every image is flagged)" in gate
    assert gate.count("<h3>") == 2  # one table per run


def test_error_attribution_and_confusion_name_every_failure_kind(page, runs):
    results, _ = runs
    outcomes = json.loads((results / "oracle-run" / "run.json").read_text())["metrics"]["scripted"]["outcomes"]
    assert outcomes["unparseable"] and outcomes["refused"] and outcomes["backend_error"]
    errors = re.search(r'<section id="errors">.*?</section>', page, re.S).group(0)
    for kind in ("unparseable", "refused", "backend error"):
        count = outcomes[kind.replace(" ", "_")]
        assert f"{kind} <b>{count}</b>" in errors
    confusion = re.search(r'<section id="confusion">.*?</section>', page, re.S).group(0)
    assert '<th class="err"><span>backend_error</span></th>' in confusion


def test_the_gallery_is_capped_and_spread_over_error_kinds(page):
    cards = re.findall(r'<article class="card" data-model="([^"]+)" data-category="([^"]+)" data-outcome="([^"]+)">', page)
    by_model = {}
    for model, _, outcome in cards:
        by_model.setdefault(model, []).append(outcome)
    # "random" is in both runs, so the gallery names it with the run id.
    assert set(by_model) == {"scripted", "random (oracle-run)", "random (none-run)"}
    assert all(len(outcomes) <= 6 for outcomes in by_model.values())
    assert {"unparseable", "refused", "backend_error"} <= set(by_model["scripted"])
    # Each card of the oracle run shows query, reference and the outline the model saw.
    assert "annotated region, outlined as the model saw it" in page
    assert "reference (train normal)" in page
    assert "ground-truth region (gate none: the model saw no outline)" in page
    assert "predates" not in page and "detector" not in page.split('<section id="gallery">')[1]


def test_select_round_robins_over_category_and_outcome():
    records = [Record.from_json(line) for line in [
        {"model": "m", "sample_id": f"{c}/{i}", "category": c, "outcome": o, "true_label": "x"}
        for c in ("a", "b") for o in ("wrong_class", "refused") for i in range(5)
    ] + [{"model": "m", "sample_id": "a/ok", "category": "a", "outcome": "correct", "true_label": "x"}]]
    chosen, totals = gallery.select(records, "oracle", per_model=4)
    assert totals == {"m": 20}
    assert sorted((r.category, r.outcome) for r in chosen["m"]) == [
        ("a", "refused"), ("a", "wrong_class"), ("b", "refused"), ("b", "wrong_class")]


def test_a_missing_image_becomes_a_placeholder_naming_the_file(runs, tmp_path):
    results, root = runs
    run_json = json.loads((results / "oracle-run" / "run.json").read_text())
    records = [json.loads(line) for line in (results / "oracle-run" / "samples.jsonl").read_text().splitlines()]
    victim = next(r for r in records if r["model"] == "scripted" and r["outcome"] != "correct")
    moved = tmp_path / "moved.png"
    shutil.move(root / victim["image"], moved)
    try:
        out = build_report(["oracle-run"], results, tmp_path / "r.html", per_model=100)
    finally:
        shutil.move(moved, root / victim["image"])
    page = out.read_text()
    assert run_json["status"] == "finished"
    assert '<div class="placeholder">missing image' in page
    assert f"{root / victim['image']}: file not found" in page
    assert "picture(s) could not be read" in page


def test_unknown_run_id_is_a_clear_error(runs):
    results, _ = runs
    with pytest.raises(HarnessError, match=r"unknown run id 'nope'.*runs in .*: none-run, oracle-run"):
        data.load_runs(["nope"], results)


def test_cli_writes_the_report_and_exits_2_on_an_unknown_run(runs, tmp_path, capsys):
    from harness.cli import main

    results, _ = runs
    out = tmp_path / "cli.html"
    main(["report", "oracle-run", "--results-dir", str(results), "--output", str(out), "--per-model", "2"])
    assert capsys.readouterr().out.strip() == str(out)
    assert out.stat().st_size > 10_000
    out.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "oracle-run", "missing-run", "--results-dir", str(results), "--output", str(out)])
    assert exit_info.value.code == 2
    assert "unknown run id 'missing-run'" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_an_unfinished_run_is_refused_with_a_hint(runs, tmp_path):
    results, _ = runs
    copy = tmp_path / "results" / "half"
    shutil.copytree(results / "oracle-run", copy)
    run = json.loads((copy / "run.json").read_text())
    run["status"] = "running"
    (copy / "run.json").write_text(json.dumps(run))
    with pytest.raises(HarnessError, match=r"not finished .*harness run --resume oracle-run"):
        data.load_runs(["half"], tmp_path / "results")


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (0.5, 0.2), (None, 0.9), (2.0, 0.7)]
    assert data.pareto_flags(points) == [True, True, False, True, False, True]


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = nice_ticks(0.0, 0.00094)
    assert ticks[0] <= 0.0 and ticks[-1] >= 0.00094 and 4 <= len(ticks) <= 7
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    assert nice_ticks(5.0, 5.0)[0] < 5.0 < nice_ticks(5.0, 5.0)[-1]


def test_svg_labels_are_escaped():
    drawing = scatter([("1", 1.0, 0.5, True, "<b>x</b>"), ("2", 2.0, 0.4, False, "y&z")], "x", "y", "cap")
    assert "<b>" not in drawing and "&lt;b&gt;x&lt;/b&gt;" in drawing and "y&amp;z" in drawing
    assert 'class="front"' not in drawing  # one front point draws no line
    assert "no model reported this figure" in scatter([], "x", "y", "cap")


def test_moved_data_is_found_with_data_root_and_reported_without_it(runs, tmp_path):
    results, root = runs
    moved = tmp_path / "results" / "moved-run"
    shutil.copytree(results / "oracle-run", moved)
    run = json.loads((moved / "run.json").read_text())
    run["benchmark"]["data_root"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(run))

    lost = build_report(["moved-run"], tmp_path / "results", tmp_path / "lost.html", per_model=2).read_text()
    assert "could not be loaded from" in lost and "the gallery shows query images only" in lost
    assert f"{tmp_path / 'gone'}" in lost and '<div class="placeholder">missing image' in lost
    assert "<img data-pic=" not in lost

    found = build_report(["moved-run"], tmp_path / "results", tmp_path / "found.html", per_model=2,
                         data_root=root).read_text()
    assert "could not be loaded" not in found and "placeholder" not in found.split('<section id="gallery">')[1]
    assert found.count('<img data-pic=') == 2 * 2 * 3  # two models, two cards each, three pictures
