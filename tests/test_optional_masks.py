"""Masks are optional: without them the oracle still flags, and pixel AUROC is null with a reason, never a number."""

from __future__ import annotations

import shutil

from harness.results import load_run

from conftest import run_cli
from test_datasets import make_mvtec_tree


def run_folder(tmp_path, capsys, root, gate):
    results = tmp_path / f"results-{gate}"
    code, _, err = run_cli("run", "--benchmark", "folder", "--data-root", root, "--gate", gate, "--models", "random",
                           "--results-dir", results, capsys=capsys)
    assert code == 0, err
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return (*load_run(run_dir), " ".join(err.split()))


def test_without_masks_the_oracle_flags_but_outlines_nothing_and_pixel_auroc_says_why(tmp_path, capsys):
    root = make_mvtec_tree(tmp_path / "data")
    shutil.rmtree(root / "widget" / "ground_truth")
    run, records, err = run_folder(tmp_path, capsys, root, "oracle")
    assert "3 of 3 anomalous test images have no mask" in err and "no region to outline" in err
    gate = run["gate_metrics"]
    assert gate["recall"] == 1.0 and gate["false_alarm_rate"] == 0.0  # every defect still flagged
    assert gate["pixel_auroc"] is None and gate["categories"]["widget"]["pixel_auroc"] is None
    assert "3 of 3 anomalous test images have no mask" in gate["categories"]["widget"]["pixel_auroc_note"]
    assert gate["pixel_auroc_note"].startswith("widget: 3 of 3")
    regions = run["provenance"]["gate"]["categories"]["widget"]["regions"]
    assert "no region to outline" in regions
    for record in records:
        if record["true_label"] != "good":
            assert record["prompt_images"]["region"] is None
            assert "outlined" not in record["prompt_images"]["shown"]


def test_with_masks_the_note_names_the_gate_that_gives_no_map(tmp_path, capsys):
    root = make_mvtec_tree(tmp_path / "data")
    run, records, err = run_folder(tmp_path, capsys, root, "oracle")
    assert "no mask" not in err
    assert run["provenance"]["gate"]["categories"]["widget"]["regions"] == "ground-truth masks"
    note = run["gate_metrics"]["categories"]["widget"]["pixel_auroc_note"]
    assert note == "the 'oracle' gate does not give an anomaly map for every test image"
    assert any(r["prompt_images"] and r["prompt_images"]["region"] for r in records)
