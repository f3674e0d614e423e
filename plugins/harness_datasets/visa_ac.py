"""VisA-AC read straight from the original VisA tree, through the release's mapping.

A VisA-AC image ``<category>/test/<folder>/<file>`` is the original VisA image
``<category>/Data/Images/<Normal|Anomaly>/<file>`` (same file name, Normal for
``good``), with its mask at ``<category>/Data/Masks/Anomaly/<stem>.png``; the
release's manifests confirm this for every image (tests/test_ac_release.py).
The class comes from the release's file list, not from the VisA tree, which
does not name defect types. Training normals are VisA's own 1cls split.

Samples keep VisA-AC's relative paths and ids, so a run on the original tree
has the same manifest hash as one on the VisA-AC download.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence

from harness.datasets import Benchmark
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, Category, ClassInfo, Sample

from harness_datasets import ac_facts
from harness_datasets.classes import ClassFile
from harness_datasets.release import Difference, Release
from harness_datasets.visa import SPLIT_CSV, read_split

VISA_AC_LAYOUT = """\
  either the VisA-AC download, in the MVTec layout:
  <root>/<category>/train/good/*.JPG                     normal training images
  <root>/<category>/test/<class folder>/*.JPG            test images (good = normal)
  <root>/<category>/ground_truth/<class folder>/*.png    masks (optional)
  or the original VisA tree, mapped by the release's file list:
  <root>/split_csv/1cls.csv                              VisA's split (training normals)
  <root>/<category>/Data/Images/{Normal,Anomaly}/*.JPG
  <root>/<category>/Data/Masks/Anomaly/*.png"""


def is_original_visa(root: Path, categories: Sequence[str]) -> bool:
    """True when ``root`` looks like the original VisA tree rather than the MVTec-style VisA-AC download."""
    if any((root / category / "test").is_dir() for category in categories):
        return False
    return (root.joinpath(*SPLIT_CSV.parts)).is_file() or any(
        (root / category / "Data" / "Images").is_dir() for category in categories
    )


def original_image(root: Path, category: str, folder: str, file: str) -> Path:
    """Where the VisA-AC image ``<category>/test/<folder>/<file>`` lies in the original VisA tree."""
    kind = "Normal" if folder == GOOD else "Anomaly"
    relpath = ac_facts.VISA_ORIGINAL_IMAGES.format(category=category, kind=kind, file=file)
    return root.joinpath(*PurePosixPath(relpath).parts)


def original_folder(root: Path, category: str, folder: str) -> Path:
    """The VisA folder a class's images are looked for in (for messages)."""
    return original_image(root, category, folder, "x").parent


def load_original_visa(
    benchmark: Benchmark, root: Path, release: Release, categories: Sequence[str], class_file: ClassFile | None
) -> tuple[BenchmarkData | None, Difference, set[str]]:
    """(data on the released files found, difference, relpaths found) for the original VisA tree.

    Extra files cannot exist here: the rest of VisA is simply not part of VisA-AC.
    """
    train = _training_normals(benchmark, root, categories)
    loaded: list[Category] = []
    missing: list[str] = []
    found: set[str] = set()
    for name in categories:
        known = class_file.categories.get(name) if class_file else None
        samples: list[Sample] = []
        classes = []
        for folder, files in sorted(release.files[name].items()):
            info = None
            for file in files:
                relpath = f"{name}/test/{folder}/{file}"
                image = original_image(root, name, folder, file)
                if not image.is_file():
                    missing.append(relpath)
                    continue
                if info is None:
                    info = _class(benchmark, root, name, folder, known)
                    if folder != GOOD:
                        classes.append(info)
                found.add(relpath)
                samples.append(Sample(
                    sample_id=f"{name}/{folder}/{image.stem}", category=name, image=image, relpath=relpath,
                    label=folder, display_name=info.name, mask=_mask(root, name, image.stem) if folder != GOOD else None,
                ))
        if not samples:
            continue
        if not train.get(name):
            raise benchmark.layout_error(root, f"{root / SPLIT_CSV} lists no normal training images of {name!r}")
        loaded.append(Category(
            name=name, classes=classes, train_images=train[name], test_samples=sorted(samples, key=lambda s: s.relpath),
            object_description=known.object_description if known else "", guidance=known.guidance if known else "",
        ))
    data = None
    if loaded:
        data = BenchmarkData(
            name=benchmark.name, root=root, categories=loaded, protocol=benchmark.protocol,
            notes={"layout": "original VisA tree, mapped by the VisA-AC file list"},
        )
    return data, Difference(sorted(missing), []), found


def _training_normals(benchmark: Benchmark, root: Path, categories: Sequence[str]) -> dict[str, list[Path]]:
    train: dict[str, list[Path]] = {}
    for row in read_split(benchmark, root):
        if row["object"] in categories and row["split"] == "train" and row["label"] == "normal":
            image = root.joinpath(*PurePosixPath(row["image"]).parts)
            if image.is_file():
                train.setdefault(row["object"], []).append(image)
    return {name: sorted(paths) for name, paths in train.items()}


def _class(benchmark: Benchmark, root: Path, category: str, folder: str, known) -> ClassInfo:
    if folder == GOOD:
        return GOOD_CLASS
    if known is None or folder not in known.classes:
        raise benchmark.layout_error(root, f"no class file describes {category!r} class {folder!r}")
    return known.classes[folder]


def _mask(root: Path, category: str, stem: str) -> Path | None:
    relpath = ac_facts.VISA_ORIGINAL_MASKS.format(category=category, stem=stem)
    mask = root.joinpath(*PurePosixPath(relpath).parts)
    return mask if mask.is_file() else None
