"""The whole report: `build_report` writes one self-contained HTML page about finished runs
(pictures embedded, scripts inline) from `data`, `gallery` and `render`."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness_report import data, gallery, render
from harness.run.run_folder import RunFolder

#: Gallery cards per model unless ``--per-model`` says otherwise.
DEFAULT_PER_MODEL = 24


def build_report(run_ids: list[str], results_dir: Path, output: Path, per_model: int = DEFAULT_PER_MODEL,
                 data_root: Path | None = None, skipped: list[str] | None = None) -> Path:
    """Write the report of ``run_ids`` (folders under ``results_dir``) to ``output``; return ``output``.

    An unknown run id is a `HarnessError`. So is a run that cannot be shown, unless ``skipped`` is
    given: then its message goes there and onto the page, and only no run left is an error.
    ``data_root`` overrides the runs' recorded data root.
    """
    runs = data.load_runs(run_ids, results_dir, skipped)
    names = [model for run in runs for model in run.scored_models]
    ambiguous = frozenset(name for name in names if names.count(name) > 1)
    shown, galleries = [], []
    for run in runs:
        try:
            galleries.append(_gallery_if_renderable(run, per_model, data_root, ambiguous))
        except Exception as error:  # anything a run's content can break; reported per run, never silently
            if skipped is None:
                raise
            what = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"
            skipped.append(f"run {run.run_id!r} left out: {run.run_dir}: its content cannot be shown ({what})")
            continue
        shown.append(run)
    if not shown:
        raise HarnessError("no run could be shown: " + "; ".join(skipped or ["none named"]))
    page = render.render(shown, data.groups(shown), galleries, per_model, notes=skipped or [])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output


def _gallery_if_renderable(run: RunFolder, per_model: int, data_root: Path | None, ambiguous: frozenset[str]):
    """The run's gallery, after its whole section has been rendered once on its own (which raises if it cannot be)."""
    built = gallery.build(run, per_model, data_root, ambiguous)
    render.render([run], data.groups([run]), [built], per_model)
    return built
