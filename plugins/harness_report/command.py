"""``harness report RUN_ID [RUN_ID ...]``: write one self-contained HTML report of finished runs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from harness.cli.main import console
from harness.errors import HarnessError
from harness_report.report import DEFAULT_PER_MODEL, build_report


@click.command("report")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Folder holding the run folders.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="HTML file to write.")
@click.option("--per-model", type=int, default=DEFAULT_PER_MODEL, show_default=True,
              help="Gallery cards per model (wrong and failed samples, spread over categories and error kinds).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Where the images are now, if not where the runs recorded them.")
def report(run_ids: tuple[str, ...], results_dir: Path, output: Path, per_model: int, data_root: Path | None) -> None:
    """Write an HTML report of RUN_IDS: leaderboard, trade-off plots, gate figures, confusion, gallery.

    The file is self-contained (pictures embedded, scripts inline) and opens without a network.
    A run whose folder cannot be shown (unreadable, unfinished, odd content) is left out with a
    warning; the command fails (exit code 2) only for an unknown run id or when no run is left.
    """
    if per_model < 0:
        raise HarnessError(f"--per-model must be 0 or more, got {per_model}")
    skipped: list[str] = []
    written = build_report(list(run_ids), results_dir, output, per_model=per_model, data_root=data_root, skipped=skipped)
    for message in skipped:  # a run that cannot be shown is left out; the others still make the report
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)  # paths kept whole
    size_kb = written.stat().st_size / 1024
    console.print(f"report written to [bold]{escape(str(written))}[/] ({size_kb:.0f} KB)")
    click.echo(str(written))
