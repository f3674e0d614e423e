"""The dataset loaders of the first-party `harness_datasets` plugin, on small trees built here."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from harness.errors import DataLayoutError, HarnessError
from harness.plugins import load_registry
from harness.types import GOOD

from harness_datasets.benchmarks import (
    FolderBenchmark,
    MVTecACBenchmark,
    MVTecADBenchmark,
    VisaACBenchmark,
    VisaBenchmark,
)
from harness_datasets.classes import load_class_file, parse_class_file

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MVTEC_AD = SHARED_DATA / "mvtec_ad"
VISA_SPLIT = SHARED_DATA / "visa" / "split_csv" / "1cls.csv"

WIDGET_CLASSES = parse_class_file(
    "test",
    {
        "widget": {
            "object": "a small grey widget",
            "guidance": "look at the rim",
            "classes": {
                "scratch": {"name": "surface scratch", "description": "a thin line"},
                "dent": {"name": "dent", "description": "a round depression"},
            },
        }
    },
)


def write_image(path: Path, shade: int = 128, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (shade, shade, shade)).save(path)
    return path


def make_mvtec_tree(root: Path, category: str = "widget", train: int = 3, classes: dict | None = None) -> Path:
    """An MVTec tree: ``classes`` maps class folder -> number of test images (masks for non-good)."""
    classes = classes if classes is not None else {"good": 2, "scratch": 2, "dent": 1}
    for i in range(train):
        write_image(root / category / "train" / "good" / f"{i:03d}.png")
    for label, count in classes.items():
        for i in range(count):
            write_image(root / category / "test" / label / f"{i:03d}.png", shade=30 * i)
            if label != GOOD:
                write_image(root / category / "ground_truth" / label / f"{i:03d}_mask.png", shade=255)
    return root


# --- MVTec layout ----------------------------------------------------------------------


def test_mvtec_layout_counts_labels_masks_and_relpaths(tmp_path):
    root = make_mvtec_tree(tmp_path / "data")
    data = FolderBenchmark().load(root)

    assert data.name == "folder" and data.root == root and data.protocol == "velm"
    (widget,) = data.categories
    assert widget.name == "widget"
    assert [c.key for c in widget.classes] == ["dent", "scratch"]  # anomaly classes only, sorted
    assert widget.labels == ["good", "dent", "scratch"]
    assert len(widget.train_images) == 3 and all(p.is_absolute() and p.is_file() for p in widget.train_images)
    assert widget.train_images == sorted(widget.train_images)

    samples = widget.test_samples
    assert [s.relpath for s in samples] == sorted(s.relpath for s in samples)
    assert [s.label for s in samples].count(GOOD) == 2
    assert [s.label for s in samples].count("scratch") == 2
    assert [s.label for s in samples].count("dent") == 1
    first_scratch = next(s for s in samples if s.label == "scratch")
    assert first_scratch.sample_id == "widget/scratch/000"
    assert first_scratch.relpath == "widget/test/scratch/000.png"
    assert first_scratch.image == root / "widget" / "test" / "scratch" / "000.png"
    assert first_scratch.mask == root / "widget" / "ground_truth" / "scratch" / "000_mask.png"
    for sample in samples:
        assert sample.image.is_absolute() and sample.image.is_file()
        assert root / sample.relpath == sample.image
        if sample.is_anomalous:
            assert sample.mask is not None and sample.mask.stem == f"{sample.image.stem}_mask"
        else:
            assert sample.mask is None and sample.display_name == "good"


def test_mvtec_categories_sorted_and_filtered(tmp_path):
    root = tmp_path / "data"
    for name in ("zeta", "alpha", "mid"):
        make_mvtec_tree(root, name)
    (root / "not_a_category").mkdir()  # no test/ folder: not a category
    benchmark = FolderBenchmark()

    assert [c.name for c in benchmark.load(root).categories] == ["alpha", "mid", "zeta"]
    assert [c.name for c in benchmark.load(root, ["zeta", "alpha"]).categories] == ["alpha", "zeta"]


def test_mvtec_accepts_image_suffixes_and_ignores_other_files(tmp_path):
    root = make_mvtec_tree(tmp_path / "data", classes={"good": 1, "hole": 1})
    write_image(root / "widget" / "test" / "hole" / "010.JPG")
    write_image(root / "widget" / "test" / "hole" / "011.jpeg")
    write_image(root / "widget" / "test" / "hole" / "012.BMP")
    (root / "widget" / "test" / "hole" / "notes.txt").write_text("not an image")
    (root / "widget" / "test" / "hole" / ".hidden.png").write_bytes(b"")
    write_image(root / "widget" / "ground_truth" / "hole" / "010.png", 255)  # mask named without _mask

    samples = [s for s in FolderBenchmark().load(root).samples if s.label == "hole"]
    assert [s.image.name for s in samples] == ["000.png", "010.JPG", "011.jpeg", "012.BMP"]
    masks = {s.image.name: s.mask for s in samples}
    assert masks["010.JPG"] is not None and masks["010.JPG"].name == "010.png"
    assert masks["011.jpeg"] is None  # a missing mask is not an error


def test_missing_masks_are_none(tmp_path):
    root = make_mvtec_tree(tmp_path / "data")
    for mask in (root / "widget" / "ground_truth").rglob("*.png"):
        mask.unlink()
    assert all(s.mask is None for s in FolderBenchmark().load(root).samples)


def test_class_file_supplies_names_descriptions_and_object(tmp_path):
    root = make_mvtec_tree(tmp_path / "data")
    data = MVTecADBenchmark(class_file=WIDGET_CLASSES).load(root)
    (widget,) = data.categories
    assert widget.object_description == "a small grey widget"
    assert widget.guidance == "look at the rim"
    assert widget.class_info("scratch").name == "surface scratch"
    assert widget.class_info("dent").description == "a round depression"
    assert {s.display_name for s in widget.test_samples if s.label == "scratch"} == {"surface scratch"}


# --- errors that name the path --------------------------------------------------------


def assert_layout_error(call, *needles: object) -> DataLayoutError:
    with pytest.raises(DataLayoutError) as caught:
        call()
    message = str(caught.value)
    for needle in needles:
        assert str(needle) in message, f"{needle!r} not in {message!r}"
    return caught.value


def test_missing_root(tmp_path):
    missing = tmp_path / "nowhere"
    assert_layout_error(lambda: FolderBenchmark().load(missing), missing, "does not exist")


def test_root_that_is_a_file(tmp_path):
    file = tmp_path / "data.png"
    write_image(file)
    assert_layout_error(lambda: MVTecADBenchmark().load(file), file, "not a folder")


def test_no_root_given():
    assert_layout_error(lambda: MVTecACBenchmark().load(None), "mvtec-ac", "--data-root")


def test_root_without_test_folders(tmp_path):
    root = tmp_path / "data"
    write_image(root / "widget" / "train" / "good" / "000.png")
    error = assert_layout_error(lambda: FolderBenchmark().load(root), root, "test/")
    assert "train/good" in str(error)  # the expected layout is quoted


def test_category_without_train_good(tmp_path):
    root = make_mvtec_tree(tmp_path / "data", train=0)
    assert_layout_error(lambda: FolderBenchmark().load(root), root / "widget" / "train" / "good")


def test_unknown_category_requested(tmp_path):
    root = make_mvtec_tree(tmp_path / "data")
    assert_layout_error(lambda: FolderBenchmark().load(root, ["gadget"]), root, "'gadget'", "widget")


def test_requested_category_without_test_folder(tmp_path):
    root = make_mvtec_tree(tmp_path / "data")
    write_image(root / "gadget" / "train" / "good" / "000.png")
    assert_layout_error(lambda: FolderBenchmark().load(root, ["gadget"]), root / "gadget" / "test")


def test_unknown_class_folder_is_an_error_with_a_class_file(tmp_path):
    root = make_mvtec_tree(tmp_path / "data", classes={"good": 1, "scratch": 1, "scuff": 1})
    error = assert_layout_error(
        lambda: MVTecADBenchmark(class_file=WIDGET_CLASSES).load(root),
        root / "widget" / "test" / "scuff",
        "dent, scratch",  # the known classes
    )
    assert "scuff" in str(error)
    # The folder benchmark has no class file: any folder name is a class.
    assert "scuff" in [c.key for c in FolderBenchmark().load(root).categories[0].classes]


def test_category_missing_from_class_file_is_an_error(tmp_path):
    root = make_mvtec_tree(tmp_path / "data", category="gadget")
    assert_layout_error(lambda: VisaACBenchmark(class_file=WIDGET_CLASSES).load(root), "'gadget'", "widget")


def test_unknown_class_folder_with_the_packaged_mvtec_ad_class_file(tmp_path):
    class_file = load_class_file("mvtec-ad")
    if class_file is None or "bottle" not in class_file.categories:
        pytest.skip("prompts/classes/mvtec-ad.toml with a [bottle] table is not there yet")
    root = make_mvtec_tree(tmp_path / "data", category="bottle", classes={"good": 1, "definitely_not_a_class": 1})
    assert_layout_error(lambda: MVTecADBenchmark().load(root), root / "bottle" / "test" / "definitely_not_a_class")


def test_malformed_class_file_is_reported():
    with pytest.raises(HarnessError, match="name"):
        parse_class_file("bad", {"widget": {"classes": {"dent": {"name": 3}}}}, "bad.toml")
    with pytest.raises(HarnessError, match="bad.toml"):
        parse_class_file("bad", {"widget": "not a table"}, "bad.toml")


# --- folder benchmark -----------------------------------------------------------------


def test_folder_display_names_come_from_folder_names(tmp_path):
    root = make_mvtec_tree(tmp_path / "data", classes={"good": 1, "broken_large": 1, "small-holes": 1})
    (category,) = FolderBenchmark().load(root).categories
    assert {c.key: c.name for c in category.classes} == {"broken_large": "broken large", "small-holes": "small holes"}
    assert all(c.description == "" for c in category.classes)
    assert category.object_description == ""


# --- original VisA --------------------------------------------------------------------

FALLBACK_VISA_ROWS = [
    ("candle", "train", "normal", "candle/Data/Images/Normal/0836.JPG", ""),
    ("candle", "train", "normal", "candle/Data/Images/Normal/0451.JPG", ""),
    ("candle", "test", "normal", "candle/Data/Images/Normal/0001.JPG", ""),
    ("candle", "test", "anomaly", "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png"),
    ("candle", "test", "anomaly", "candle/Data/Images/Anomaly/001.JPG", "candle/Data/Masks/Anomaly/001.png"),
    ("pcb1", "train", "normal", "pcb1/Data/Images/Normal/0000.JPG", ""),
    ("pcb1", "test", "normal", "pcb1/Data/Images/Normal/0100.JPG", ""),
    ("pcb1", "test", "anomaly", "pcb1/Data/Images/Anomaly/000.JPG", "pcb1/Data/Masks/Anomaly/000.png"),
]


def visa_rows() -> list[tuple[str, ...]]:
    """A few rows of the real split file (two objects, both splits, both labels), else a stand-in."""
    if not VISA_SPLIT.is_file():
        return FALLBACK_VISA_ROWS
    picked: dict[tuple[str, str, str], int] = {}
    rows = []
    with VISA_SPLIT.open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["object"], row["split"], row["label"])
            if row["object"] in ("candle", "pcb1") and picked.get(key, 0) < 2:
                picked[key] = picked.get(key, 0) + 1
                rows.append(tuple(row[c] for c in ("object", "split", "label", "image", "mask")))
    return rows


def make_visa_tree(root: Path, rows: list[tuple[str, ...]], with_masks: bool = True) -> Path:
    split = root / "split_csv" / "1cls.csv"
    split.parent.mkdir(parents=True)
    with split.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    for _, _, _, image, mask in rows:
        write_image(root / image)
        if mask and with_masks:
            write_image(root / mask, 255)
    return root


def test_visa_loads_through_the_split_file(tmp_path):
    rows = visa_rows()
    root = make_visa_tree(tmp_path / "visa", rows)
    data = VisaBenchmark().load(root)

    assert [c.name for c in data.categories] == ["candle", "pcb1"]
    for category in data.categories:
        mine = [r for r in rows if r[0] == category.name]
        assert len(category.train_images) == sum(r[1] == "train" and r[2] == "normal" for r in mine)
        assert len(category.test_samples) == sum(r[1] == "test" for r in mine)
        assert [c.key for c in category.classes] == ["anomaly"]
        # VisA-AC's class file describes the object; its guidance names classes visa does not have.
        assert category.object_description and category.guidance == ""
        assert [s.relpath for s in category.test_samples] == sorted(r[3] for r in mine if r[1] == "test")
        for sample in category.test_samples:
            assert sample.image == root / sample.relpath
            if sample.is_anomalous:
                assert sample.label == "anomaly" and sample.display_name == "anomaly"
                assert sample.mask is not None and sample.mask.is_file()
                assert sample.sample_id == f"{category.name}/anomaly/{sample.image.stem}"
            else:
                assert sample.label == GOOD and sample.mask is None

    assert [c.name for c in VisaBenchmark().load(root, ["pcb1"]).categories] == ["pcb1"]


def test_visa_missing_masks_are_none(tmp_path):
    root = make_visa_tree(tmp_path / "visa", visa_rows(), with_masks=False)
    assert all(s.mask is None for s in VisaBenchmark().load(root).samples)


def test_visa_missing_split_file(tmp_path):
    root = tmp_path / "visa"
    root.mkdir()
    assert_layout_error(lambda: VisaBenchmark().load(root), root / "split_csv" / "1cls.csv", "object,split,label")


def test_visa_missing_images_and_unknown_category(tmp_path):
    rows = visa_rows()
    root = make_visa_tree(tmp_path / "visa", rows)
    assert_layout_error(lambda: VisaBenchmark().load(root, ["capsules"]), "'capsules'", "candle, pcb1")
    (root / rows[0][3]).unlink()
    assert_layout_error(lambda: VisaBenchmark().load(root), root / rows[0][3])


# --- real data ------------------------------------------------------------------------


@pytest.mark.skipif(not (MVTEC_AD / "bottle").is_dir(), reason=f"real MVTec AD bottle not found at {MVTEC_AD}")
def test_real_mvtec_ad_bottle():
    data = MVTecADBenchmark().load(MVTEC_AD, ["bottle"])
    (bottle,) = data.categories
    assert len(bottle.train_images) == 209
    counts: dict[str, int] = {}
    for sample in bottle.test_samples:
        counts[sample.label] = counts.get(sample.label, 0) + 1
    assert counts == {"good": 20, "broken_large": 20, "broken_small": 22, "contamination": 21}
    for sample in bottle.test_samples:
        if sample.is_anomalous:
            assert sample.mask is not None and sample.mask.is_file(), sample.sample_id
            assert sample.mask.name == f"{sample.image.stem}_mask.png"
        else:
            assert sample.mask is None


# --- registration ---------------------------------------------------------------------


def test_registry_lists_all_six_benchmarks_from_the_datasets_plugin():
    registry = load_registry()
    expected = {"mvtec-ad", "mvtec-ac", "visa-ac", "visa", "folder", "demo"}
    assert expected <= set(registry.benchmarks)
    for name in expected:
        provided = registry.benchmarks[name]
        assert provided.plugin == "datasets"
        assert provided.obj.name == name and provided.obj.description and provided.obj.layout
    assert registry.benchmarks["demo"].obj.requires_data_root is False
    assert all(registry.benchmarks[n].obj.requires_data_root for n in expected - {"demo"})
