"""What categories and classes a data root holds, as a run of one benchmark sees them (``harness classes``).

The ``folder`` benchmark is read straight from its folders, so a category without training images
is still listed and messages can name the folder to create; any other benchmark is loaded through
the registry and asked (its categories, class keys and shipped text: what a class file lies over).
Each kind of source words its messages in its own terms (a folder, a manifest row, a class).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.datasets import ReleaseMismatchError
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.types import GOOD, BenchmarkData, Category, ClassInfo

# The manifest benchmark's own file names, repeated here: this plugin needs only the registry, not the datasets plugin.
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
MANIFEST_SUFFIXES = (".csv", ".jsonl")  # in a folder; a manifest file given itself may also be .ndjson
MANIFEST_FILE_SUFFIXES = MANIFEST_SUFFIXES + (".ndjson",)
VISA_SPLIT = Path("split_csv") / "1cls.csv"


def detect_benchmark(root: Path) -> str:
    """``manifest`` for a manifest file or a folder holding one, else ``folder``.

    A folder holds one when it has manifest.csv/.jsonl, or a single .csv/.jsonl and no ``<category>/test/``.
    """
    if root.is_file():
        return "manifest" if root.suffix.lower() in MANIFEST_FILE_SUFFIXES else "folder"
    if not root.is_dir():
        return "folder"  # the folder reader says the root is missing
    if any((root / name).is_file() for name in MANIFEST_NAMES):
        return "manifest"
    listed = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES]
    has_categories = any((p / "test").is_dir() for p in root.iterdir())
    return "manifest" if len(listed) == 1 and not has_categories else "folder"


@dataclass
class FoundClasses:
    """The categories of a data root under one benchmark, with the text the benchmark already gives.

    ``notes``: what the user should know (a partial release). Subclasses word `file_tools.check`'s messages.
    """

    benchmark: str
    root: Path
    categories: dict[str, Category]
    notes: list[str] = field(default_factory=list)

    def class_keys(self, category: str) -> list[str]:
        """The defect class keys of a category, sorted (``good`` is never one)."""
        return sorted(info.key for info in self.categories[category].classes if info.key != GOOD)

    def has_text(self) -> bool:
        """Whether the benchmark itself describes any object or class (a shipped class file)."""
        return any(c.object_description or c.guidance or any(i.description for i in c.classes)
                   for c in self.categories.values())

    def no_category(self, category: str) -> str:
        return f"benchmark {self.benchmark!r} has no category {category!r} in {self.root}"

    def no_class(self, category: str, key: str) -> str:
        return f"benchmark {self.benchmark!r} has no class {key!r} in category {category!r}"

    def category_place(self, category: str) -> str:
        return f"category {category!r} of benchmark {self.benchmark!r}"

    def class_place(self, category: str, key: str) -> str:
        return f"class {key!r} of {category!r} in benchmark {self.benchmark!r}"


class FolderClasses(FoundClasses):
    """An MVTec folder tree: categories and classes are folders."""

    def no_category(self, category: str) -> str:
        return f"no folder {self.root / category / 'test'}"

    def no_class(self, category: str, key: str) -> str:
        return f"no folder {self.root / category / 'test' / key}"

    def category_place(self, category: str) -> str:
        return f"category folder {self.root / category}"

    def class_place(self, category: str, key: str) -> str:
        return f"class folder {self.root / category / 'test' / key}"


@dataclass
class ManifestClasses(FoundClasses):
    """A manifest: categories are its ``category`` values, classes the labels of its test rows."""

    manifest: Path = Path()

    def no_category(self, category: str) -> str:
        return f"no row of {self.manifest} has category {category!r}"

    def no_class(self, category: str, key: str) -> str:
        return f"no test row of {self.manifest} has category {category!r} and label {key!r}"

    def category_place(self, category: str) -> str:
        return f"category {category!r} of {self.manifest}"

    def class_place(self, category: str, key: str) -> str:
        return f"label {key!r} of category {category!r} in {self.manifest}"


def find_classes(root: Path, benchmark: str | None = None) -> FoundClasses:
    """The categories and classes under ``root`` for ``benchmark`` (None: `detect_benchmark`)."""
    name = benchmark or detect_benchmark(root)
    if name == "folder":
        return FolderClasses("folder", root, {
            category: Category(category, [ClassInfo(key, key.replace("_", " ")) for key in keys], [], [])
            for category, keys in folder_classes(root).items()
        })
    data, notes = _load(name, root)
    categories = {category.name: category for category in data.categories}
    if name == "manifest" and "manifest" in data.notes:
        return ManifestClasses(name, data.root, categories, notes, manifest=data.root / data.notes["manifest"])
    return FoundClasses(name, data.root, categories, notes)


def _load(name: str, root: Path) -> tuple[BenchmarkData, list[str]]:
    """Load every category as a run would; a partial release is used as a run with --allow-partial would."""
    benchmark = get_registry().get("benchmarks", name).obj
    try:
        return benchmark.load(root, None), []
    except ReleaseMismatchError as mismatch:
        if mismatch.partial is None:
            raise
        present = ", ".join(c.name for c in mismatch.partial.categories)
        return mismatch.partial, [
            f"{root} holds only part of benchmark {name!r}'s released files, so a run needs --allow-partial; "
            f"listed are the categories present: {present}"
        ]


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
        hint = ""
        if (root / VISA_SPLIT).is_file():
            hint = f"; {root / VISA_SPLIT} says this is the original VisA tree: pass --benchmark visa or visa-ac"
        raise HarnessError(f"no category folders with a test/ folder in {root} "
                           f"(expected <root>/<category>/test/<class>/{hint})")
    return found
