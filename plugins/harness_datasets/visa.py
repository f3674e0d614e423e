"""The original VisA release, read through its official split file.

::

    <root>/split_csv/1cls.csv                    object,split,label,image,mask
    <root>/<object>/Data/Images/Normal/*.JPG
    <root>/<object>/Data/Images/Anomaly/*.JPG
    <root>/<object>/Data/Masks/Anomaly/*.png

Paths in the csv are relative to the root. The original release names no
defect types, so every anomalous image gets the single class ``anomaly``
(VisA-AC, a separate benchmark, has the cleaned class labels).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Sequence

from harness.datasets import Benchmark
from harness.types import GOOD, BenchmarkData, Category, ClassInfo, Sample

from harness_datasets.classes import ClassFile
from harness_datasets.files import checked_root

VISA_LAYOUT = """\
  <root>/split_csv/1cls.csv                  columns: object,split,label,image,mask
  <root>/<object>/Data/Images/Normal/*.JPG   normal images
  <root>/<object>/Data/Images/Anomaly/*.JPG  anomalous images
  <root>/<object>/Data/Masks/Anomaly/*.png   their masks
  (paths in the csv are relative to <root>)"""

SPLIT_CSV = PurePosixPath("split_csv") / "1cls.csv"
REQUIRED_COLUMNS = ("object", "split", "label", "image", "mask")
ANOMALY_CLASS = ClassInfo(
    key="anomaly",
    name="anomaly",
    description="any visible defect; the original VisA release does not name defect types",
)
_LABELS = {"normal": GOOD, "anomaly": ANOMALY_CLASS.key}


def load_visa_split(
    benchmark: Benchmark,
    root: Path | str | None,
    categories: Sequence[str] | None = None,
    class_file: ClassFile | None = None,
) -> BenchmarkData:
    """Read the original VisA tree via ``split_csv/1cls.csv``; raise a layout error naming the path.

    ``class_file`` (VisA-AC's, when present) only contributes object
    descriptions: the classes here are always ``good`` and ``anomaly``, so its
    guidance, which tells VisA-AC's defect classes apart, is left out.
    """
    root = checked_root(benchmark, root)
    rows = read_split(benchmark, root)
    by_object: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_object[row["object"]].append(row)
    found = sorted(by_object)
    if not found:
        raise benchmark.layout_error(root, f"{root / SPLIT_CSV} lists no images")

    wanted = found
    if categories:
        unknown = [c for c in categories if c not in by_object]
        if unknown:
            raise benchmark.layout_error(
                root, f"category {unknown[0]!r} not in {root / SPLIT_CSV}; objects listed: {', '.join(found)}"
            )
        wanted = sorted(set(categories))

    loaded = [_category(benchmark, root, name, by_object[name], class_file) for name in wanted]
    return BenchmarkData(
        name=benchmark.name, root=root, categories=loaded, protocol=benchmark.protocol, notes={"split": "1cls"}
    )


def read_split(benchmark: Benchmark, root: Path) -> list[dict[str, str]]:
    """The rows of ``split_csv/1cls.csv`` (stripped), or a layout error naming the file."""
    path = root.joinpath(*SPLIT_CSV.parts)
    if not path.is_file():
        raise benchmark.layout_error(root, f"split file not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise benchmark.layout_error(root, f"{path} lacks the column(s) {', '.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if row["label"] not in _LABELS:
                raise benchmark.layout_error(
                    root, f"{path}, line {line}: label {row['label']!r} is neither 'normal' nor 'anomaly'"
                )
            rows.append({k: (row[k] or "").strip() for k in REQUIRED_COLUMNS})
    return rows


def _category(
    benchmark: Benchmark, root: Path, name: str, rows: list[dict[str, str]], class_file: ClassFile | None
) -> Category:
    train: list[Path] = []
    samples: list[Sample] = []
    missing: list[Path] = []
    for row in rows:
        image = _under_root(root, row["image"])
        if not image.is_file():
            missing.append(image)
            continue
        label = _LABELS[row["label"]]
        if row["split"] == "train" and label == GOOD:
            train.append(image)
        elif row["split"] == "test":
            mask = _under_root(root, row["mask"]) if row["mask"] and label != GOOD else None
            samples.append(
                Sample(
                    sample_id=f"{name}/{label}/{image.stem}",
                    category=name,
                    image=image,
                    relpath=PurePosixPath(row["image"]).as_posix(),
                    label=label,
                    display_name=GOOD if label == GOOD else ANOMALY_CLASS.name,
                    mask=mask if mask is not None and mask.is_file() else None,
                )
            )
    if missing:
        raise benchmark.layout_error(
            root, f"{len(missing)} image(s) of {name!r} listed in {SPLIT_CSV} do not exist, e.g. {missing[0]}"
        )
    if not train:
        raise benchmark.layout_error(root, f"{SPLIT_CSV} lists no normal training images for {name!r}")
    if not samples:
        raise benchmark.layout_error(root, f"{SPLIT_CSV} lists no test images for {name!r}")

    known = class_file.categories.get(name) if class_file else None
    has_anomalies = any(s.is_anomalous for s in samples)
    return Category(
        name=name,
        classes=[ANOMALY_CLASS] if has_anomalies else [],
        train_images=sorted(train),
        test_samples=sorted(samples, key=lambda s: s.relpath),
        object_description=known.object_description if known else "",
        guidance="",  # VisA-AC's guidance names classes this benchmark does not have
    )


def _under_root(root: Path, relpath: str) -> Path:
    return root.joinpath(*PurePosixPath(relpath).parts)
