"""A benchmark as released: its exact list of test files, and how a data root differs from it.

`Release` turns the facts of `harness_datasets.ac_facts` into the released file
list of MVTec-AC, MVTec-AD or VisA-AC. `compare` sets that list against what a
data root holds and says, class folder by class folder, what is missing and
what is extra; `released_data` builds the test set from the facts alone (no
image needed), which is what imported predictions are scored against.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

from harness.errors import DataLayoutError
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, Category, Sample

from harness_datasets import ac_facts
from harness_datasets.classes import ClassFile
from harness_datasets.files import list_images, list_subfolders

#: How many class-folder lines an error message lists before summing up the rest.
REPORT_LINES = 25


@dataclass(frozen=True)
class Release:
    """The released test set of one benchmark.

    ``files`` maps category -> test class folder -> file names; ``left_out``
    holds relative paths the original dataset has and the release omits;
    ``class_aliases`` maps category -> other names of a class folder (keys of
    the release's class map that differ from the folder name).
    """

    benchmark: str
    files: dict[str, dict[str, tuple[str, ...]]]
    left_out: frozenset[str] = frozenset()
    class_aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        return sorted(self.files)

    def relpaths(self, categories: Iterable[str] | None = None) -> dict[str, tuple[str, str, str]]:
        """``relpath -> (category, class folder, file name)`` for the given categories (all when None)."""
        chosen = self.categories if categories is None else categories
        return {
            f"{category}/test/{folder}/{name}": (category, folder, name)
            for category in chosen
            for folder, names in self.files[category].items()
            for name in names
        }

    def count(self, categories: Iterable[str] | None = None) -> tuple[int, int]:
        """(anomalous, good) image counts."""
        entries = self.relpaths(categories).values()
        good = sum(1 for _, folder, _ in entries if folder == GOOD)
        return len(entries) - good, good

    def select(self, requested: Sequence[str] | None) -> list[str]:
        """The requested categories (all when none), or an error listing the released ones."""
        if not requested:
            return self.categories
        unknown = [c for c in requested if c not in self.files]
        if unknown:
            raise DataLayoutError(
                f"category {unknown[0]!r} is not part of {self.benchmark} as released; "
                f"its categories are: {', '.join(self.categories)}"
            )
        return sorted(set(requested))


def expand_stems(ranges: str) -> list[str]:
    """``"000-002 007"`` -> ``["000", "001", "002", "007"]``: each range keeps its first stem's width."""
    stems: list[str] = []
    for part in ranges.split():
        first, _, last = part.partition("-")
        width = len(first)
        stems.extend(f"{n:0{width}d}" for n in range(int(first), int(last or first) + 1))
    return stems


def compact_stems(stems: Iterable[str]) -> str:
    """The inverse of `expand_stems` for messages: runs of consecutive numbers become ``A-B``."""
    numbered = sorted(stems, key=lambda s: (int(s) if s.isdigit() else -1, s))
    parts: list[str] = []
    i = 0
    while i < len(numbered):
        j = i
        while (
            numbered[i].isdigit() and j + 1 < len(numbered) and numbered[j + 1].isdigit()
            and int(numbered[j + 1]) == int(numbered[j]) + 1 and len(numbered[j + 1]) == len(numbered[i])
        ):
            j += 1
        parts.append(numbered[i] if i == j else f"{numbered[i]}-{numbered[j]}")
        i = j + 1
    return " ".join(parts)


def _counted(files: dict[str, dict[str, int]], suffix: str, left_out: Iterable[str] = ()) -> dict:
    skip = set(left_out)
    return {
        category: {
            folder: tuple(
                name for name in (f"{i:03d}{suffix}" for i in range(count))
                if f"{category}/test/{folder}/{name}" not in skip
            )
            for folder, count in folders.items()
        }
        for category, folders in files.items()
    }


@functools.cache
def release_for(benchmark: str) -> Release | None:
    """The release facts of ``mvtec-ac``, ``mvtec-ad`` or ``visa-ac``; None for any other benchmark."""
    if benchmark == "mvtec-ac":
        return Release(benchmark, _counted(ac_facts.MVTEC_AC_FILES, ".png"))
    if benchmark == "mvtec-ad":
        left_out = frozenset(ac_facts.MVTEC_AD_LEFT_OUT)
        return Release(benchmark, _counted(ac_facts.MVTEC_AD_FILES, ".png", left_out), left_out)
    if benchmark == "visa-ac":
        files = {
            category: {folder: tuple(f"{stem}.JPG" for stem in expand_stems(ranges)) for folder, ranges in folders.items()}
            for category, folders in ac_facts.VISA_AC_FILES.items()
        }
        return Release(benchmark, files, class_aliases=ac_facts.VISA_AC_CLASS_ALIASES)
    return None


# --------------------------------------------------------------------------- comparing a data root


@dataclass
class Difference:
    """Released files a data root lacks (``missing``) and test files it has beyond them (``extra``).

    Both are sorted relative paths in the release's ``<category>/test/<folder>/<file>`` form.
    """

    missing: list[str]
    extra: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra)

    def to_json(self) -> dict:
        """What run.json records when a run proceeds on the intersection (``--allow-partial``)."""
        return {
            "missing": len(self.missing),
            "extra": len(self.extra),
            "missing_files": self.missing,
            "extra_files": self.extra,
        }

    def report(
        self, release: Release, root: Path, kept: int, folder_path: Callable[[str, str], Path] | None = None,
        found_categories: Sequence[str] = (),
    ) -> str:
        """A message naming, per class folder, the files missing and extra, and what to do.

        ``folder_path(category, folder)`` says where a class's images were looked
        for (the test folder in the MVTec layout; VisA's own folders when mapped).
        Extra files are listed first; a category with none of its files is one line, which names
        the ``--category`` flags that select ``found_categories`` (those with released files on disk).
        """
        folder_path = folder_path or (lambda category, folder: root / category / "test" / folder)
        lines = [
            f"the data root does not hold exactly the {release.benchmark} test set as released: "
            f"{len(self.missing)} released file(s) missing, {len(self.extra)} file(s) not in the release "
            f"(data root: {root})"
        ]
        details = [_extra_line(release, folder_path(c, f), c, f, stems) for c, f, stems in _grouped(self.extra)]
        by_category: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        for category, folder, stems in _grouped(self.missing):
            by_category[category].append((folder, stems))
        absent = []
        for category, groups in by_category.items():
            released = sum(map(len, release.files[category].values()))
            if sum(len(stems) for _, stems in groups) == released:
                absent.append(category)
                continue
            for folder, stems in groups:
                total = len(release.files[category][folder])
                details.append(f"  missing in {folder_path(category, folder)}: {len(stems)} of {total} "
                               f"released file(s): {_names(stems, release.files[category][folder])}")
        if absent:
            have = [c for c in found_categories if c not in absent]
            advice = ("add " + " ".join(f"--category {c}" for c in have) + " to evaluate only "
                      + ("it" if len(have) == 1 else "them")) if have else "choose the categories you have with --category"
            details.append(f"  no released file at all of: {', '.join(absent)} "
                           f"(without --category a run means every released category; {advice})")
        lines += details[:REPORT_LINES]
        if len(details) > REPORT_LINES:
            lines.append(f"  ... and {len(details) - REPORT_LINES} more line(s)")
        if kept:
            lines.append(f"Run with --allow-partial to evaluate only the {kept} file(s) present in both "
                         "(recorded in run.json; the manifest hash then differs from the full benchmark's).")
        return "\n".join(lines)


def _names(stems: list[str], examples: Sequence[str] = ()) -> str:
    """Stems as ranges, with the file suffix when all share one (``000-004 (.png)``)."""
    suffixes = {PurePosixPath(e).suffix for e in examples}
    return compact_stems(stems) + (f" ({suffixes.pop()})" if len(suffixes) == 1 else "")


def _extra_line(release: Release, where: Path, category: str, folder: str, stems: list[str]) -> str:
    line = f"  not in the release: {where}: {len(stems)} file(s): {compact_stems(stems)}"
    if category not in release.files:
        return line + f"; {category!r} is not a {release.benchmark} category"
    if folder not in release.files[category]:
        known = ", ".join(sorted(release.files[category]))
        return line + f"; {folder!r} is not a class folder of {category!r} (its folders: {known})"
    return line


def _grouped(relpaths: list[str]) -> list[tuple[str, str, list[str]]]:
    """Relative paths grouped by (category, class folder), as file names without suffix."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for relpath in relpaths:
        path = PurePosixPath(relpath)
        groups[(path.parts[0], path.parts[-2])].append(path.stem)
    return [(category, folder, stems) for (category, folder), stems in sorted(groups.items())]


def scan_test_files(root: Path, categories: Sequence[str] | None, release: Release) -> set[str]:
    """Relative paths of every image under ``<root>/<category>/test/<folder>/``.

    With ``categories`` only those are looked at; without, every released
    category plus any other folder of the root that has a ``test/`` folder.
    """
    if categories:
        names = list(categories)
    else:
        names = sorted(set(release.categories) | {p.name for p in list_subfolders(root) if (p / "test").is_dir()})
    found: set[str] = set()
    for category in names:
        test = root / category / "test"
        if not test.is_dir():
            continue
        for folder in list_subfolders(test):
            found.update(f"{category}/test/{folder.name}/{image.name}" for image in list_images(folder))
    return found


def compare(release: Release, on_disk: set[str], categories: Sequence[str]) -> tuple[Difference, set[str]]:
    """(difference, files present in both) for the chosen categories; left-out files count as neither."""
    expected = set(release.relpaths(categories))
    on_disk = on_disk - release.left_out
    return Difference(sorted(expected - on_disk), sorted(on_disk - expected)), expected & on_disk


# --------------------------------------------------------------------------- the test set from facts


def released_data(
    release: Release, class_file: ClassFile | None, categories: Sequence[str] | None = None, protocol: str = "velm"
) -> BenchmarkData:
    """The released test set without any image: samples carry relative paths as ``image`` and no mask.

    Sample ids, relative paths and labels are exactly those a loaded data root
    gives, so the manifest hash is the same as a full run's.
    """
    categories_out = []
    for name in release.select(categories):
        known = class_file.categories.get(name) if class_file else None
        classes = []
        samples = []
        for folder, files in sorted(release.files[name].items()):
            info = GOOD_CLASS if folder == GOOD else (known.classes[folder] if known else None)
            if info is None:
                raise DataLayoutError(f"{release.benchmark}: no class file lists category {name!r}")
            if folder != GOOD:
                classes.append(info)
            for file in files:
                relpath = f"{name}/test/{folder}/{file}"
                samples.append(Sample(
                    sample_id=f"{name}/{folder}/{PurePosixPath(file).stem}", category=name, image=Path(relpath),
                    relpath=relpath, label=folder, display_name=info.name,
                ))
        categories_out.append(Category(
            name=name, classes=classes, train_images=[], test_samples=sorted(samples, key=lambda s: s.relpath),
            object_description=known.object_description if known else "", guidance=known.guidance if known else "",
        ))
    return BenchmarkData(
        name=release.benchmark, root=Path("."), categories=categories_out, protocol=protocol,
        notes={"source": "released file list (no data root)", **(
            {"class_aliases": release.class_aliases} if release.class_aliases else {}
        )},
    )
