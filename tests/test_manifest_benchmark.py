"""The ``manifest`` benchmark: CSV and JSONL manifests, their error messages, and end-to-end runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.datasets import manifest_hash
from harness.errors import DataLayoutError
from harness.results import load_run

from harness_datasets.benchmarks import ManifestBenchmark
from conftest import run_cli

HEADER = "image,category,split,label,mask"


def write_png(path: Path, shade: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (shade, shade, shade)).save(path)
    return path


def widget_rows(root: Path) -> list[dict[str, str]]:
    """Two train normals, one test normal, two defects (one with a mask), files written under ``root``."""
    for name in ("train/a.png", "train/b.png", "test/ok.png", "test/s.png", "test/d.png"):
        write_png(root / "widget" / name, shade=200 if name in ("test/s.png", "test/d.png") else 100)
    write_png(root / "widget" / "masks" / "s.png", shade=255)
    return [
        {"image": "widget/train/a.png", "category": "widget", "split": "train", "label": "good", "mask": ""},
        {"image": "widget/train/b.png", "category": "widget", "split": "train", "label": "", "mask": ""},
        {"image": "widget/test/ok.png", "category": "widget", "split": "test", "label": "good", "mask": ""},
        {"image": "widget/test/s.png", "category": "widget", "split": "test", "label": "deep_scratch",
         "mask": "widget/masks/s.png"},
        {"image": "widget/test/d.png", "category": "widget", "split": "test", "label": "dent", "mask": ""},
    ]


def write_csv(path: Path, rows: list[dict[str, str]], header: str = HEADER) -> Path:
    columns = header.split(",")
    lines = [header] + [",".join(row.get(c, "") for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in row.items() if v != "" or k == "label"}) + "\n" for row in rows))
    return path


def test_csv_manifest_loads_categories_classes_masks_and_stable_ids(tmp_path):
    manifest = write_csv(tmp_path / "manifest.csv", widget_rows(tmp_path))
    data = ManifestBenchmark().load(tmp_path)  # a folder: its manifest.csv is read
    (widget,) = data.categories
    assert [c.key for c in widget.classes] == ["deep_scratch", "dent"]
    assert widget.class_info("deep_scratch").name == "deep scratch"
    assert [p.name for p in widget.train_images] == ["a.png", "b.png"]
    by_id = {s.sample_id: s for s in widget.test_samples}
    assert set(by_id) == {"widget/widget/test/ok.png", "widget/widget/test/s.png", "widget/widget/test/d.png"}
    assert by_id["widget/widget/test/s.png"].mask == tmp_path / "widget" / "masks" / "s.png"
    assert by_id["widget/widget/test/d.png"].mask is None
    assert by_id["widget/widget/test/s.png"].relpath == "widget/test/s.png"
    # The file itself works as the data root, with the same images and hence the same manifest hash.
    assert manifest_hash(ManifestBenchmark().load(manifest)) == manifest_hash(data)


def test_jsonl_manifest_reads_like_csv(tmp_path):
    rows = widget_rows(tmp_path)
    csv_data = ManifestBenchmark().load(write_csv(tmp_path / "manifest.csv", rows))
    jsonl_data = ManifestBenchmark().load(write_jsonl(tmp_path / "other.jsonl", rows))
    assert manifest_hash(csv_data) == manifest_hash(jsonl_data)
    assert [s.mask for s in jsonl_data.samples] == [s.mask for s in csv_data.samples]


def test_absolute_paths_and_category_selection(tmp_path):
    rows = widget_rows(tmp_path / "images")
    for row in rows:
        row["image"] = str(tmp_path / "images" / row["image"])
        row["mask"] = str(tmp_path / "images" / row["mask"]) if row["mask"] else ""
    rows.append({"image": str(write_png(tmp_path / "images" / "gadget" / "t.png")), "category": "gadget",
                 "split": "train", "label": "good"})
    rows.append({"image": str(write_png(tmp_path / "images" / "gadget" / "q.png")), "category": "gadget",
                 "split": "test", "label": "good"})
    (tmp_path / "lists").mkdir()
    manifest = write_csv(tmp_path / "lists" / "mine.csv", rows)
    data = ManifestBenchmark().load(manifest, ["widget"])
    assert [c.name for c in data.categories] == ["widget"]
    assert all(Path(s.relpath).is_absolute() for s in data.samples)  # outside the manifest's folder: kept absolute
    with pytest.raises(DataLayoutError, match="'bolt' is not in .*categories listed: gadget, widget"):
        ManifestBenchmark().load(manifest, ["bolt"])


def mutate(rows, index, **changes):
    rows = [dict(r) for r in rows]
    rows[index].update(changes)
    return rows


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda rows: mutate(rows, 2, split="validation"), [":4:", "unknown split 'validation'"]),
        (lambda rows: mutate(rows, 4, image="widget/test/nope.png"), [":6:", "image file not found", "nope.png"]),
        (lambda rows: mutate(rows, 3, mask="widget/masks/nope.png"), [":5:", "mask file not found"]),
        (lambda rows: mutate(rows, 4, label=""), [":6:", "test image without a label"]),
        (lambda rows: mutate(rows, 0, label="dent"), [":2:", "training images must be normal"]),
        (lambda rows: [r for r in rows if r["split"] == "test"], ["'widget' has no train rows"]),
        (lambda rows: [r for r in rows if r["split"] == "train"], ["'widget' has no test rows"]),
        (lambda rows: rows + [rows[2]], [":7:", "listed twice (also on line 4)"]),
        (lambda rows: rows + [dict(rows[0], split="test")], [":7:", "also a train image (line 2)"]),
    ],
)
def test_bad_rows_are_reported_with_file_and_line(tmp_path, change, words):
    manifest = write_csv(tmp_path / "manifest.csv", change(widget_rows(tmp_path)))
    with pytest.raises(DataLayoutError) as error:
        ManifestBenchmark().load(manifest)
    assert str(manifest) in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_missing_columns_and_missing_manifest_are_named(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", widget_rows(tmp_path), header="image,category,label")
    with pytest.raises(DataLayoutError, match=r"m\.csv:1: missing column\(s\) split"):
        ManifestBenchmark().load(manifest)
    bad_json = tmp_path / "m.jsonl"
    bad_json.write_text('{"image": "widget/train/a.png", "category": "widget", "split": "train"}\n')
    with pytest.raises(DataLayoutError, match=r"m\.jsonl:1: missing field\(s\) label"):
        ManifestBenchmark().load(bad_json)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataLayoutError, match=r"no manifest.csv or manifest.jsonl in this folder.*\(found none\)"):
        ManifestBenchmark().load(empty)
    # Here m.csv and m.jsonl are both candidates: no guess.
    with pytest.raises(DataLayoutError, match="found m.csv, m.jsonl"):
        ManifestBenchmark().load(tmp_path)


def test_a_folder_with_one_differently_named_manifest_reads_it(tmp_path):
    write_csv(tmp_path / "line3.csv", widget_rows(tmp_path))
    assert len(ManifestBenchmark().load(tmp_path).samples) == 3


def test_manifest_runs_end_to_end_from_the_cli(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "manifest.jsonl", widget_rows(tmp_path / "data"))
    results = tmp_path / "results"
    code, out, err = run_cli("run", "--benchmark", "manifest", "--data-root", tmp_path / "data", "--gate", "oracle",
                             "--models", "random", "--results-dir", results, capsys=capsys)
    assert code == 0, err
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    run, records = load_run(run_dir)
    assert run["status"] == "finished" and len(records) == 3
    assert {r["true_label"] for r in records} == {"good", "deep_scratch", "dent"}


def test_the_readme_manifest_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```csv\n", 1)[1].split("```", 1)[0]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(example)
    for line in example.splitlines()[1:]:
        for listed in (line.split(",")[0], line.split(",")[4]):
            if listed:
                write_png(tmp_path / listed)  # Pillow picks the format from the suffix: PNG, JPEG, TIFF
    (widget,) = ManifestBenchmark().load(tmp_path).categories
    assert [c.name for c in widget.classes] == ["deep scratch"]
    assert len(widget.train_images) == 1 and len(widget.test_samples) == 2
