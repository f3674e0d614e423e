"""The bookkeeping around a run that a cached re-run still pays: provenance and the files it reads."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.results import _git_commit
from harness.testing import scripted_classifier

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@needs_git
def test_git_provenance_names_the_commit_and_whether_tracked_files_changed(tmp_path):
    assert _git_commit(tmp_path) is None, "not a checkout"
    _git(tmp_path, "init", "-q")
    assert _git_commit(tmp_path) is None, "a checkout without a commit has none to name"
    (tmp_path / "tracked.txt").write_text("one\n")
    _git(tmp_path, "add", "tracked.txt")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "untracked.txt").write_text("not part of the tree\n")
    assert _git_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "tracked.txt").write_text("two\n")
    assert _git_commit(tmp_path) == {"commit": head, "dirty": True}


def test_a_rerun_from_the_cache_reads_no_image_at_all(tmp_path, monkeypatch):
    """Not the test images, and not the training normal shown as the reference either."""
    import harness.run.stages
    from harness import plugins
    from harness.run.prompt_record import mismatches, redraw
    from harness.run.runner import Run, RunConfig
    from harness_datasets import demo

    tree = tmp_path / "tree"
    demo.write_demo_tree(tree, seed=0, counts=demo.DemoCounts(train=2, good=1, per_defect=1))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    classifier, plugin = scripted_classifier(lambda p: p.candidates[0].name)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    read = []
    real_load = harness.run.stages.load_rgb
    monkeypatch.setattr(harness.run.stages, "load_rgb", lambda path: read.append(path) or real_load(path))

    def run(run_id):
        config = RunConfig(benchmark="folder", data_root=tree, gate="none", models=["scripted"],
                           results_dir=tmp_path / "results", run_id=run_id, n_boot=50,
                           model_options={"scripted": {"cache": True}})
        return Run(config, registry).execute()

    first = run("first")
    assert any("train" in path.parts for path in read), "the first run shows the reference"
    read.clear()
    again = run("again")
    assert read == [] and all(r["cached"] for r in again.records)
    assert again.run["status"] == "finished" and again.run["provenance"]["harness_version"]
    assert [r["predicted_label"] for r in again.records] == [r["predicted_label"] for r in first.records]
    # The recalled records still say what their prompts showed, and it redraws from the new folder.
    stored = {(r["sample_id"], r["model"]): r["prompt_images"] for r in first.records}
    assert all(r["prompt_images"] == stored[(r["sample_id"], r["model"])] for r in again.records)
    assert all(r["prompt_images"]["region"] is None for r in again.records)  # gate none: no outline
    sent = {part.digest: part.image for prompt in classifier.prompts for part in prompt.images}
    for record in again.records:
        images = redraw(again.run_dir, record)
        assert mismatches(images, record) == [] and set(record["prompt_images"]["shown"]) == {"reference", "query"}
        assert all(images[name].tobytes() == sent[digest].tobytes() for name, digest in record["prompt_images"]["shown"].items())
