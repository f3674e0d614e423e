"""``harness act RUN_ID``: apply a decision policy (and the paper's Table 4 experiment) to a finished run.

Nothing of the run is rewritten: the reports go to ``decisions.json`` and ``table4.json`` beside ``run.json``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from harness.scoring.decision_report import TABLE4_GROUPS, decisions_for_run, table4_for_run
from harness.cli.decision_tables import decision_tables
from harness.scoring.decisions import check_decision_files, load_decision_files
from harness.errors import HarnessError
from harness.scoring.leaderboard import pct
from harness.plugins import get_registry
from harness.record import Record, records_from_json
from harness.results import SAMPLES_FILE, load_run, resolve_run_dir, write_json_atomic

DECISIONS_FILE = "decisions.json"
TABLE4_FILE = "table4.json"
# Consoles of its own, so that the command does not depend on the CLI module's.
_out = Console(width=None if sys.stdout.isatty() else 150)
_err = Console(stderr=True)


@click.command(name="act")
@click.argument("run_id")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where RUN_ID is looked up (a run folder path works too).")
@click.option("--policy", default=None, metavar="FILE|NAME",
              help="Decision policy TOML, or a shipped one by name (demo, mvtec-ac).")
@click.option("--costs", default=None, metavar="FILE|NAME",
              help="Cost matrix TOML (true action x action taken), or a shipped one (costs-example).")
@click.option("--table4", is_flag=True, help="The VELM paper's Table 4: accuracy for normal / negligible / critical "
                                              "with 1-2 classes per category marked negligible at random.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Seeds of --table4 (0..N-1).")
@click.option("--model", "-m", "models", multiple=True, help="Only this model spec (repeatable). [default: all]")
def act(run_id: str, results_dir: Path, policy: str | None, costs: str | None, table4: bool, seeds: int,
        models: tuple[str, ...]) -> None:
    """Turn a run's predictions into decisions (pass, rework, scrap, review) and report what they cost.

    With --policy: action accuracy, escape rate (a critical defect passed), overkill rate (a good or
    negligible part scrapped), accuracy per severity and, with --costs, the total cost; written to
    decisions.json in the run folder. With --table4: written to table4.json.
    """
    if policy is None and table4 is False:
        raise HarnessError("nothing to do: give --policy FILE (and optionally --costs FILE) and/or --table4")
    if costs is not None and policy is None:
        raise HarnessError("--costs prices the actions of a decision policy: add --policy FILE")
    run_dir = resolve_run_dir(run_id, results_dir)
    run, lines = load_run(run_dir)
    records = records_from_json(lines, run_dir / SAMPLES_FILE)
    if not records:
        raise HarnessError(f"{run_dir}: the run has no records in samples.jsonl")
    if run.get("status") != "finished":
        _err.print(f"[yellow]note:[/] run {run_dir.name} is {run.get('status')!r}; reporting the {len(records)} records it has")
    chosen = _models(records, models, run_dir)
    categories = (run.get("benchmark") or {}).get("categories")
    if not categories:
        raise HarnessError(f"{run_dir / 'run.json'}: no benchmark.categories with their labels; cannot check the policy")
    label_sets = {c: info["labels"] for c, info in categories.items()}
    stamp = {"run_id": run.get("run_id", run_dir.name), "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if policy is not None:
        loaded, matrix = load_decision_files(policy, costs, get_registry())
        check_decision_files(loaded, matrix, label_sets, run["benchmark"]["name"],
                             partial=run["config"].get("categories") is not None)
        section = decisions_for_run(records, loaded, matrix, chosen)
        for table in decision_tables(section, f"Decisions for run {stamp['run_id']}"):
            _out.print(table)
        write_json_atomic(run_dir / DECISIONS_FILE, {**stamp, "decisions": section})
        _out.print(f"wrote {run_dir / DECISIONS_FILE}")
    if table4:
        section = table4_for_run(records, label_sets, seeds, chosen)
        _out.print(table4_table(section, f"Table 4 setting for run {stamp['run_id']}"))
        write_json_atomic(run_dir / TABLE4_FILE, {**stamp, "table4": section})
        _out.print(f"wrote {run_dir / TABLE4_FILE}")


def _models(records: list[Record], wanted: tuple[str, ...], run_dir: Path) -> list[str]:
    present = list(dict.fromkeys(r.model for r in records))
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise HarnessError(f"{run_dir}: no records of model(s) {', '.join(unknown)}; the run has {', '.join(present)}")
    return list(wanted) or present


def table4_table(section: dict[str, Any], title: str) -> Table:
    """A rich table of a ``table4`` section: accuracy per group and their mean, per model."""
    table = Table(title=title, title_justify="left",
                  caption=f"mean over {section['seeds']} seeds per category, then over categories; "
                          "paper (DDAD + GPT-4o, MVTec-AC): 99.3 / 82.0 / 88.2, mean 89.8", caption_justify="left")
    for column in ("model", *(f"{g} %" for g in TABLE4_GROUPS), "mean %", "std over seeds (n / neg / crit)"):
        table.add_column(column)
    for model, r in section["models"].items():
        std = " / ".join(pct(r["std_over_seeds"][g]) for g in TABLE4_GROUPS)
        table.add_row(model, *(pct(r["accuracy"][g]) for g in TABLE4_GROUPS), pct(r["mean"]), std)
    return table
