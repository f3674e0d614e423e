"""The readers of finished run folders (`harness report`, `harness act`) read `harness.record.Record`s.

An older or newer run folder must still load: a line with a key this version does not know and without
optional fields is read into a `Record` (the key kept in ``extra``, the fields None) and shows the same.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import plugins
from harness.cli import main
from harness.errors import HarnessError
from harness.record import load_records
from harness_report.report import build_report
from harness.results import SAMPLES_FILE
from harness.run.runner import Run, RunConfig

#: Keys a record of an older schema lacks (all optional to the readers); "outcome" is derived when absent.
DROPPED = ("served_model", "queued_s", "attempts_total", "answer_rule", "error_transient", "repeat", "outcome")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A finished demo run with ``--policy``, and a copy whose lines have an unknown key and lack optional fields."""
    results = tmp_path_factory.mktemp("typed") / "results"
    config = RunConfig(benchmark="demo", gate="oracle", models=["random"], policy="demo", n_boot=20,
                       results_dir=results, run_id="current")
    run_dir = Run(config, plugins.load_registry()).execute().run_dir
    old = results / "old"
    shutil.copytree(run_dir, old)
    lines = [json.loads(line) for line in (old / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()]
    for line in lines:
        for key in DROPPED:
            line.pop(key)
        line["written_by_a_later_version"] = {"x": 1}
    (old / SAMPLES_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return run_dir, old


def test_the_old_lines_load_as_records_keeping_the_unknown_key(runs):
    current, old = runs
    records = load_records(old)
    assert records and all(r.served_model is None and r.repeat == 0 and r.outcome is None for r in records)
    assert all(r.extra == {"written_by_a_later_version": {"x": 1}} for r in records)
    assert [r.sample_id for r in records] == [r.sample_id for r in load_records(current)]


def test_the_report_of_an_old_run_folder_shows_what_the_current_one_does(runs, tmp_path):
    current, old = runs
    pages = []
    for run_dir in (current, old):
        page = build_report([str(run_dir)], run_dir.parent, tmp_path / f"{run_dir.name}.html", per_model=50)
        text = page.read_text(encoding="utf-8").replace(str(run_dir), "RUN_DIR")
        pages.append([line for line in text.splitlines() if "generated" not in line])
    assert 'class="card' in "\n".join(pages[0])  # random answers: the gallery has cards to compare
    assert pages[1] == pages[0]


def test_act_reads_an_old_run_folder_as_it_reads_a_current_one(runs):
    written = []
    for run_dir in runs:
        main(["act", str(run_dir), "--policy", "demo", "--costs", "costs-example", "--table4", "--seeds", "2"])
        written.append([json.loads((run_dir / name).read_text())[key]
                        for name, key in (("decisions.json", "decisions"), ("table4.json", "table4"))])
    assert written[0][0]["models"]["random"]["n"] > 0
    assert written[1] == written[0]


def test_a_line_that_is_no_record_is_named_by_file_and_line(runs, tmp_path):
    current, _ = runs
    bad = tmp_path / "bad"
    shutil.copytree(current, bad)
    lines = (bad / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1]) | {"gate": "oracle"}
    (bad / SAMPLES_FILE).write_text("\n".join([lines[0], "", json.dumps(broken), *lines[2:]]) + "\n", encoding="utf-8")
    expected = rf"{SAMPLES_FILE}: record '{broken['sample_id']}': gate is 'oracle', expected an object or null \(line 3\)"
    with pytest.raises(HarnessError, match=expected):
        load_records(bad)
    with pytest.raises(SystemExit):  # the CLI prints the same message and exits 2
        main(["act", str(bad), "--table4"])
