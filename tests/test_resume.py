"""An interrupted run resumes without repeating, duplicating or losing a sample."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest

from conftest import HARNESS, kill_after_records
from harness import plugins
from harness.errors import HarnessError
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier


def test_resume_runs_only_what_is_missing(tmp_path, small_tree):
    calls = []

    def script(prompt):
        calls.append(prompt.request_hash)
        return prompt.candidates[0].name

    _, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="none", models=["scripted", "random"],
                       results_dir=tmp_path, run_id="r", n_boot=100)
    first = Run(config, registry).execute()
    total = len(first.records)
    asked_first = len(calls)

    # Simulate a kill: keep 10 records and half of the 11th, mark the run as running.
    samples = tmp_path / "r" / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    run_file = tmp_path / "r" / "run.json"
    run = json.loads(run_file.read_text())
    run["status"], run["metrics"] = "running", {}
    run_file.write_text(json.dumps(run))

    calls.clear()
    resumed = Run(RunConfig.from_json(run["config"], tmp_path, "r"), registry).execute(resume=True)
    _, on_disk = load_run(tmp_path / "r")
    assert len(on_disk) == total
    assert Counter((r["sample_id"], r["model"]) for r in on_disk).most_common(1)[0][1] == 1
    kept_scripted = sum(1 for line in lines[:10] if json.loads(line)["model"] == "scripted")
    assert len(calls) == asked_first - kept_scripted
    assert resumed.run["status"] == "finished" and resumed.run["resumed"][0]["records_kept"] == 10
    assert resumed.run["metrics"]["scripted"]["n"] == total // 2


def test_resume_refuses_changed_data(tmp_path, small_tree):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_tree, data)
    registry = plugins.load_registry()
    config = RunConfig(benchmark="folder", data_root=data, models=["random"], results_dir=tmp_path, run_id="r")
    Run(config, registry).execute()
    (data / "tile" / "test" / "good" / "000.png").unlink()
    with pytest.raises(HarnessError, match="not what the run evaluated"):
        Run(config, registry).execute(resume=True)


def test_a_finished_run_id_is_not_overwritten(tmp_path, small_tree):
    registry = plugins.load_registry()
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], results_dir=tmp_path, run_id="r")
    Run(config, registry).execute()
    with pytest.raises(HarnessError, match="--resume r"):
        Run(config, registry).execute()


@pytest.mark.skipif(os.name != "posix", reason="kill -9 needs POSIX signals")
def test_kill_9_mid_run_against_a_slow_server_then_resume(tmp_path, small_tree, slow_openai_url):
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-kill-and-resume-0001"}
    results = tmp_path / "results"
    # One request at a time, so the kill lands mid-run; no cache, so the resume really calls the server.
    (tmp_path / "run.toml").write_text(
        f'[model-options."openai:gpt-4o"]\nbase_url = "{slow_openai_url}"\nconcurrency = 1\n'
    )
    args = ["run", "--benchmark", "folder", "--data-root", str(small_tree), "--gate", "none",
            "--models", "openai:gpt-4o", "--results-dir", str(results), "--run-id", "killed",
            "--config", str(tmp_path / "run.toml"), "--no-cache"]
    process = subprocess.Popen([*HARNESS, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = kill_after_records(process, results / "killed" / "samples.jsonl", 8)
    assert 8 <= before < 36, "the run was killed part-way"

    resumed = subprocess.run([*HARNESS, "run", "--results-dir", str(results), "--resume", "killed", "--no-cache"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    run, records = load_run(results / "killed")
    assert run["status"] == "finished"
    ids = [r["sample_id"] for r in records]
    assert len(ids) == len(set(ids)) == 36, "every sample exactly once"
    assert all(r["error"] is None and r["predicted_label"] == "crack" for r in records if r["true_label"] != "good"
               and "crack" in r["sample_id"])
