"""``harness score``: turn predictions made elsewhere into a normal, scored run (see `harness_imported.predictions`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from harness.cli.main import console as err, out, print_table, write_leaderboard
from harness.plugins import get_registry
from harness.scoring import answers, leaderboard

from harness_imported.predictions import FORMATS, SHOW, load_benchmark_data, score_predictions


@click.command(name="score")
@click.option("--benchmark", "-b", required=True, help="Benchmark the predictions are for (e.g. mvtec-ac).")
@click.option("--predictions", required=True, type=click.Path(path_type=Path), help="The prediction file.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="velm", show_default=True,
              help="velm: one JSON object {\"<category>_<class>_<NNN>\": \"class name\"}; "
                   "jsonl: one object per line with predicted_label and sample_id (or category and image).")
@click.option("--name", required=True, help="Name of the system; the run's model becomes imported:NAME.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Score against this data root's test set. [default: the benchmark's released file list]")
@click.option("--category", "categories", multiple=True, help="Only this category (repeatable).")
@click.option("--allow-partial", is_flag=True,
              help="With --data-root: proceed on the files shared with the released list when they differ.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where the run folder goes.")
@click.option("--run-id", default=None, help="Name of the run folder. [default: UTC time, benchmark and a random suffix, e.g. 20260101-120000-demo-1a2b3c]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap intervals.")
@click.option("--answers", "answers_mode", type=click.Choice(answers.MODES), default="lenient", show_default=True,
              help="How predictions are read, as `harness run --answers`: strict keeps only JSON, exact and "
                   "final-answer readings.")
def score(benchmark: str, predictions: Path, fmt: str, name: str, data_root: Path | None, categories: tuple[str, ...],
          allow_partial: bool, results_dir: Path, run_id: str | None, seed: int, answers_mode: str) -> None:
    """Score a file of predictions made outside the harness, as a run of model imported:NAME."""
    registry = get_registry()
    bench = registry.get("benchmarks", benchmark).obj
    chosen = list(categories) or None
    data = load_benchmark_data(bench, data_root, chosen, allow_partial)
    plugins = {n: {"distribution": d, "version": v} for n, (d, v) in registry.plugins.items()}
    config = {"data_root": str(data_root) if data_root else None, "categories": chosen, "allow_partial": allow_partial}
    run_dir, run, imported = score_predictions(
        bench, data, predictions, fmt, name, results_dir, run_id=run_id, seed=seed, config=config, plugins=plugins,
        answers_mode=answers_mode,
    )
    _warn(imported)
    model = next(iter(run["metrics"]))
    out.print(_category_table(run["metrics"][model], run["benchmark"]["manifest_hash"]))
    print_table(f"Run {run['run_id']}", leaderboard.rows_from_run(run))
    out.print(f"results: {run_dir}/run.json and samples.jsonl")
    board = write_leaderboard(leaderboard.group(leaderboard.collect([results_dir])), results_dir / "LEADERBOARD.md")
    out.print(f"leaderboard: {board}")


def _warn(imported) -> None:
    """Say what was not scored: images without a prediction, keys naming no image, unparseable names."""
    def first(names: list[str]) -> str:
        return ", ".join(names[:SHOW]) + (" ..." if len(names) > SHOW else "")

    if imported.missing:
        err.print(f"[yellow]warning:[/] {len(imported.missing)} image(s) have no prediction and are not scored "
                  "(listed in run.json under imported.missing; the manifest hash covers only scored images): "
                  f"{first(imported.missing)}", highlight=False)
    if imported.unmatched:
        err.print(f"[yellow]warning:[/] {len(imported.unmatched)} prediction key(s) name no image of the benchmark "
                  f"(listed in run.json under imported.unmatched): {first(imported.unmatched)}\n  {imported.key_forms}",
                  highlight=False)
    unparseable = [r for r in imported.records if r.error == "unparseable"]
    if unparseable:
        shown = ", ".join(f"{r.imported_key}={r.response!r}" for r in unparseable[:SHOW])
        err.print(f"[yellow]note:[/] {len(unparseable)} prediction(s) name no class of their category "
                  f"and count as errors (unparseable): {shown}", highlight=False)


def _category_table(scores: dict, manifest: str) -> Table:
    # As in the run table: accuracies in percent, macro-F1 and kappa on their 0-1 scale ("n/a" when undefined).
    figure, number = leaderboard.figure_pct, leaderboard.figure_num
    velm = scores["protocols"]["velm"]
    anomalous = scores["protocols"]["anomalous"]
    table = Table(title=f"Per category, protocol velm (manifest {manifest})", title_justify="left")
    for column in ("category", "n", "accuracy", "anomalous acc", "macro-F1", "kappa"):
        table.add_column(column, justify="left" if column == "category" else "right")

    for category, entry in velm["categories"].items():
        anom = anomalous["categories"].get(category, {})
        table.add_row(category, str(entry["n"]), figure(entry["accuracy"]), figure(anom.get("accuracy")),
                      number(entry["macro_f1"]), number(entry["kappa"]))
    table.add_row("mean", str(velm["n"]), figure(velm["accuracy"]), figure(anomalous["accuracy"]),
                  number(velm["macro_f1"]), number(velm["kappa"]), style="bold")
    return table
