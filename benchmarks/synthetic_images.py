"""Bottle-sized test images made on the spot, for the GPU benchmarks on a machine where ../shared/data is not.

The demo's ``tile`` category (`harness_datasets.demo`), every image enlarged to 900 x 900 (bottle's
size: decoding and resizing cost what they cost on MVTec-AD) and its test set grown to about the
number of images asked for. Used by ``gpu_check.py`` and ``gate.py --benchmark synthetic``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from harness.plugins import load_registry
from harness.types import Category

SIDE = 900  # bottle's images are 900 x 900
CATEGORY = "tile"


def write_tree(folder: Path, images: int) -> Path:
    """Write the demo tree under ``folder``, its ``tile`` images enlarged; its root (a folder-benchmark tree)."""
    from harness_datasets import demo

    root = folder / "demo"
    per_defect = max(1, images // 8)
    demo.write_demo_tree(root, seed=0, counts=demo.DemoCounts(train=40, good=per_defect, per_defect=per_defect))
    for path in (root / CATEGORY).rglob("*.png"):  # the only category read: the others stay as written
        with Image.open(path) as image:
            is_mask = image.mode in ("1", "L") and "ground_truth" in path.parts
            image.resize((SIDE, SIDE), Image.Resampling.NEAREST if is_mask else Image.Resampling.BILINEAR).save(path)
    return root


def tile_category(root: Path) -> Category:
    """The ``tile`` category of a tree `write_tree` made."""
    return load_registry().get("benchmarks", "folder").obj.load(root, [CATEGORY]).categories[0]
