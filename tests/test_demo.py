"""The built-in demo benchmark: deterministic, complete, exact masks, cached, crash-safe."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import DataLayoutError
from harness.types import GOOD

from harness_datasets import demo
from harness_datasets.benchmarks import DemoBenchmark
from harness_datasets.classes import load_class_file

SMALL = demo.DemoCounts(train=2, good=1, per_defect=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(scope="module")
def demo_data(cache):
    """The full demo, generated once for this module into a private cache folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(demo.CACHE_ENV, str(cache))
        return DemoBenchmark().load(None)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


# --- layout and contents ----------------------------------------------------------------


def test_demo_lives_in_the_cache_dir(demo_data, cache):
    assert demo_data.root == cache / f"demo-v{demo.GENERATOR_VERSION}-seed0"
    assert demo.is_complete(demo_data.root)
    assert demo_data.notes["seed"] == 0 and demo_data.notes["generator_version"] == demo.GENERATOR_VERSION


def test_demo_layout_and_counts(demo_data):
    counts = demo.DEFAULT_COUNTS
    assert [c.name for c in demo_data.categories] == ["label", "tile", "washer"]
    for category in demo_data.categories:
        assert len(category.classes) >= 5
        assert len(category.train_images) == counts.train
        labels = [s.label for s in category.test_samples]
        assert labels.count(GOOD) == counts.good
        for info in category.classes:
            assert labels.count(info.key) == counts.per_defect
        for path in category.train_images[:3] + [s.image for s in category.test_samples[:3]]:
            with Image.open(path) as image:
                assert image.size == (256, 256) and image.mode == "RGB" and image.format == "PNG"


def test_demo_names_and_descriptions_come_from_demo_toml(demo_data):
    class_file = load_class_file("demo")
    assert class_file is not None
    assert set(class_file.categories) == set(demo.RECIPES)
    for category in demo_data.categories:
        assert category.object_description
        listed = class_file.categories[category.name].classes
        assert set(listed) == set(demo.RECIPES[category.name].defects)
        for info in category.classes:
            assert len(info.description) > 20, f"{category.name}/{info.key} needs a real description"
            assert info.name == listed[info.key].name
    tile = next(c for c in demo_data.categories if c.name == "tile")
    assert tile.class_info("chip").name == "chipped edge"


def test_every_anomalous_sample_has_a_binary_nonempty_mask_on_the_object(demo_data):
    for category in demo_data.categories:
        for sample in category.test_samples:
            if not sample.is_anomalous:
                assert sample.mask is None
                continue
            assert sample.mask is not None and sample.mask.is_file(), sample.sample_id
            mask = pixels(sample.mask)
            assert mask.shape == (256, 256)
            assert set(np.unique(mask)) <= {0, 255}
            assert (mask == 255).sum() >= demo.MIN_DEFECT_PIXELS


def test_masks_are_exactly_the_pixels_the_defect_changed(demo_data):
    """Redraw each picture without its defect: the saved mask is precisely where they differ."""
    for category in demo_data.categories:
        for sample in category.test_samples:
            index = int(sample.image.stem)
            if sample.is_anomalous and index >= 2:
                continue  # two per class keep this quick
            drawn = demo.render_sample(category.name, sample.label, index, seed=0)
            image = pixels(sample.image)
            assert np.array_equal(image, drawn.image), sample.sample_id
            if not sample.is_anomalous:
                continue
            changed = (image != drawn.base).any(axis=2)
            mask = pixels(sample.mask) == 255
            assert np.array_equal(mask, changed), sample.sample_id
            assert not (mask & ~drawn.body).any(), f"{sample.sample_id}: defect off the object"


def test_normal_pictures_vary(demo_data):
    for category in demo_data.categories:
        first, second = (pixels(p).astype(int) for p in category.train_images[:2])
        assert np.abs(first - second).mean() > 3, category.name


# --- determinism ----------------------------------------------------------------------


def test_generation_is_deterministic_and_seeded(tmp_path, demo_data):
    demo.generate_demo(tmp_path / "a", seed=0, counts=SMALL)
    demo.generate_demo(tmp_path / "b", seed=0, counts=SMALL)
    demo.generate_demo(tmp_path / "c", seed=1, counts=SMALL)
    a, b, c = (files_of(tmp_path / name) for name in "abc")

    assert a == b
    assert len(a) == 3 * (SMALL.train + SMALL.good + 2 * 5 * SMALL.per_defect)
    # Each picture has its own random stream: a small tree is the start of the full one.
    full = files_of(demo_data.root)
    assert all(full[name] == content for name, content in a.items())
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)


# --- caching and crash safety ---------------------------------------------------------


def test_second_load_reuses_the_cache(demo_data, cache, monkeypatch):
    monkeypatch.setenv(demo.CACHE_ENV, str(cache))
    marker = demo_data.root / demo.MARKER
    stamp = marker.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("the demo was generated again")

    monkeypatch.setattr(demo, "generate_demo", refuse)
    started = time.perf_counter()
    again = DemoBenchmark().load(None, ["washer"])
    assert time.perf_counter() - started < 2.0
    assert [c.name for c in again.categories] == ["washer"]
    assert marker.stat().st_mtime_ns == stamp


def test_cache_dir_defaults_to_the_home_cache(monkeypatch):
    monkeypatch.delenv(demo.CACHE_ENV, raising=False)
    assert demo.cache_dir() == Path("~/.cache/anomaly-harness").expanduser().absolute()


def test_partial_tree_is_not_taken_for_a_complete_one(tmp_path, monkeypatch):
    monkeypatch.setenv(demo.CACHE_ENV, str(tmp_path))
    target = demo.default_demo_root(seed=7)
    # What a generation killed half-way (without the atomic rename) would leave: files, no marker.
    (target / "tile" / "train" / "good").mkdir(parents=True)
    (target / "tile" / "train" / "good" / "000.png").write_bytes(b"truncated")
    assert not demo.is_complete(target, 7, SMALL)

    assert demo.ensure_demo_data(None, seed=7, counts=SMALL) == target
    assert demo.is_complete(target, 7, SMALL)
    assert pixels(target / "tile" / "train" / "good" / "000.png").shape == (256, 256, 3)


def test_marker_of_another_version_or_seed_is_not_complete(tmp_path):
    demo.generate_demo(tmp_path / "d", seed=3, counts=SMALL)
    assert demo.is_complete(tmp_path / "d", 3, SMALL)
    assert not demo.is_complete(tmp_path / "d", 4, SMALL)
    assert not demo.is_complete(tmp_path / "d", 3, demo.DEFAULT_COUNTS)
    marker = tmp_path / "d" / demo.MARKER
    content = json.loads(marker.read_text())
    marker.write_text(json.dumps({**content, "version": demo.GENERATOR_VERSION + 1}))
    assert not demo.is_complete(tmp_path / "d", 3, SMALL)
    marker.write_text("{not json")
    assert not demo.is_complete(tmp_path / "d", 3, SMALL)


def test_abandoned_temporary_trees_are_cleaned_up(tmp_path, monkeypatch):
    monkeypatch.setenv(demo.CACHE_ENV, str(tmp_path))
    target = demo.default_demo_root(seed=5)
    dead = tmp_path / f".{target.name}.tmp-999999999-deadbeef"  # no such process
    alive = tmp_path / f".{target.name}.tmp-{os.getpid()}-cafecafe"  # "another" running generation
    for leftover in (dead, alive):
        (leftover / "tile").mkdir(parents=True)

    demo.ensure_demo_data(None, seed=5, counts=SMALL)
    assert demo.is_complete(target, 5, SMALL)
    assert not dead.exists()
    assert alive.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name and p != alive]


def test_user_folder_that_is_not_a_demo_tree_is_refused(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "precious.txt").write_text("do not delete")
    with pytest.raises(DataLayoutError) as caught:
        DemoBenchmark().load(root)
    assert str(root) in str(caught.value)
    assert (root / "precious.txt").read_text() == "do not delete"


def test_empty_user_folder_is_filled(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    assert demo.ensure_demo_data(root, seed=0, counts=SMALL) == root.absolute()
    assert demo.is_complete(root, 0, SMALL)
