"""One class for a run folder that has been read: the runner, the report and compare share it."""

from __future__ import annotations

import json
from pathlib import Path

import harness_compare.paired as compare
from harness.run import runner
from harness_report import data
from harness.run.run_folder import RunFolder


def write_run(folder: Path, run: dict, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


RECORDS = [{"sample_id": "a/1", "model": "m1"}, {"sample_id": "a/1", "model": "late"}]
RUN = {"status": "finished", "config": {"gate": "oracle", "models": ["m1"]},
       "benchmark": {"name": "demo", "manifest_hash": "h1"}, "metrics": {"m1": {}}}


def test_the_old_names_are_the_one_class():
    assert runner.RunResult is compare.LoadedRun is data.LoadedRun is RunFolder


def test_compare_takes_the_id_from_run_json_or_else_the_folder(tmp_path):
    write_run(tmp_path / "named", {**RUN, "run_id": "the-id"}, RECORDS)
    write_run(tmp_path / "empty-id", {**RUN, "run_id": ""}, RECORDS)
    write_run(tmp_path / "no-id", RUN, RECORDS)
    assert compare.resolve_run("named", tmp_path).run_id == "the-id"
    assert compare.resolve_run("empty-id", tmp_path).run_id == "empty-id"
    loaded = compare.resolve_run(tmp_path / "no-id", tmp_path / "elsewhere")
    assert loaded.run_id == "no-id" and loaded.run_dir == tmp_path / "no-id"
    assert loaded.describe() == {"run_id": "no-id", "path": str(tmp_path / "no-id"), "benchmark": "demo",
                                 "manifest_hash": "h1", "status": "finished"}


def test_the_report_takes_the_id_from_run_json_or_else_the_folder(tmp_path):
    write_run(tmp_path / "named", {**RUN, "run_id": "the-id"}, RECORDS)
    write_run(tmp_path / "no-id", RUN, RECORDS)
    named, unnamed = data.load_runs(["named", "no-id"], tmp_path)
    assert (named.run_id, unnamed.run_id) == ("the-id", "no-id")
    assert named.run_dir == tmp_path / "named" and named.gate == "oracle"


def test_models_come_from_config_and_records_and_scored_models_from_metrics():
    loaded = RunFolder("r", Path("r"), RUN, RECORDS)
    assert loaded.models == ["m1", "late"]
    assert loaded.scored_models == ["m1"]
    bare = RunFolder("r", Path("r"), {}, [])
    assert (bare.models, bare.scored_models, bare.benchmark, bare.manifest_hash) == ([], [], "None", "None")
