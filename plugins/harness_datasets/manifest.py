"""The ``manifest`` benchmark: images listed in a CSV or JSONL file instead of a folder layout.

Each row (CSV) or line (JSONL object) names one image::

    image,category,split,label,mask
    widget/train/0001.png,widget,train,good,
    widget/test/0042.jpg,widget,test,scratch,widget/masks/0042.png

``split`` is ``train`` or ``test``; ``label`` is ``good`` or a defect class key
(train rows must be ``good`` or empty); ``mask`` is optional. Paths are relative
to the manifest's folder, or absolute. Every problem is reported with the
manifest file and line, since a typo would otherwise silently change the test set.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from harness.datasets import Benchmark
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, Category, ClassInfo, Sample

from harness_datasets.files import display_name

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
REQUIRED_FIELDS = ("image", "category", "split", "label")
SPLITS = ("train", "test")

MANIFEST_LAYOUT = """\
  a CSV or JSONL manifest (or a folder holding manifest.csv, manifest.jsonl, or a single .csv/.jsonl), one image per row:
    image      path of the image, relative to the manifest's folder or absolute
    category   the category (object) the image belongs to
    split      train (normal images the gate learns from) or test
    label      good, or the defect class of an anomalous test image
    mask       path of a binary defect mask (optional)
  (images may be .png, .jpg, .jpeg, .bmp or .tif/.tiff, greyscale or colour, any size)"""


@dataclass(frozen=True)
class ManifestRow:
    """One listed image, with where it was listed (for messages)."""

    line: int
    image: Path
    category: str
    split: str
    label: str
    mask: Path | None


def find_manifest(benchmark: Benchmark, root: Path | str | None) -> Path:
    """The manifest file: the data root itself, or in that folder manifest.csv / manifest.jsonl, else its only .csv or .jsonl."""
    if root is None:
        raise benchmark.layout_error(
            Path("<none>"), f"benchmark {benchmark.name!r} needs a manifest file (pass --data-root FILE)"
        )
    path = Path(root).expanduser().absolute()
    if path.is_file():
        return path
    if not path.exists():
        raise benchmark.layout_error(path, "manifest file or folder does not exist")
    present = [path / name for name in MANIFEST_NAMES if (path / name).is_file()]
    if len(present) > 1:
        raise benchmark.layout_error(path, f"both {' and '.join(MANIFEST_NAMES)} are here: pass the one to use")
    if not present:
        # The only manifest-like file will do: run.json records the manifest's folder, which a report reloads.
        present = sorted(p for p in path.iterdir() if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file())
        if len(present) != 1:
            found = f"found {', '.join(p.name for p in present)}" if present else "found none"
            raise benchmark.layout_error(
                path, f"no {' or '.join(MANIFEST_NAMES)} in this folder, nor a single .csv or .jsonl file ({found})"
            )
    return present[0]


def read_manifest(benchmark: Benchmark, manifest: Path) -> list[ManifestRow]:
    """Every row of a manifest, checked; a bad row raises a layout error naming file and line."""
    base = manifest.parent
    rows = []
    for line, fields in _raw_rows(benchmark, manifest):
        rows.append(_checked_row(benchmark, manifest, base, line, fields))
    if not rows:
        raise benchmark.layout_error(manifest, f"{manifest}: the manifest lists no images")
    return rows


def _raw_rows(benchmark: Benchmark, manifest: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, field -> text) per listed image, for CSV (header row) or JSONL."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise benchmark.layout_error(manifest, f"{manifest}: cannot read the manifest ({error})") from error
    if manifest.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(benchmark, manifest, text)
    else:
        yield from _csv_rows(benchmark, manifest, text)


def _csv_rows(benchmark: Benchmark, manifest: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise benchmark.layout_error(
            manifest,
            f"{manifest}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header) or 'empty'}; "
            f"expected {', '.join(REQUIRED_FIELDS)} and optionally mask)",
        )
    for row in reader:
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # a blank line
        yield reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}


def _jsonl_rows(benchmark: Benchmark, manifest: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except json.JSONDecodeError as error:
            raise benchmark.layout_error(manifest, f"{manifest}:{line}: not a JSON object ({error.msg})") from error
        if not isinstance(value, dict):
            raise benchmark.layout_error(manifest, f"{manifest}:{line}: expected a JSON object, got {content[:60]!r}")
        missing = [name for name in REQUIRED_FIELDS if name not in value]
        if missing:
            raise benchmark.layout_error(
                manifest, f"{manifest}:{line}: missing field(s) {', '.join(missing)}"
            )
        yield line, {k: "" if v is None else str(v).strip() for k, v in value.items()}


def _checked_row(benchmark: Benchmark, manifest: Path, base: Path, line: int, fields: dict[str, str]) -> ManifestRow:
    where = f"{manifest}:{line}"
    category, split, label = fields["category"], fields["split"].lower(), fields["label"]
    if not category:
        raise benchmark.layout_error(manifest, f"{where}: empty category")
    if "/" in category:
        raise benchmark.layout_error(manifest, f"{where}: category {category!r} may not contain '/'")
    if split not in SPLITS:
        raise benchmark.layout_error(manifest, f"{where}: unknown split {fields['split']!r} (expected train or test)")
    if split == "train" and label not in ("", GOOD):
        raise benchmark.layout_error(
            manifest, f"{where}: training images must be normal (label good or empty), got label {label!r}"
        )
    if split == "test" and not label:
        raise benchmark.layout_error(manifest, f"{where}: test image without a label (good or a defect class)")
    image = _existing(benchmark, manifest, base, where, "image", fields["image"])
    mask_text = fields.get("mask", "")
    mask = _existing(benchmark, manifest, base, where, "mask", mask_text) if mask_text else None
    if mask is not None and label in ("", GOOD):
        raise benchmark.layout_error(manifest, f"{where}: a normal image has a mask ({mask_text}); only defects do")
    return ManifestRow(line, image, category, split, label or GOOD, mask)


def _existing(benchmark: Benchmark, manifest: Path, base: Path, where: str, what: str, text: str) -> Path:
    if not text:
        raise benchmark.layout_error(manifest, f"{where}: empty {what} path")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise benchmark.layout_error(manifest, f"{where}: {what} file not found: {path}")
    return path


def load_manifest(benchmark: Benchmark, root: Path | str | None, categories: Sequence[str] | None) -> BenchmarkData:
    """Read a manifest into `BenchmarkData`; the data root recorded is the manifest's folder."""
    manifest = find_manifest(benchmark, root)
    rows = read_manifest(benchmark, manifest)
    found = sorted({row.category for row in rows})
    wanted = sorted(set(categories)) if categories else found
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise benchmark.layout_error(
            manifest, f"category {unknown[0]!r} is not in {manifest}; categories listed: {', '.join(found)}"
        )
    base = manifest.parent
    loaded = [_category(benchmark, manifest, base, name, [r for r in rows if r.category == name]) for name in wanted]
    data = BenchmarkData(name=benchmark.name, root=base, categories=loaded, protocol=benchmark.protocol)
    data.notes["manifest"] = manifest.name
    return data


def _category(benchmark: Benchmark, manifest: Path, base: Path, name: str, rows: list[ManifestRow]) -> Category:
    train = [row.image for row in rows if row.split == "train"]
    tests = [row for row in rows if row.split == "test"]
    if not train:
        raise benchmark.layout_error(
            manifest, f"{manifest}: category {name!r} has no train rows (the gate learns normality from them)"
        )
    if not tests:
        raise benchmark.layout_error(manifest, f"{manifest}: category {name!r} has no test rows")
    train_lines = {row.image.resolve(): row.line for row in rows if row.split == "train"}
    for row in tests:
        if row.image.resolve() in train_lines:  # the gate would learn the very image it then judges
            raise benchmark.layout_error(
                manifest, f"{manifest}:{row.line}: {row.image} is a test image and also a train image "
                f"(line {train_lines[row.image.resolve()]})"
            )
    classes = {row.label: ClassInfo(row.label, display_name(row.label)) for row in tests if row.label != GOOD}
    samples = [_sample(base, name, row, classes) for row in tests]
    seen: dict[str, int] = {}
    for sample, row in zip(samples, tests):
        if sample.sample_id in seen:
            raise benchmark.layout_error(
                manifest, f"{manifest}:{row.line}: {sample.relpath} is listed twice (also on line {seen[sample.sample_id]})"
            )
        seen[sample.sample_id] = row.line
    return Category(
        name=name,
        classes=sorted(classes.values(), key=lambda c: c.key),
        train_images=sorted(set(train)),
        test_samples=sorted(samples, key=lambda s: s.relpath),
    )


def _sample(base: Path, category: str, row: ManifestRow, classes: dict[str, ClassInfo]) -> Sample:
    info = GOOD_CLASS if row.label == GOOD else classes[row.label]
    relpath = _relative(row.image, base)
    return Sample(
        sample_id=f"{category}/{relpath}",
        category=category,
        image=row.image,
        relpath=relpath,
        label=info.key,
        display_name=info.name,
        mask=row.mask,
    )


def _relative(path: Path, base: Path) -> str:
    """The image path from the manifest's folder; an absolute path outside it stays absolute."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
