"""Class files: per-category object descriptions and candidate defect classes.

A class file is a TOML file in the ``harness_prompts`` package, under
``classes/<name>.toml``, one table per category::

    [bottle]
    object = "a round glass bottle photographed from above"
    guidance = "optional hints for this category"

    [bottle.classes.broken_large]
    name = "broken large"
    description = "a large piece of the rim is broken off"

Keys of ``classes`` are the class folder names of the dataset; ``name`` is what
a model is shown (derived from the key when omitted).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from harness.errors import HarnessError
from harness.types import ClassInfo

from harness_datasets.files import display_name

PROMPTS_PACKAGE = "harness_prompts"


@dataclass(frozen=True)
class CategoryClasses:
    """What a class file says about one category."""

    name: str
    object_description: str
    guidance: str
    classes: dict[str, ClassInfo]


@dataclass(frozen=True)
class ClassFile:
    """A parsed class file: categories by name, and where it came from (for messages)."""

    name: str
    source: str
    categories: dict[str, CategoryClasses]


def class_file_source(name: str) -> str:
    """Where the class file called ``name`` lives, as text for messages."""
    return str(resources.files(PROMPTS_PACKAGE) / "classes" / f"{name}.toml")


@functools.cache
def load_class_file(name: str) -> ClassFile | None:
    """Read ``classes/<name>.toml`` from the prompts package; None when there is no such file.

    A missing file is not an error: loaders then derive names from folder names.
    A malformed file is, since every run of that benchmark would be wrong.
    """
    resource = resources.files(PROMPTS_PACKAGE) / "classes" / f"{name}.toml"
    if not resource.is_file():
        return None
    source = str(resource)
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"class file {source} is not valid TOML: {error}") from error
    return parse_class_file(name, data, source)


def parse_class_file(name: str, data: dict[str, Any], source: str = "<memory>") -> ClassFile:
    """Build a `ClassFile` from parsed TOML, checking the types of every field."""
    categories: dict[str, CategoryClasses] = {}
    for category, table in data.items():
        where = f"class file {source}, [{category}]"
        if not isinstance(table, dict):
            raise HarnessError(f"{where}: expected a table of category fields")
        classes_table = table.get("classes", {})
        if not isinstance(classes_table, dict):
            raise HarnessError(f"{where}: 'classes' must be a table of class tables")
        classes = {
            key: _class_info(key, fields, f"{where}.classes.{key}") for key, fields in sorted(classes_table.items())
        }
        categories[category] = CategoryClasses(
            name=category,
            object_description=_text(table, "object", where),
            guidance=_text(table, "guidance", where),
            classes=classes,
        )
    return ClassFile(name=name, source=source, categories=categories)


def _class_info(key: str, fields: Any, where: str) -> ClassInfo:
    if not isinstance(fields, dict):
        raise HarnessError(f"{where}: expected a table with 'name' and 'description'")
    return ClassInfo(
        key=key,
        name=_text(fields, "name", where) or display_name(key),
        description=_text(fields, "description", where),
    )


def _text(table: dict[str, Any], field: str, where: str) -> str:
    value = table.get(field, "")
    if not isinstance(value, str):
        raise HarnessError(f"{where}: {field!r} must be a string, not {type(value).__name__}")
    return value.strip()
