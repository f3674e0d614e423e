"""The first-party prompts plugin: the shipped prompt templates, class descriptions and decision files.

Every ``templates/*.j2`` file of this package is registered as a prompt
template named after the file (``velm.j2`` -> ``velm``), described by its
leading ``{# ... #}`` comment. Every ``classes/*.toml`` is registered as the
class file of that name (the benchmarks of the datasets plugin read theirs by
name), every ``policies/*.toml`` as a decision policy, or as a cost matrix
when it has a ``[cost]`` table.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Iterator

from harness.hookspecs import hookimpl
from harness.prompts import PromptTemplate, template_from_text

PACKAGE = "harness_prompts"


def shipped_templates() -> list[PromptTemplate]:
    """The templates in this package's ``templates`` folder, sorted by name."""
    folder = files(PACKAGE) / "templates"
    templates = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".j2") and entry.is_file():
            name = entry.name[: -len(".j2")]
            templates.append(
                template_from_text(name, entry.read_text(encoding="utf-8"), origin=f"{PACKAGE}:templates/{entry.name}")
            )
    return templates


@hookimpl(trylast=True)
def register_prompt_templates(register):
    for template in shipped_templates():
        register(template)


def _toml_files(folder: str) -> Iterator[tuple[str, Traversable]]:
    """(name, file) for each ``<folder>/<name>.toml`` of this package, sorted by name."""
    for entry in sorted((files(PACKAGE) / folder).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            yield entry.name[: -len(".toml")], entry


def _is_cost_matrix(entry: Traversable) -> bool:
    """A shipped decision file with a ``[cost]`` table is a cost matrix; the others are policies."""
    return "cost" in tomllib.loads(entry.read_text(encoding="utf-8"))


@hookimpl(trylast=True)
def register_class_files(register):
    for name, entry in _toml_files("classes"):
        register(name, entry)


@hookimpl(trylast=True)
def register_policies(register):
    for name, entry in _toml_files("policies"):
        if not _is_cost_matrix(entry):
            register(name, entry)


@hookimpl(trylast=True)
def register_cost_matrices(register):
    for name, entry in _toml_files("policies"):
        if _is_cost_matrix(entry):
            register(name, entry)
