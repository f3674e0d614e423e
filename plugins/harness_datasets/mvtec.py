"""The MVTec folder layout, shared by MVTec-AD, MVTec-AC, VisA-AC, user folders and the demo.

::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/<class>/*.png           (``good`` for normal images)
    <root>/<category>/ground_truth/<class>/<stem>_mask.png

Categories are the subfolders of the root that have a ``test/`` folder. Class
keys are the test folder names; when a class file is given, every category and
class found must be listed in it (a typo in a folder name would otherwise
become a new class silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from harness.datasets import Benchmark
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, Category, ClassInfo, Sample

from harness_datasets.classes import CategoryClasses, ClassFile
from harness_datasets.files import checked_root, display_name, list_images, list_subfolders

MVTEC_LAYOUT = """\
  <root>/<category>/train/good/*.png                     normal training images
  <root>/<category>/test/good/*.png                      normal test images
  <root>/<category>/test/<class>/*.png                   anomalous test images, one folder per class
  <root>/<category>/ground_truth/<class>/<stem>_mask.png  masks of anomalous test images (optional)
  (images may be .png, .jpg, .jpeg, .bmp or .tif/.tiff, greyscale or colour, any size)"""

MASK_SUFFIX = "_mask"


def load_mvtec_layout(
    benchmark: Benchmark,
    root: Path | str | None,
    categories: Sequence[str] | None = None,
    class_file: ClassFile | None = None,
    keep: Callable[[str], bool] | None = None,
) -> BenchmarkData:
    """Read an MVTec-style tree into `BenchmarkData`, or raise a layout error naming the path.

    ``categories`` restricts the result (all found categories when None or empty).
    ``class_file`` supplies display names and descriptions and makes unknown
    categories and classes an error; without it names come from folder names.
    ``keep``, given a test image's path relative to the root, says whether to
    use it (released benchmarks keep only released files); a class folder with
    no kept image is ignored.
    """
    root = checked_root(benchmark, root)
    found = [p.name for p in list_subfolders(root) if (p / "test").is_dir()]
    wanted = _select_categories(benchmark, root, found, categories)
    loaded = [_load_category(benchmark, root, name, class_file, keep) for name in wanted]
    return BenchmarkData(name=benchmark.name, root=root, categories=loaded, protocol=benchmark.protocol)


def _select_categories(
    benchmark: Benchmark, root: Path, found: list[str], requested: Sequence[str] | None
) -> list[str]:
    if not found:
        raise benchmark.layout_error(root, f"no category folders with a test/ folder in {root}")
    if not requested:
        return found
    for name in requested:
        if name in found:
            continue
        if (root / name).is_dir():
            raise benchmark.layout_error(root, f"category {name!r} has no test/ folder: {root / name / 'test'}")
        raise benchmark.layout_error(
            root, f"category {name!r} not found in {root}; categories found: {', '.join(found)}"
        )
    return sorted(set(requested))


def _load_category(
    benchmark: Benchmark, root: Path, name: str, class_file: ClassFile | None, keep: Callable[[str], bool] | None
) -> Category:
    folder = root / name
    known = _known_classes(benchmark, root, name, class_file)

    train_dir = folder / "train" / GOOD
    if not train_dir.is_dir():
        raise benchmark.layout_error(root, f"category {name!r} has no training folder {train_dir}")
    train_images = list_images(train_dir)
    if not train_images:
        raise benchmark.layout_error(root, f"no training images in {train_dir}")

    samples: list[Sample] = []
    classes: list[ClassInfo] = []
    for class_dir in list_subfolders(folder / "test"):
        images = list_images(class_dir)
        if keep is not None:
            images = [i for i in images if keep(i.relative_to(root).as_posix())]
        if not images:
            continue  # an empty class folder contributes nothing, not even a candidate class
        info = _class_info(benchmark, root, name, class_dir, known, class_file)
        if info.key != GOOD:
            classes.append(info)
        masks = _masks_by_stem(folder / "ground_truth" / info.key) if info.key != GOOD else {}
        samples.extend(_sample(root, name, image, info, masks.get(image.stem)) for image in images)
    if not samples:
        raise benchmark.layout_error(root, f"no test images in {folder / 'test'}")

    samples.sort(key=lambda s: s.relpath)
    return Category(
        name=name,
        classes=sorted(classes, key=lambda c: c.key),
        train_images=train_images,
        test_samples=samples,
        object_description=known.object_description if known else "",
        guidance=known.guidance if known else "",
    )


def _known_classes(
    benchmark: Benchmark, root: Path, category: str, class_file: ClassFile | None
) -> CategoryClasses | None:
    if class_file is None:
        return None
    known = class_file.categories.get(category)
    if known is None:
        listed = ", ".join(sorted(class_file.categories)) or "none"
        raise benchmark.layout_error(
            root / category,
            f"category {category!r} is not listed in the class file {class_file.source} (listed: {listed})",
        )
    return known


def _class_info(
    benchmark: Benchmark,
    root: Path,
    category: str,
    class_dir: Path,
    known: CategoryClasses | None,
    class_file: ClassFile | None,
) -> ClassInfo:
    key = class_dir.name
    if key == GOOD:
        return GOOD_CLASS
    if known is None or class_file is None:
        return ClassInfo(key=key, name=display_name(key))
    if key not in known.classes:
        listed = ", ".join(sorted(known.classes)) or "none"
        raise benchmark.layout_error(
            root,
            f"test class folder {class_dir} is not a known class of {category!r} "
            f"in {class_file.source} (known classes: {listed})",
        )
    return known.classes[key]


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    """Mask files of one class by the stem of the image they belong to.

    MVTec names masks ``<stem>_mask.png``; some re-releases drop the suffix, so
    a plain ``<stem>.png`` is accepted when no ``_mask`` file exists.
    """
    masks: dict[str, Path] = {}
    for path in list_images(folder):
        stem = path.stem
        if stem.endswith(MASK_SUFFIX):
            masks[stem[: -len(MASK_SUFFIX)]] = path
        else:
            masks.setdefault(stem, path)
    return masks


def _sample(root: Path, category: str, image: Path, info: ClassInfo, mask: Path | None) -> Sample:
    return Sample(
        sample_id=f"{category}/{info.key}/{image.stem}",
        category=category,
        image=image,
        relpath=image.relative_to(root).as_posix(),
        label=info.key,
        display_name=info.name,
        mask=mask,
    )
