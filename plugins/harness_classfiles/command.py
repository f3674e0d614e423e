"""``harness classes``: start a class file from a data root (``init``), check one against it (``check``).

The logic is `harness_classfiles.file_tools`; the file form is `harness.run.class_file`, which runs read.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import HarnessError
from harness.run.class_file import DEFAULT_NAME

from harness_classfiles.file_tools import check, starting_file
from harness_classfiles.sources import find_classes

_BENCHMARK_HELP = ("The benchmark a run will use (see `harness list`): its categories and classes are the ones listed. "
                   "[default: manifest for a manifest file or a folder holding one, else folder]")


@click.group(name="classes")
def classes() -> None:
    """Your own class descriptions: write a starting class file (init), check one (check)."""


@classes.command(name="init")
@click.argument("data_root", type=click.Path(path_type=Path))
@click.option("--benchmark", "-b", default=None, help=_BENCHMARK_HELP)
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Where to write it. [default: classes.toml in the run's data root folder]")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(data_root: Path, benchmark: str | None, output: Path | None, force: bool) -> None:
    """Write a class file listing every category and class DATA_ROOT holds, with empty fields to fill in."""
    found = find_classes(data_root, benchmark)
    output = output or found.root / DEFAULT_NAME
    text = starting_file(found, data_root)
    if output.exists() and not force:
        raise HarnessError(f"{output} already exists; pass --force to overwrite it or -o FILE to write elsewhere")
    output.write_text(text, encoding="utf-8")
    for note in found.notes:
        click.echo(f"note: {note}")
    chosen = "" if benchmark is None else f" --benchmark {benchmark}"
    click.echo(f"wrote {output} for benchmark {found.benchmark!r}; fill in the empty fields, then: "
               f"harness classes check {output} --data-root {data_root}{chosen}")


@classes.command(name="check")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option("--data-root", type=click.Path(path_type=Path), required=True, help="The data root the file describes.")
@click.option("--benchmark", "-b", default=None, help=_BENCHMARK_HELP)
def check_command(file: Path | None, data_root: Path, benchmark: str | None) -> None:
    """Check FILE (default: classes.toml in the data root) against what DATA_ROOT holds: exit 2 on errors, 0 with warnings only."""
    found = find_classes(data_root, benchmark)
    file = file or found.root / DEFAULT_NAME
    for note in found.notes:
        click.echo(f"note: {note}")
    findings = check(file, found)
    for finding in findings:
        click.echo(str(finding))
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    summary = f"{file}: {errors} error(s), {warnings} warning(s)"
    if errors:
        raise HarnessError(summary)
    click.echo(summary if findings else f"{file}: ok")
