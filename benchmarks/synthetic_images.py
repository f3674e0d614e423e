"""Bottle-sized test images made on the spot, for the GPU benchmarks on a machine where ../shared/data is not.

The demo's ``tile`` category (`harness_datasets.demo`), every image enlarged to 900 x 900 (bottle's
size: decoding and resizing cost what they cost on MVTec-AD) and its test set grown to about the
number of images asked for. Used by ``gpu_check.py`` and ``gate.py --benchmark synthetic``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from harness.plugins import load_registry
from harness.types import Category
from harness_patchcore.runtime import usable_cpus

SIDE = 900  # bottle's images are 900 x 900
CATEGORY = "tile"


def write_tree(folder: Path, images: int) -> Path:
    """Write the demo's ``tile`` pictures, enlarged, under ``folder``; the tree's root (a folder-benchmark tree).

    The same pictures the demo generator draws (`demo.render_sample`), one thread per core (PIL's resize
    and PNG encoder release the GIL): drawing the whole demo tree on one thread took 74 s for 200 images.
    """
    from harness_datasets import demo

    root = folder / "demo" / CATEGORY
    per_defect = max(1, images // 8)
    jobs = [("train", demo.GOOD, index) for index in range(40)]
    jobs += [("test", label, index) for label in demo.category_labels(CATEGORY) for index in range(per_defect)]

    def write(job: tuple[str, str, int]) -> None:
        split, label, index = job
        sample = demo.render_sample(CATEGORY, label, index, seed=0, split=split)
        pictures = root / split / label
        pictures.mkdir(parents=True, exist_ok=True)
        enlarged = Image.fromarray(sample.image).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        enlarged.save(pictures / f"{index:03d}.png")
        if split == "test" and sample.mask is not None:
            masks = root / "ground_truth" / label
            masks.mkdir(parents=True, exist_ok=True)
            mask = Image.fromarray(sample.mask.astype(np.uint8) * 255).resize((SIDE, SIDE), Image.Resampling.NEAREST)
            mask.save(masks / f"{index:03d}_mask.png")

    with ThreadPoolExecutor(usable_cpus()) as pool:
        list(pool.map(write, jobs))
    return root.parent


def tile_category(root: Path) -> Category:
    """The ``tile`` category of a tree `write_tree` made."""
    return load_registry().get("benchmarks", "folder").obj.load(root, [CATEGORY]).categories[0]
