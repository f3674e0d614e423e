"""``harness classes``: start a class file from a data root (``init``) and check one against it (``check``).

The logic is `harness.class_file_tools`; the file form is `harness.class_file`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.class_file import DEFAULT_NAME
from harness.class_file_tools import check, starting_file
from harness.errors import HarnessError


@click.group(name="classes")
def classes() -> None:
    """Your own class descriptions: write a starting class file (init), check one (check)."""


@classes.command(name="init")
@click.argument("data_root", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Where to write it. [default: DATA_ROOT/classes.toml]")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(data_root: Path, output: Path | None, force: bool) -> None:
    """Write a class file listing every category and class folder under DATA_ROOT, with empty fields to fill in."""
    output = output or data_root / DEFAULT_NAME
    text = starting_file(data_root)
    if output.exists() and not force:
        raise HarnessError(f"{output} already exists; pass --force to overwrite it or -o FILE to write elsewhere")
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}; fill in the empty fields, then: harness classes check {output} --data-root {data_root}")


@classes.command(name="check")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option("--data-root", type=click.Path(path_type=Path), required=True, help="The data root the file describes.")
def check_command(file: Path | None, data_root: Path) -> None:
    """Check FILE (default DATA_ROOT/classes.toml) against the folders: exit 2 on errors, 0 with warnings only."""
    file = file or data_root / DEFAULT_NAME
    findings = check(file, data_root)
    for finding in findings:
        click.echo(str(finding))
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    summary = f"{file}: {errors} error(s), {warnings} warning(s)"
    if errors:
        raise HarnessError(summary)
    click.echo(summary if findings else f"{file}: ok")
