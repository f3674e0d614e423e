"""``harness report``: one self-contained HTML page about finished runs.

The page holds the leaderboard of the runs (sortable), accuracy against p95
latency and against cost per 1,000 images with the Pareto front, the gate's
figures next to end-to-end ones, error attribution and confusion heat maps per
model, and a filterable gallery of wrong and failed samples. Pictures are
embedded as data URIs and the scripts are inline, so the file opens offline
and can be mailed as it is.

Modules: `data` (reading runs), `svg` (plots), `gallery` (sample cards and
thumbnails), `render` (the Jinja2 page; templates in ``templates/``), and
`browser` (headless Chromium over DevTools, for the browser test and
benchmarks/report_demo.py; not imported here).
"""

from __future__ import annotations

from pathlib import Path

from harness.report import data, gallery, render

#: Gallery cards per model unless ``--per-model`` says otherwise.
DEFAULT_PER_MODEL = 24


def build_report(
    run_ids: list[str],
    results_dir: Path,
    output: Path,
    per_model: int = DEFAULT_PER_MODEL,
    data_root: Path | None = None,
) -> Path:
    """Write the report of ``run_ids`` (folders under ``results_dir``) to ``output``; return ``output``.

    Raises `HarnessError` for an unknown or unfinished run. ``data_root``
    overrides the data root recorded in the runs, for data that moved.
    """
    runs = data.load_runs(run_ids, results_dir)
    groups = data.groups(runs)
    names = [model for run in runs for model in run.scored_models]
    ambiguous = frozenset(name for name in names if names.count(name) > 1)
    galleries = [gallery.build(run, per_model, data_root, ambiguous) for run in runs]
    page = render.render(runs, groups, galleries, per_model)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
