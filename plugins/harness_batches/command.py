"""``harness batches RUN_ID [--cancel]``: each provider batch of a run, its state and request counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from harness.batches import BatchStatus, can_batch
from harness.cli.main import out
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.results import load_run
from harness.run.batch_mode import LEDGER_FILE, Ledger
from harness.run.plan import resolve_parts
from harness.run.run_config import RunConfig


@click.command(name="batches")
@click.argument("run_id")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where the run folder is.")
@click.option("--cancel", is_flag=True, help="Cancel the run's batches that have not ended (their requests are "
                                              "recorded as cancelled when the run resumes).")
def batches(run_id: str, results_dir: Path, cancel: bool) -> None:
    """Show the provider batches of a run made with --batch: id, model, requests, state and counts."""
    run_dir = results_dir / run_id
    if not (run_dir / "run.json").is_file():
        raise HarnessError(f"no run {run_id!r} in {results_dir} ({run_dir / 'run.json'} not found)")
    entries = Ledger(run_dir).batches()
    if not entries:
        raise HarnessError(f"run {run_id!r} has no provider batches ({run_dir / LEDGER_FILE} is absent or empty)")
    run, _ = load_run(run_dir)
    config = RunConfig.from_json(run["config"], results_dir, run_id)
    models = sorted({entry["model"] for entry in entries})
    # Only the models with batches are made (and need their API keys).
    config.models, config.model_options = models, {k: v for k, v in config.model_options.items() if k in models}
    classifiers = {c.spec: c for c in resolve_parts(config, get_registry()).classifiers if can_batch(c)}
    states = asyncio.run(_states(entries, classifiers, cancel))
    table = Table(title=f"Batches of {run_id}", title_justify="left")
    for column in ("batch", "model", "requests", "state", "processing", "succeeded", "errored", "expired", "cancelled",
                   "recorded"):
        table.add_column(column, overflow="fold")
    for entry, status in zip(entries, states):
        counts = status.counts if status is not None else {}
        state = "never created (killed while creating it)" if entry["batch_id"] is None else status.provider_status
        table.add_row(escape(entry["batch_id"] or entry["key"]), escape(entry["model"]), str(len(entry["custom_ids"])),
                      escape(state), *(str(counts.get(k, "")) for k in ("processing", "succeeded", "errored", "expired",
                                                                         "cancelled")),
                      "yes" if entry["collected"] else "no")
    out.print(table)
    if not cancel and any(not e["collected"] and e["batch_id"] for e in entries):
        out.print(f"records are written when the run resumes: harness run --resume {run_id} --results-dir {results_dir}")


async def _states(entries: list[dict[str, Any]], classifiers: dict[str, Any], cancel: bool) -> list[BatchStatus | None]:
    """Each created batch's status (cancelled first with ``cancel`` when it has not ended); None for an intent."""
    states: list[BatchStatus | None] = []
    try:
        for entry in entries:
            if entry["batch_id"] is None:
                states.append(None)
                continue
            classifier = classifiers.get(entry["model"])
            if classifier is None:
                raise HarnessError(f"model {entry['model']!r} of batch {entry['batch_id']} has no batch API here")
            status = await classifier.poll_batch(entry["batch_id"])
            if cancel and status.state != "ended":
                status = await classifier.cancel_batch(entry["batch_id"])
            states.append(status)
    finally:
        for classifier in classifiers.values():
            await classifier.aclose()
    return states
