"""Class files: per-category object descriptions and candidate defect classes of a benchmark.

A benchmark's class file is found by name among the class files plugins
register (hook ``register_class_files``; the first-party ``prompts`` plugin
registers ``prompts/classes/<name>.toml``), so a later plugin may replace one.
Its form is `harness.run.class_file`'s, which reads and checks it, one table per
category::

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run.class_file import UserClassFile, class_file_from_data, read_class_file
from harness.errors import HarnessError
from harness.plugins import registered_class_file
from harness.types import ClassInfo

from harness_datasets.files import display_name


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


def load_class_file(name: str) -> ClassFile | None:
    """The class file a plugin registered as ``name``; None when none did.

    A missing file is not an error: loaders then derive names from folder names.
    A malformed one is, since every run of that benchmark would be wrong.
    Read on every call (a few kilobytes): the registry, and so the file, may change between runs.
    """
    path = registered_class_file(name)
    return None if path is None else shipped_classes(name, read_class_file(path))


def parse_class_file(name: str, data: dict[str, Any], source: str = "<memory>") -> ClassFile:
    """Build a `ClassFile` from parsed TOML (checked as `harness.run.class_file` checks a file)."""
    return shipped_classes(name, class_file_from_data(data, Path(source)))


def shipped_classes(name: str, parsed: UserClassFile) -> ClassFile:
    """A benchmark's `ClassFile` from a read class file: classes sorted by key, a missing name derived from the key."""
    categories: dict[str, CategoryClasses] = {}
    for category, given in parsed.categories.items():
        if given.reference:  # a benchmark's own file has no data root to find the image in
            raise HarnessError(f"{parsed.where((category,), 'reference')}: a benchmark's class file cannot name a "
                               "reference image; give it in your own class file (--classes FILE)")
        categories[category] = CategoryClasses(
            name=category,
            object_description=given.object,
            guidance=given.guidance,
            classes={
                key: ClassInfo(key=key, name=fields.name or display_name(key), description=fields.description)
                for key, fields in sorted(given.classes.items())
            },
        )
    return ClassFile(name=name, source=str(parsed.path), categories=categories)
