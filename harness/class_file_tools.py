"""``harness classes``: write a starting class file from a data root, and check one against it.

Both read the MVTec folder layout (``<root>/<category>/test/<class>/``, the
layout of ``--benchmark folder``): categories are the root's subfolders with a
``test/`` folder, classes their test subfolders other than ``good``. The file
form, and how a run lays it over a benchmark, is `harness.class_file`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.class_file import UserClassFile, read_class_file, reference_file
from harness.errors import HarnessError
from harness.types import GOOD

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def folder_classes(root: Path) -> dict[str, list[str]]:
    """Category -> its defect class folders (sorted), for every category folder with a ``test/`` folder."""
    if not root.is_dir():
        raise HarnessError(f"data root {root} is not a folder")
    found = {
        category.name: sorted(c.name for c in (category / "test").iterdir() if c.is_dir() and c.name != GOOD)
        for category in sorted(root.iterdir())
        if (category / "test").is_dir()
    }
    if not found:
        raise HarnessError(f"no category folders with a test/ folder in {root} (expected <root>/<category>/test/<class>/)")
    return found


def _key(name: str) -> str:
    """A TOML key: bare when it can be, else quoted."""
    return name if _BARE_KEY.match(name) else json.dumps(name)


def starting_file(root: Path) -> str:
    """A class file listing every category and class found under ``root``, with empty fields to fill in."""
    lines = [
        f"# Class file for {root}, written by `harness classes init`.",
        "# A run reads it as DATA_ROOT/classes.toml, or from anywhere with `harness run --classes FILE`.",
        "# Fill in the empty strings; a field left empty keeps the benchmark's own text (for your own",
        "# folders: no description, and the class name derived from the folder name).",
        "# Check it with `harness classes check FILE --data-root DATA_ROOT`.",
    ]
    for category, classes in folder_classes(root).items():
        lines += [
            "",
            f"[{_key(category)}]",
            "# object: what a normal part looks like in these images (one or two sentences).",
            'object = ""',
            "# guidance: optional hints telling similar defects apart, or what variation is normal.",
            'guidance = ""',
            "# reference: optional, the normal image shown beside every query, from this category's folder",
            "# (without it one of train/good/ is drawn with the run's seed).",
            '# reference = "train/good/000.png"',
        ]
        for name in classes:
            lines += [
                "",
                f"[{_key(category)}.classes.{_key(name)}]",
                f"name = {json.dumps(name.replace('_', ' '))}  # the name a model is shown",
                'description = ""  # one sentence: what this defect looks like',
            ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Finding:
    """One problem of a class file: where (``FILE:LINE``), how bad (``error`` or ``warning``), what."""

    where: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.message}"


def check(path: Path, root: Path) -> list[Finding]:
    """Every problem of the class file at ``path`` against the folders under ``root``.

    Errors: a category or class the file lists that has no folder, a fixed
    reference that does not exist (a run stops on these). Warnings: a category
    or class folder the file does not list, an empty object or description
    (a run goes on with the folder's name and no description).
    A file that cannot be parsed raises `HarnessError` naming file and line.
    """
    user = read_class_file(path)
    folders = folder_classes(root)
    findings: list[Finding] = []
    for category, given in user.categories.items():
        if category not in folders:
            findings.append(Finding(user.where((category,)), "error", f"unknown category {category!r}: no folder "
                                    f"{root / category / 'test'} (categories found: {', '.join(folders)})"))
            continue
        findings += _check_category(user, root, category, folders[category])
    for category in folders:
        if category not in user.categories:
            findings.append(Finding(str(path), "warning", f"category folder {root / category} has no [{category}] table"))
    return findings


def _check_category(user: UserClassFile, root: Path, category: str, found: list[str]) -> list[Finding]:
    given = user.categories[category]
    findings = []
    if not given.object:
        findings.append(Finding(user.where((category,), "object"), "warning", f"[{category}] has an empty object description"))
    if given.reference and not (reference := reference_file(root, category, given.reference)).is_file():
        findings.append(Finding(user.where((category,), "reference"), "error", f"reference image {reference} not found"))
    for key, fields in given.classes.items():
        where = (category, "classes", key)
        if key not in found:
            findings.append(Finding(user.where(where), "error", f"unknown class {key!r} of {category!r}: no folder "
                                    f"{root / category / 'test' / key} (classes found: {', '.join(found) or 'none'})"))
        elif not fields.description:
            findings.append(Finding(user.where(where, "description"), "warning",
                                    f"[{category}.classes.{key}] has an empty description"))
    for key in found:
        if key not in given.classes:
            findings.append(Finding(user.where((category,)), "warning",
                                    f"class folder {root / category / 'test' / key} has no [{category}.classes.{key}] table"))
    return findings
