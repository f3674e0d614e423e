"""The report's caption under a redrawn outline says why it may differ from the picture sent.

A run records which drawing made its prompt pictures (``provenance.prompt_preparation``); a run
made before that was recorded drew with version 1. Redrawn pixels that differ from the recorded
digest are blamed on the drawing when the versions differ, and on the data when they do not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness_report.report import build_report
from harness.run.prompt_memo import PREPARATION_VERSION

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "demo-oracle-random"


def _copy_with(tmp_path: Path, preparation: int | None, outline_digest: str | None) -> Path:
    """The published oracle demo run under tmp_path/results, its drawing version and outline digests set."""
    results = tmp_path / "results"
    run_dir = results / "run"
    shutil.copytree(PUBLISHED, run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    run["provenance"].pop("prompt_preparation", None)
    if preparation is not None:
        run["provenance"]["prompt_preparation"] = preparation
    (run_dir / "run.json").write_text(json.dumps(run))
    if outline_digest is not None:
        lines = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line]
        for line in lines:
            shown = (line.get("prompt_images") or {}).get("shown") or {}
            if "outlined" in shown:
                shown["outlined"] = outline_digest
        (run_dir / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return results


@pytest.mark.parametrize(("preparation", "digest", "expected", "absent"), [
    (None, None, "outlined as the model saw it", "not the picture sent"),  # an old run, drawn the same way
    (PREPARATION_VERSION, "0" * 16, "a data file changed since the run", "drew its pictures another way"),
    (None, "0" * 16, f"preparation 1, now {PREPARATION_VERSION}", "a data file changed"),
])
def test_caption_names_the_likely_cause_of_a_different_redraw(tmp_path, preparation, digest, expected, absent):
    results = _copy_with(tmp_path, preparation, digest)
    html = build_report(["run"], results, tmp_path / "report.html").read_text()
    assert expected in html
    assert absent not in html
