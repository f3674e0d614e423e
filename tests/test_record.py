"""`harness.record.Record`: the one record type, its JSON line, and the field lists taken from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness import plugins
from harness.builtin import CsvWriter
from harness.errors import HarnessError
from harness_imported.predictions import match_predictions, read_predictions
from harness.record import (
    DECISION_FIELDS, JSON_FIELDS, NOT_IMPORTED, RUN_FIELDS, GateVerdict, Record, load_records, records_from_json,
)
from harness.results import SAMPLES_FILE, load_run
from harness.run.run_folder import RunFolder
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.testing.conformance_report import RECORD_FIELDS
from harness.types import GOOD, Sample

README = Path(__file__).resolve().parent.parent / "README.md"


def answer_by_position(prompt):
    """Right, wrong and unreadable answers in turn, so every outcome kind shows up."""
    answer_by_position.calls += 1
    return [prompt.candidates[0].name, "no idea at all", prompt.candidates[-1].name][answer_by_position.calls % 3]


answer_by_position.calls = 0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> RunFolder:
    """A demo run with a scripted model, a policy and the csv writer: records with every field set."""
    classifier, plugin = scripted_classifier(answer_by_position)
    registry = plugins.load_registry(extra_plugins=[("scripted-record-test", plugin)])
    config = RunConfig(benchmark="demo", gate="oracle", models=["scripted"], policy="demo", n_boot=50, limit=4,
                       output_formats=["csv"], results_dir=tmp_path_factory.mktemp("record") / "results")
    return Run(config, registry).execute()


def test_a_run_record_reads_back_into_the_same_line(demo_run):
    lines = (demo_run.run_dir / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(demo_run.records) > 0
    for line in lines:
        again = Record.from_json(json.loads(line)).to_json()
        assert json.dumps(again, default=str) == line  # same keys, same order, same values


def test_a_run_record_has_every_run_field_in_record_order_with_decisions_last(demo_run):
    outcomes = set()
    for record in demo_run.records:
        assert list(record) == [*RUN_FIELDS, *DECISION_FIELDS]
        outcomes.add(record["outcome"])
    assert {"correct", "wrong_class", "unparseable"} <= outcomes, outcomes


def test_conformance_checks_the_fields_the_record_type_names():
    assert RECORD_FIELDS == RUN_FIELDS
    assert "imported_key" not in RUN_FIELDS and not set(DECISION_FIELDS) & set(RUN_FIELDS)
    assert JSON_FIELDS.index("imported_key") == JSON_FIELDS.index("outcome") - 1


def test_typed_records_give_attributes(demo_run):
    typed = demo_run.typed_records()
    assert typed == load_records(demo_run.run_dir)
    flagged = [r for r in typed if r.called]
    assert flagged and all(isinstance(r.gate, GateVerdict) and r.gate.flagged for r in flagged)
    assert all(r.prompt is not None and r.prompt.name == "velm" for r in flagged)
    assert all(r.decisions is not None and r.decisions.action_true for r in typed)
    failed = [r for r in typed if r.error is not None]
    assert failed and all(r.correct is False and r.predicted_label is None for r in failed)


def test_the_csv_writer_shows_record_fields_by_name(demo_run):
    with (demo_run.run_dir / "samples.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(demo_run.records)
    for row, record in zip(rows, demo_run.records):
        assert row["sample_id"] == record["sample_id"] and row["outcome"] == record["outcome"]
        assert row["gate_flagged"] == str(record["gate"]["flagged"]) and row["repeat"] == "0"


def test_a_csv_column_that_names_no_record_field_is_refused(tmp_path, demo_run):
    class Misnamed(CsvWriter):
        columns = [*CsvWriter.columns, "latency"]

    with pytest.raises(ValueError, match="names no record field: latency"):
        Misnamed().write(tmp_path, demo_run.run, demo_run.records)


def demo_sample(label: str = "crease") -> Sample:
    return Sample(f"label/{label}/000", "label", Path("/nowhere.png"), f"label/test/{label}/000.png", label, "label")


def make(sample: Sample, **overrides) -> Record:
    fields_ = dict(
        gate=GateVerdict("oracle", 0.0, False, 0.5), served_model=None, prompt=None, prompt_images=None, repeat=0,
        class_order=None, called=False, response=None, option_scores=None, answer_rule=None, latency_s=None,
        queued_s=None, attempts=0, attempts_total=0, cached=False, tokens_in=None, tokens_out=None, cost_usd=None,
    )
    fields_.update(overrides)
    return Record.of(sample, "demo", "m", **fields_)


def test_the_constructor_derives_correct_transient_and_outcome():
    passed = make(demo_sample(GOOD), predicted_label=GOOD, error=None, error_detail=None)
    assert passed.correct and passed.outcome == "correct" and passed.error_transient is None
    missed = make(demo_sample(), predicted_label=GOOD, error=None, error_detail=None)
    assert missed.correct is False and missed.outcome == "gate_miss"
    failed = make(demo_sample(), predicted_label=None, error="timeout", error_detail="slow", transient=True,
                  gate=GateVerdict("oracle", 1.0, True, 0.5), called=True)
    assert failed.correct is False and failed.outcome == "timeout" and failed.error_transient is True
    # A failure is never counted right, even if a label was passed along with it.
    assert make(demo_sample(), predicted_label="crease", error="refused", error_detail=None).correct is False


def test_an_imported_record_keeps_its_own_form(tmp_path):
    from harness_datasets.benchmarks import MVTecADBenchmark

    data = MVTecADBenchmark().released(["bottle"])  # the released file list: no image needed
    sample = data.samples[0]
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"sample_id": sample.sample_id, "predicted_label": sample.label}) + "\n")
    record = match_predictions(data, read_predictions(path, "jsonl"), "x", path).records[0].to_json()
    assert "imported_key" in record and not NOT_IMPORTED & set(record)
    assert list(record) == [k for k in JSON_FIELDS if k in record] and list(record)[-2:] == ["imported_key", "outcome"]
    typed = Record.from_json(record)
    assert typed.repeat == 0 and typed.class_order is None and typed.outcome == "correct"
    assert typed.to_json() == record and list(typed.to_json()) == list(record)


def test_an_old_run_folder_loads_with_missing_fields_null(tmp_path):
    # A schema 1.0 line: no repeat, class_order, served_model, answer_rule, error_transient, attempts_total,
    # prompt_images; and a key this version does not know, which is kept.
    old = {"sample_id": "a/b/0", "benchmark": "mvtec", "category": "a", "image": "a/test/b/0.png", "true_label": "b",
           "gate": {"name": "oracle", "score": 1.0, "flagged": True, "threshold": 0.5}, "model": "m",
           "prompt": {"name": "velm", "hash": "h"}, "response": "b", "predicted_label": "b", "correct": True,
           "error": None, "latency_s": 0.1, "attempts": 1, "tokens_in": 3, "tokens_out": 1, "cost_usd": None,
           "outcome": "correct", "someday": [1]}
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "old", "config": {"gate": "oracle", "models": ["m"]}}))
    (run_dir / SAMPLES_FILE).write_text(json.dumps(old) + "\n" + '{"sample_id": "a/b/1", "bench')  # killed mid-line
    run, lines = load_run(run_dir)
    (typed,) = RunFolder("old", run_dir, run, lines).typed_records()
    assert typed.repeat == 0
    assert typed.class_order is None and typed.served_model is None and typed.answer_rule is None
    assert typed.attempts_total is None and typed.prompt_images is None and typed.decisions is None
    assert typed.gate == GateVerdict("oracle", 1.0, True, 0.5) and typed.extra == {"someday": [1]}
    assert typed.to_json()["someday"] == [1]
    assert records_from_json(lines) == load_records(run_dir) == [typed]


def test_a_line_that_is_no_record_is_an_error_naming_the_file(tmp_path):
    (tmp_path / SAMPLES_FILE).write_text('{"sample_id": "a", "gate": "oracle"}\n')
    with pytest.raises(HarnessError, match=r"samples.jsonl: record 'a': gate is 'oracle', expected an object"):
        load_records(tmp_path)
    (tmp_path / SAMPLES_FILE).write_text('[1, 2]\n')
    with pytest.raises(HarnessError, match="samples.jsonl: a record is a JSON object, not list"):
        load_records(tmp_path)


def test_the_readme_names_every_record_field():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## What a run writes"):text.index("**Every prompt can be seen again.**")]
    unnamed = [name for name in JSON_FIELDS if f"`{name}`" not in section]
    assert not unnamed, f"README 'What a run writes' does not name: {unnamed}"

