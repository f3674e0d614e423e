"""Settings that leave a defect class with nothing (refused) or almost nothing (warned) to score."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from harness import plugins
from harness.errors import HarnessError
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.scoring.sample_counts import MIN_TO_SCORE, check_shots
from harness.testing import scripted_classifier
from harness.types import Category, ClassInfo, Sample

from conftest import run_cli


def first_candidate(prompt):
    return prompt.candidates[0].name


def scripted_run(tmp_path: Path, root: Path, **config) -> tuple[type, Run]:
    classifier, plugin = scripted_classifier(first_candidate)
    classifier.prompts = []
    registry = plugins.load_registry(extra_plugins=[("scripted-counts", plugin)])
    run = Run(RunConfig(benchmark="folder", data_root=root, models=["scripted"], results_dir=tmp_path / "results",
                        run_id="counts", use_cache=False, n_boot=20, **config), registry)
    return classifier, run


def test_demo_shots_100_fails_fast_with_the_counts_per_class(tmp_path, capsys):
    # The command: demo has 8 test images of each of its 15 defect classes (and 10 good per category).
    code, out, err = run_cli("run", "--benchmark", "demo", "--models", "random", "--shots", "100",
                             "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 2
    message = " ".join(err.split())
    assert "--shots 100 would take every test image of 15 defect class(es) as support" in message
    assert "label/crease 8" in message and "tile/chip 8" in message and "and 3 more" in message
    assert "the largest --shots that leaves every class an image to score is 7, and 6 leaves 2" in message
    assert "Traceback" not in err and not (tmp_path / "results").exists()


def test_shots_are_refused_before_the_gate_or_any_model_runs(tmp_path, small_tree):
    # small_tree: 2 images of each defect class. --shots 2 would take both.
    classifier, run = scripted_run(tmp_path, small_tree, shots=2)
    with pytest.raises(HarnessError) as caught:
        run.execute()
    message = str(caught.value)
    assert "--shots 2 would take every test image of 15 defect class(es)" in message
    assert "label/crease 2" in message and "washer/dent 2 and 3 more" in message
    # The smallest class has 2 images: 1 leaves one to score; no K leaves MIN_TO_SCORE = 2.
    assert message.endswith("the largest --shots that leaves every class an image to score is 1")
    assert classifier.prompts == []
    assert not (tmp_path / "results").exists(), "no run folder: nothing was written, fitted or asked"


def _category(name: str, sizes: dict[str, int]) -> Category:
    samples = [Sample(f"{name}/{label}/{i}", name, Path(f"/x/{label}{i}.png"), f"{name}/{label}{i}.png", label, label)
               for label, n in sizes.items() for i in range(n)]
    classes = [ClassInfo(label, label) for label in sizes if label != "good"]
    return Category(name, classes, [], samples)


def test_a_class_with_one_image_can_give_no_support():
    categories = [_category("cable", {"good": 5, "cut": 1, "bent": 9})]
    with pytest.raises(HarnessError, match=r"test images per class: cable/cut 1\); a class with a single test image "
                                           r"cannot give support, so no --shots works"):
        check_shots(categories, 1)
    check_shots([_category("cable", {"good": 5, "cut": 3, "bent": 9})], 2)  # leaves 1 of cut: allowed (warned later)
    check_shots(categories, 0)  # no --shots, nothing to check


def test_shots_leaving_one_image_of_a_class_warn_with_the_counts(tmp_path, small_tree, caplog):
    classifier, run = scripted_run(tmp_path, small_tree, shots=1)
    with caplog.at_level(logging.WARNING, logger="harness.scoring.sample_counts"):
        result = run.execute()
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "harness.scoring.sample_counts"]
    assert warning.startswith(f"--shots 1 leaves fewer than {MIN_TO_SCORE} images to score in 15 defect class(es) "
                              "(label/crease 1 of 2, label/ink_smear 1 of 2,")
    # 3 categories x (2 good + 5 classes x 1 left) = 21 scored, 15 anomalous, of 30 anomalous in the data.
    assert "21 images are scored, 15 of them anomalous (the data has 30 anomalous)" in warning
    note = result.run["benchmark"]["notes"]["few_to_score"]
    assert note["settings"] == "--shots 1" and note["classes"]["tile"]["chip"] == {"scored": 1, "in_data": 2}
    assert len(result.records) == 21 and len(classifier.prompts) == 15  # the oracle gate passes the good images


def test_limit_with_shots_warns_with_counts_that_match_what_was_scored(tmp_path, small_tree, caplog):
    classifier, run = scripted_run(tmp_path, small_tree, shots=1, limit=3)
    with caplog.at_level(logging.WARNING, logger="harness.scoring.sample_counts"):
        result = run.execute()
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "harness.scoring.sample_counts"]
    assert warning.startswith("--shots 1 --limit 3 leaves fewer than 2 images to score in 15 defect class(es)")
    run_json, records = load_run(result.run_dir)
    scored = Counter((r["category"], r["true_label"]) for r in records if r["true_label"] != "good")
    note = run_json["benchmark"]["notes"]["few_to_score"]
    for category, classes in note["classes"].items():
        for label, counts in classes.items():
            assert counts == {"scored": scored[(category, label)], "in_data": 2}, (category, label)
    assert f"{len(records)} images are scored, {sum(scored.values())} of them anomalous" in warning


def test_no_warning_without_settings_that_thin_the_data(tmp_path, small_tree, caplog):
    # The data itself has 2 of each class: nothing is short, and a class the data holds few of is not warned about.
    _, run = scripted_run(tmp_path, small_tree)
    with caplog.at_level(logging.WARNING, logger="harness.scoring.sample_counts"):
        result = run.execute()
    assert [r for r in caplog.records if r.name == "harness.scoring.sample_counts"] == []
    assert "few_to_score" not in result.run["benchmark"]["notes"]
