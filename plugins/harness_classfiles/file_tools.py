"""``harness classes``: write a starting class file from a data root, and check one against it.

Both ask `harness_classfiles.sources.find_classes` what the data root holds as a run of the
benchmark sees it; the file form is `harness.run.class_file`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.run.class_file import DEFAULT_NAME, UserClassFile, read_class_file, reference_base, reference_file
from harness.types import Category

from harness_classfiles.sources import FolderClasses, FoundClasses

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    """A TOML key: bare when it can be, else quoted."""
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _header(found: FoundClasses, given_root: Path) -> list[str]:
    if isinstance(found, FolderClasses):
        return [
            f"# Class file for {given_root}, written by `harness classes init`.",
            "# A run reads it as DATA_ROOT/classes.toml, or from anywhere with `harness run --classes FILE`.",
            "# Fill in the empty strings; a field left empty keeps the benchmark's own text (for your own",
            "# folders: no description, and the class name derived from the folder name).",
            "# Check it with `harness classes check FILE --data-root DATA_ROOT`.",
        ]
    name = found.benchmark
    lines = [
        f"# Class file for {given_root} as benchmark {name!r}, written by `harness classes init --benchmark {name}`.",
        f"# A run with --benchmark {name} reads it as {found.root / DEFAULT_NAME}, "
        "or from anywhere with `harness run --classes FILE`.",
    ]
    if found.has_text():
        lines += [
            f"# Benchmark {name!r} ships its own descriptions, quoted in the comments marked 'shipped:'.",
            "# This file only overrides them: a field left empty keeps the shipped text, so fill in just",
            "# what you want to change (the names written are the names a model is shown now).",
        ]
    else:
        lines += [
            "# Fill in the empty strings; a field left empty keeps the benchmark's own text (here: no",
            "# description, and the class name derived from the label).",
        ]
    lines += [f"# Note: {note}" for note in found.notes]
    return lines + [f"# Check it with `harness classes check FILE --data-root DATA_ROOT --benchmark {name}`."]


def _shipped(text: str) -> list[str]:
    """A comment quoting the benchmark's own text of a field, when it has one."""
    return [f"# shipped: {json.dumps(text)}"] if text else []


def _example_reference(folder: Path, category: Category) -> str:
    """The category's first training normal as a ``reference`` value would name it (relative when it can be)."""
    if not category.train_images:
        return "/path/to/a/normal.png"
    image = min(category.train_images)
    try:
        return image.relative_to(folder).as_posix()
    except ValueError:
        return str(image)


def _category_lines(found: FoundClasses, category: Category) -> list[str]:
    key = _key(category.name)
    if isinstance(found, FolderClasses):
        reference = ["# reference: optional, the normal image shown beside every query, from this category's folder",
                     "# (without it one of train/good/ is drawn with the run's seed).",
                     '# reference = "train/good/000.png"']
    else:
        base = reference_base(found.root, category.name)
        reference = ["# reference: optional, the normal image shown beside every query; a relative path starts at",
                     f"# {base}/ (without it a training normal is drawn with the run's seed).",
                     f"# reference = {json.dumps(_example_reference(base, category))}"]
    lines = [
        "",
        f"[{key}]",
        "# object: what a normal part looks like in these images (one or two sentences).",
        *_shipped(category.object_description),
        'object = ""',
        "# guidance: optional hints telling similar defects apart, or what variation is normal.",
        *_shipped(category.guidance),
        'guidance = ""',
        *reference,
    ]
    infos = {info.key: info for info in category.classes}
    for name in found.class_keys(category.name):
        lines += [
            "",
            f"[{key}.classes.{_key(name)}]",
            f"name = {json.dumps(infos[name].name)}  # the name a model is shown",
            *_shipped(infos[name].description),
            'description = ""  # one sentence: what this defect looks like',
        ]
    return lines


def starting_file(found: FoundClasses, given_root: Path) -> str:
    """A class file listing every category and class ``found`` (under ``given_root``), with empty fields to fill in."""
    lines = _header(found, given_root)
    for name in sorted(found.categories):
        lines += _category_lines(found, found.categories[name])
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Finding:
    """One problem of a class file: where (``FILE:LINE``), how bad (``error`` or ``warning``), what."""

    where: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.message}"


def check(path: Path, found: FoundClasses) -> list[Finding]:
    """Every problem of the class file at ``path`` against what the data root holds (``found``).

    Errors (a run stops on them): a category or class the data root lacks, a missing fixed reference.
    Warnings: a category or class the file does not list, an empty text the benchmark lacks too.
    An unparseable file raises `HarnessError` naming file and line.
    """
    user = read_class_file(path)
    findings: list[Finding] = []
    for category in user.categories:
        if category not in found.categories:
            findings.append(Finding(user.where((category,)), "error", f"unknown category {category!r}: "
                                    f"{found.no_category(category)} (categories found: {', '.join(sorted(found.categories))})"))
            continue
        findings += _check_category(user, found, category)
    for category in sorted(found.categories):
        if category not in user.categories:
            findings.append(Finding(str(path), "warning", f"{found.category_place(category)} has no [{category}] table"))
    return findings


def _check_category(user: UserClassFile, found: FoundClasses, category: str) -> list[Finding]:
    given, loaded = user.categories[category], found.categories[category]
    keys = found.class_keys(category)
    own = {info.key: info.description for info in loaded.classes}
    findings = []
    if not given.object and not loaded.object_description:
        findings.append(Finding(user.where((category,), "object"), "warning", f"[{category}] has an empty object description"))
    if given.reference and not (reference := reference_file(found.root, category, given.reference)).is_file():
        findings.append(Finding(user.where((category,), "reference"), "error", f"reference image {reference} not found"))
    for key, fields in given.classes.items():
        where = (category, "classes", key)
        if key not in keys:
            findings.append(Finding(user.where(where), "error", f"unknown class {key!r} of {category!r}: "
                                    f"{found.no_class(category, key)} (classes found: {', '.join(keys) or 'none'})"))
        elif not fields.description and not own.get(key):
            findings.append(Finding(user.where(where, "description"), "warning",
                                    f"[{category}.classes.{key}] has an empty description"))
    for key in keys:
        if key not in given.classes:
            findings.append(Finding(user.where((category,)), "warning",
                                    f"{found.class_place(category, key)} has no [{category}.classes.{key}] table"))
    return findings
