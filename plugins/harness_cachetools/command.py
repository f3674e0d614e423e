"""``harness cache``: what the response cache (`harness.run.cache`) holds (``info``), removing entries (``clear``)."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from harness.cli.main import out as _out
from harness.run.cache import default_path
from harness_cachetools.inventory import Inventory, endpoint_label, open_existing, select, take_inventory


@click.group(name="cache")
def cache() -> None:
    """The response cache: what it holds (info) and removing entries (clear)."""


@cache.command(name="info")
@click.option("--json", "as_json", is_flag=True, help="Print the same as JSON.")
def info(as_json: bool) -> None:
    """Path, size, entries per model and endpoint, and prompt-memo entries of the response cache."""
    store = open_existing(default_path())
    try:
        inventory = take_inventory(store)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(inventory.to_json(), indent=2))
    else:
        print_inventory(inventory)


def print_inventory(inventory: Inventory) -> None:
    _out.print(f"response cache: {inventory.path} ({_size(inventory.size_bytes)})", highlight=False)
    _out.print(f"responses: {inventory.entries}; prompt memo: {inventory.memo_entries} entries", highlight=False)
    if not inventory.groups:
        return
    table = Table(show_edge=False)
    for column in ("model", "endpoint", "entries"):
        table.add_column(column, justify="right" if column == "entries" else "left", overflow="fold")
    for group in inventory.groups:
        table.add_row(group.spec, endpoint_label(group), str(group.entries))
    _out.print(table)


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    return f"{size / 1024:.1f} KiB" if size < 1024 ** 2 else f"{size / 1024 ** 2:.1f} MiB"


@cache.command(name="clear")
@click.option("--model", "-m", default=None, metavar="SPEC", help="Only the entries of this model spec (openai:gpt-4o).")
@click.option("--endpoint", default=None, metavar="URL|DIR",
              help="Only the entries answered by this endpoint: a base URL, or an hf checkpoint directory.")
@click.option("--yes", "-y", is_flag=True, help="Clear everything without asking (only needed without filters).")
def clear(model: str | None, endpoint: str | None, yes: bool) -> None:
    """Remove cached responses: those of --model and/or --endpoint, else all of them (asks first).

    Clearing everything also empties the prompt memo. Prints how many entries
    were removed; the file then gives their space back.
    """
    path = default_path()
    store = open_existing(path)
    try:
        if model is None and endpoint is None:
            everything = take_inventory(store)
            if not yes and not click.confirm(
                f"remove all {everything.entries} cached responses and {everything.memo_entries} prompt-memo entries "
                f"from {path}?", default=False,
            ):
                _out.print("nothing removed")
                sys.exit(1)
            removed, memo = store.delete_all()
            detail = f" and {memo} prompt-memo entries"
        else:
            chosen = select(take_inventory(store).groups, model, endpoint)
            removed, memo = store.delete_groups([g.row for g in chosen]), 0
            detail = "" if chosen else " (none matched; `harness cache info` lists what is cached)"
        if removed or memo:
            store.compact()
    finally:
        store.close()
    _out.print(f"removed {removed} cached responses{detail}", highlight=False)
