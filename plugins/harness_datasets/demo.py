"""The built-in demo dataset: generated from a seed, written once, reused afterwards.

Three categories (``label``, ``tile``, ``washer``; see their modules for what
each defect looks like) in the MVTec layout, 256x256 RGB PNGs, with exact
ground-truth masks: a mask marks precisely the pixels in which the defective
picture differs from the same picture drawn without its defect.

Every picture has its own random stream, derived from the seed and its place
in the tree (category, split, class, index), so any single picture can be
redrawn on its own (`render_sample`) and a smaller tree holds the same files
as the first pictures of a larger one.

Generation writes into a temporary folder beside the target and renames it
into place only when complete, with a marker file (`MARKER`) naming the
generator version, seed and counts: a killed generation never leaves a tree
that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.run import paths
from harness.errors import HarnessError
from harness.types import GOOD

from harness_datasets import demo_label, demo_tile, demo_washer
from harness_datasets.demo_draw import CategoryRecipe

#: Bump when a change to the drawing code changes any picture: the cache folder name changes with it.
GENERATOR_VERSION = 1
MARKER = "DONE.json"
CACHE_ENV = paths.CACHE_ENV
#: A defect that changed fewer pixels than this (e.g. clipped at the object's edge) is drawn again.
MIN_DEFECT_PIXELS = 25
_MAX_DEFECT_ATTEMPTS = 20

log = logging.getLogger(__name__)

RECIPES: dict[str, CategoryRecipe] = {r.name: r for r in (demo_label.RECIPE, demo_tile.RECIPE, demo_washer.RECIPE)}


@dataclass(frozen=True)
class DemoCounts:
    """How many pictures each category gets."""

    train: int = 40
    good: int = 10  # normal test pictures
    per_defect: int = 8


DEFAULT_COUNTS = DemoCounts()


@dataclass
class RenderedSample:
    """One drawn picture: the image, its defect mask (None for normal ones), and its defect-free twin."""

    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray | None  # HxW bool
    base: np.ndarray  # the same picture without the defect
    body: np.ndarray  # HxW bool: the object's pixels


class DemoRootError(HarnessError):
    """The demo's folder exists but cannot be used (not ours, or not a folder)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def cache_dir() -> Path:
    """Where generated data is kept: the harness cache folder (``$HARNESS_CACHE_DIR``)."""
    return paths.cache_dir().absolute()


def default_demo_root(seed: int = 0) -> Path:
    """The demo's folder in the cache, named by generator version and seed."""
    return cache_dir() / f"demo-v{GENERATOR_VERSION}-seed{seed}"


def category_labels(category: str) -> list[str]:
    """The test labels of a demo category: ``good`` first, then its defect keys sorted."""
    return [GOOD] + sorted(RECIPES[category].defects)


def sample_rng(seed: int, category: str, split: str, label: str, index: int) -> np.random.Generator:
    """The random stream of one picture, fixed by its seed and its place in the tree."""
    key = [seed, zlib.crc32(category.encode()), zlib.crc32(f"{split}/{label}".encode()), index]
    return np.random.default_rng(key)


def render_sample(category: str, label: str, index: int, seed: int = 0, split: str = "test") -> RenderedSample:
    """Draw one picture of the demo exactly as the generator writes it."""
    recipe = RECIPES[category]
    rng = sample_rng(seed, category, split, label, index)
    scene = recipe.normal(rng)
    base = scene.render()
    if label == GOOD:
        return RenderedSample(image=base, mask=None, base=base, body=scene.body)
    defect = recipe.defects[label]
    for _ in range(_MAX_DEFECT_ATTEMPTS):
        damaged = scene.copy()
        defect(damaged, rng)
        image = damaged.render()
        mask = (image != base).any(axis=2)
        if mask.sum() >= MIN_DEFECT_PIXELS:
            return RenderedSample(image=image, mask=mask, base=base, body=scene.body)
    raise RuntimeError(f"demo generator: {category}/{label}/{index} left no visible defect")  # a drawing bug


def write_demo_tree(folder: Path, seed: int = 0, counts: DemoCounts = DEFAULT_COUNTS) -> None:
    """Write every picture, mask and the marker into ``folder`` (not atomic; see `generate_demo`)."""
    for category in RECIPES:
        for index in range(counts.train):
            picture = render_sample(category, GOOD, index, seed, "train").image
            _save(picture, folder / category / "train" / GOOD, f"{index:03d}.png")
        for label in category_labels(category):
            for index in range(counts.good if label == GOOD else counts.per_defect):
                sample = render_sample(category, label, index, seed)
                _save(sample.image, folder / category / "test" / label, f"{index:03d}.png")
                if sample.mask is not None:
                    mask = sample.mask.astype(np.uint8) * 255
                    _save(mask, folder / category / "ground_truth" / label, f"{index:03d}_mask.png")
    marker = {
        "generator": "harness_datasets.demo",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "counts": asdict(counts),
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _save(pixels: np.ndarray, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Level 1: four times faster than the default on noisy pictures, files ~10% larger.
    Image.fromarray(pixels).save(folder / name, format="PNG", compress_level=1)


def is_complete(folder: Path, seed: int = 0, counts: DemoCounts = DEFAULT_COUNTS) -> bool:
    """True when ``folder`` holds a finished tree of this generator version, seed and counts."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("version") == GENERATOR_VERSION
        and marker.get("seed") == seed
        and marker.get("counts") == asdict(counts)
    )


def generate_demo(target: Path, seed: int = 0, counts: DemoCounts = DEFAULT_COUNTS) -> None:
    """Generate the demo tree at ``target`` atomically, replacing an incomplete tree there.

    The tree is written into a temporary sibling and renamed into place, so
    ``target`` is either absent, incomplete from an older crash, or complete.
    If another process finishes first, its tree is kept and ours discarded.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(target)
    log.info("generating the demo dataset (seed %d) in %s; this takes a few seconds, once", seed, target)
    scratch = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_demo_tree(scratch, seed, counts)
        if target.exists() and not is_complete(target, seed, counts):
            shutil.rmtree(target)
        try:
            os.replace(scratch, target)
        except OSError:
            if not is_complete(target, seed, counts):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_abandoned_temporaries(target: Path) -> None:
    """Delete temporary trees left by generations whose process no longer runs."""
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        pid_text = leftover.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would signal the process there; assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_demo_data(root: Path | str | None = None, seed: int = 0, counts: DemoCounts = DEFAULT_COUNTS) -> Path:
    """The folder of a complete demo tree, generating it first when needed.

    With ``root`` None the tree lives in the cache (`default_demo_root`), and an
    incomplete one there is replaced. A ``root`` given by the user is used
    when it is complete, new or empty; one holding anything else is refused
    rather than overwritten.
    """
    owned = root is None
    target = default_demo_root(seed) if owned else Path(root).expanduser().absolute()
    if is_complete(target, seed, counts):
        return target
    if target.exists() and not target.is_dir():
        raise DemoRootError(target, f"demo data folder is a file, not a folder: {target}")
    if not owned and target.is_dir() and any(target.iterdir()):
        raise DemoRootError(
            target,
            f"{target} is not empty and holds no complete demo dataset (no valid {MARKER} for "
            f"generator v{GENERATOR_VERSION}, seed {seed}); give a new or empty folder, or no --data-root",
        )
    generate_demo(target, seed, counts)
    return target
