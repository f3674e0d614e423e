"""``harness sweep SWEEP.toml``: run every cell of a sweep file, skipping finished ones, then the leaderboard."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
from rich.markup import escape
from rich.table import Table

from harness.cli.main import console, leaderboard_command, out
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.scoring.leaderboard import figure_pct

from harness_sweep.execute import FAILED, FINISHED, SKIPPED, Outcome, cell_state, read_status, run_cells, run_here
from harness_sweep.sweep_file import Cell, Sweep, load_sweep

@click.command(name="sweep")
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="List the cells (run id, settings, state: new, finished, resume); run nothing.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cells run at once; above 1 each runs in its own process.")
@click.option("--executor", default=None,
              help="Where each cell's stages run: local, or ray (see `harness run --executor`). "
                   "[default: the file's executor, else local]")
@click.option("--ray-address", default=None, metavar="HOST:PORT",
              help="With --executor ray: the cluster to join. [default: the file's ray-address, else the local Ray "
                   "instance, started if none runs]")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None,
              help="Where the cells' run folders go. [default: the file's results-dir, else results]")
@click.option("--cell", "cell_id", default=None, hidden=True, help="Run only this cell here (what --parallel runs).")
@click.pass_context
def sweep(ctx: click.Context, sweep_file: Path, dry_run: bool, parallel: int, executor: str | None,
          ray_address: str | None, results_dir: Path | None, cell_id: str | None) -> None:
    """Run the cross product of a sweep file's benchmarks, categories, gates, models, prompts, seeds and shots.

    Each cell is an ordinary run whose id comes from the cell: a finished cell is skipped, an
    unfinished one (killed, failed) is resumed. A failing cell is reported and the others go on;
    the exit status is 1 when any cell failed.
    """
    plan = load_sweep(sweep_file, results_dir)
    for cell in plan.cells:  # where cells run is no part of their ids: the flags win over the file
        cell.config.executor = executor or cell.config.executor
        cell.config.ray_address = ray_address or cell.config.ray_address
    if cell_id is not None:
        _run_one(plan, cell_id)
    elif dry_run:
        _list_cells(plan)
    else:
        _run_all(ctx, plan, parallel)


def _run_one(plan: Sweep, run_id: str) -> None:
    """One cell in this process (a child of ``--parallel``): a failure exits with the cell's exit status."""
    outcome = run_here(plan.cell(run_id), get_registry())
    if outcome.state == FAILED:
        error = HarnessError(outcome.error or "failed")
        error.exit_code = outcome.exit_code
        raise error


def _settings_text(cell: Cell) -> str:
    return " ".join(f"{key}={value}" for key, value in cell.settings().items())


def _list_cells(plan: Sweep) -> None:
    states = [cell_state(cell) for cell in plan.cells]
    for cell, state in zip(plan.cells, states):
        click.echo(f"{state:<8}  {cell.run_id}  {_settings_text(cell)}")
    counts = {state: states.count(state) for state in dict.fromkeys(states)}
    click.echo(f"{len(plan.cells)} cells of sweep {plan.name} ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
               f"run folders in {plan.results_dir}")


def _run_all(ctx: click.Context, plan: Sweep, parallel: int) -> None:
    debug = bool((ctx.find_root().obj or {}).get("debug"))
    total = len(plan.cells)
    done = []

    def report(outcome: Outcome) -> None:
        done.append(outcome)
        time_text = "" if outcome.state == SKIPPED else f" in {outcome.seconds:.1f} s"
        failure = f" (exit {outcome.exit_code}): {outcome.error}" if outcome.state == FAILED else ""
        console.print(f"[{len(done)}/{total}] {outcome.state} {outcome.cell.run_id}{time_text}{escape(failure)}",
                      highlight=False, soft_wrap=True)

    with _executor_session(plan):
        outcomes = run_cells(plan, parallel, get_registry, report, debug=debug)
    if plan.results_dir.is_dir():
        ctx.invoke(leaderboard_command, results_dirs=(plan.results_dir,), output=plan.results_dir / "LEADERBOARD.md")
    out.print(summary_table(plan, outcomes))
    failed = [o for o in outcomes if o.state == FAILED]
    for outcome in failed:
        console.print(f"[red]failed:[/] {outcome.cell.run_id} (exit {outcome.exit_code}): {escape(outcome.error or '')}",
                      highlight=False, soft_wrap=True)
    if failed:
        sys.exit(1)


@contextmanager
def _executor_session(plan: Sweep) -> Iterator[None]:
    """Inside the cells' executor's ``session(address)``, when it has one: Ray joins (or starts) its cluster once
    for the whole sweep, and the cells, in child processes too (``--parallel``), join it at the address it gives."""
    names = {cell.config.executor for cell in plan.cells}
    if len(names) != 1:
        raise HarnessError(f"{plan.path}: the cells name several executors ({', '.join(sorted(names))}); give one")
    session = getattr(get_registry().get("executors", names.pop()).obj, "session", None)  # unknown: lists the known
    if session is None or all(cell_state(cell) == FINISHED for cell in plan.cells):  # nothing to run: join nothing
        yield
        return
    with session(plan.cells[0].config.ray_address) as address:
        for cell in plan.cells:
            cell.config.ray_address = address
        yield


def summary_table(plan: Sweep, outcomes: list[Outcome]) -> Table:
    """One row per cell: run id, what this sweep did with it, velm accuracy per model, time spent now."""
    table = Table(title=f"Sweep {plan.name} ({plan.path})", title_justify="left")
    for column in ("#", "cell", "state", "accuracy % (velm)", "time"):
        table.add_column(column, overflow="fold")
    for number, outcome in enumerate(outcomes, start=1):
        time_text = "-" if outcome.state == SKIPPED else f"{outcome.seconds:.1f} s"
        table.add_row(str(number), outcome.cell.run_id, outcome.state, _accuracies(outcome), time_text)
    return table


def _accuracies(outcome: Outcome) -> str:
    """``model figure`` per model of the cell's finished run; ``-`` without one."""
    run = read_status(outcome.cell.config.results_dir / outcome.cell.run_id)
    if not run or run.get("status") != "finished":
        return "-"
    metrics = run.get("metrics") or {}
    return ", ".join(f"{model} {figure_pct(scores['protocols'].get('velm', {}).get('accuracy'))}"
                     for model, scores in metrics.items()) or "-"
