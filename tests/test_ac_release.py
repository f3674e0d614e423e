"""MVTec-AC, MVTec-AD and VisA-AC evaluate exactly their released test files.

The released file lists are facts encoded in `harness_datasets.ac_facts`; they
are checked here against the release's manifests in ../shared/data/ac when
present. Data roots are small fake trees built in tmp (one tiny PNG, written
many times), plus the real MVTec-AD bottle folder when present.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from harness.scoring import answers
from harness.cli import main
from harness.datasets import ReleaseMismatchError, manifest_hash
from harness.types import GOOD

from harness_datasets.ac_facts import VISA_AC_CLASS_ALIASES
from harness_datasets.benchmarks import MVTecACBenchmark, MVTecADBenchmark, VisaACBenchmark
from harness_datasets.classes import load_class_file
from harness_datasets.release import compact_stems, expand_stems, release_for
from harness_datasets.visa_ac import original_image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AC = SHARED_DATA / "ac"
MVTEC_AD = SHARED_DATA / "mvtec_ad"
MANIFESTS = {"mvtec-ac": "mvtec_ac_manifest.csv", "mvtec-ad": "mvtec_ad_manifest.csv", "visa-ac": "visa_ac_manifest.csv"}
TOTALS = {"mvtec-ac": (14, 1142, 455), "mvtec-ad": (15, 1258, 466), "visa-ac": (12, 929, 962)}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (90, 90, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()  # image loaders sniff content, not suffixes, so one PNG serves for .JPG names too


def put(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG)
    return path


def released_tree(root: Path, benchmark: str, categories: list[str] | None = None) -> Path:
    """An MVTec-layout tree holding exactly the released test files (plus 2 training normals per category)."""
    release = release_for(benchmark)
    for relpath, (category, folder, name) in release.relpaths(categories).items():
        put(root / relpath)
        if folder != GOOD:
            put(root / category / "ground_truth" / folder / f"{Path(name).stem}_mask.png")
    for category in categories or release.categories:
        for i in range(2):
            put(root / category / "train" / "good" / f"{i:03d}.png")
    return root


def manifest_rows(benchmark: str) -> list[dict[str, str]]:
    path = AC / MANIFESTS[benchmark]
    if not path.is_file():
        pytest.skip(f"release manifest not found at {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the facts -------------------------------------------------------------------------


@pytest.mark.parametrize("benchmark", sorted(TOTALS))
def test_released_counts(benchmark):
    release = release_for(benchmark)
    categories, anomalous, good = TOTALS[benchmark]
    assert len(release.categories) == categories
    assert release.count() == (anomalous, good)


@pytest.mark.parametrize("benchmark", sorted(MANIFESTS))
def test_facts_match_the_release_manifest(benchmark):
    rows = manifest_rows(benchmark)
    release = release_for(benchmark)
    from_manifest = {row["relpath"]: (row["category"], row["folder_class"], row["file"]) for row in rows}
    assert release.relpaths() == from_manifest
    class_file = load_class_file(benchmark)
    for row in rows:
        if row["folder_class"] != GOOD:
            assert class_file.categories[row["category"]].classes[row["folder_class"]].name == row["class_name"]
        if benchmark == "visa-ac":
            expected = original_image(Path("/visa"), row["category"], row["folder_class"], row["file"])
            assert expected == Path("/visa") / row["visa_original_relpath"]


def test_visa_aliases_name_real_folders_and_differ_from_them():
    release = release_for("visa-ac")
    for category, aliases in VISA_AC_CLASS_ALIASES.items():
        for alias, folder in aliases.items():
            assert folder in release.files[category] and alias not in release.files[category]


def test_stem_ranges_round_trip():
    stems = ["000", "001", "002", "007", "0011", "0013", "0014"]
    assert compact_stems(stems) == "000-002 007 0011 0013-0014"
    assert expand_stems(compact_stems(stems)) == stems


# --- checking a data root ----------------------------------------------------------------


def test_complete_tree_loads_with_the_released_manifest_hash(tmp_path):
    root = released_tree(tmp_path / "ac", "mvtec-ac")
    benchmark = MVTecACBenchmark()
    data = benchmark.load(root)
    assert len(data.samples) == 1142 + 455 and len(data.categories) == 14
    assert manifest_hash(data) == manifest_hash(benchmark.released())
    assert all(s.mask is not None for s in data.samples if s.is_anomalous)


def test_missing_and_extra_files_are_named_and_partial_keeps_the_intersection(tmp_path):
    root = released_tree(tmp_path / "ac", "mvtec-ac", ["bottle", "wood"])
    for stem in ("003", "004", "005"):
        (root / f"bottle/test/broken_small/{stem}.png").unlink()
    for image in (root / "wood/test/liquid").iterdir():
        image.unlink()  # a whole class gone
    put(root / "bottle/test/good/020.png")  # one past the released 000-019
    put(root / "bottle/test/scuffed/000.png")  # not a class of bottle
    with pytest.raises(ReleaseMismatchError) as caught:
        MVTecACBenchmark().load(root, ["bottle", "wood"])
    message = str(caught.value)
    assert "13 released file(s) missing, 2 file(s) not in the release" in message
    assert f"missing in {root / 'wood/test/liquid'}: 10 of 10 released file(s): 000-009 (.png)" in message
    assert f"missing in {root / 'bottle/test/broken_small'}: 3 of 18 released file(s): 003-005 (.png)" in message
    assert f"not in the release: {root / 'bottle/test/good'}: 1 file(s): 020" in message
    assert "'scuffed' is not a class folder of 'bottle'" in message
    assert "--allow-partial" in message
    partial = caught.value.partial
    assert len(partial.samples) == 83 + 68 - 13
    assert "scuffed" not in {s.label for s in partial.samples}
    # The model is still offered every released class, including the one with no image left.
    assert [c.labels for c in partial.categories] == [
        ["good", "broken_large", "broken_small", "contamination"], ["good", "color", "hole", "liquid", "scratch"]
    ]
    difference = caught.value.difference
    assert difference["missing"] == 13 and difference["extra"] == 2
    assert "bottle/test/broken_small/004.png" in difference["missing_files"]
    assert difference["extra_files"] == ["bottle/test/good/020.png", "bottle/test/scuffed/000.png"]


def test_categories_not_there_and_categories_not_released(tmp_path):
    root = released_tree(tmp_path / "ac", "mvtec-ac", ["bottle"])
    put(root / "toothbrush/test/defective/000.png")  # in MVTec AD, not in MVTec-AC
    with pytest.raises(ReleaseMismatchError) as caught:
        MVTecACBenchmark().load(root)
    message = str(caught.value)
    assert "'toothbrush' is not a mvtec-ac category" in message
    assert "no released file at all of: cable, capsule" in message and "--category" in message
    with pytest.raises(Exception, match="'toothbrush' is not part of mvtec-ac"):
        MVTecACBenchmark().load(root, ["toothbrush"])
    assert len(MVTecACBenchmark().load(root, ["bottle"]).samples) == 83  # extra folders elsewhere are not looked at


def test_mvtec_ad_download_file_left_out_by_the_release_is_skipped_not_extra(tmp_path):
    root = released_tree(tmp_path / "ad", "mvtec-ad", ["cable"])
    put(root / "cable/test/good/020.png")
    data = MVTecADBenchmark().load(root, ["cable"])
    assert "cable/test/good/020.png" not in {s.relpath for s in data.samples}
    assert data.notes["left_out_as_released"] == ["cable/test/good/020.png"]
    assert len(data.samples) == 150 - 1


@pytest.mark.skipif(not (MVTEC_AD / "bottle").is_dir(), reason=f"real MVTec AD bottle not found at {MVTEC_AD}")
def test_real_bottle_is_a_complete_released_category():
    benchmark = MVTecADBenchmark()
    data = benchmark.load(MVTEC_AD, ["bottle"])
    assert len(data.samples) == 83
    assert manifest_hash(data) == manifest_hash(benchmark.released(["bottle"]))
    with pytest.raises(ReleaseMismatchError, match="no released file at all of: cable") as caught:
        benchmark.load(MVTEC_AD)
    assert caught.value.partial is not None and len(caught.value.partial.samples) == 83


def test_run_stops_on_a_difference_and_allow_partial_is_recorded(tmp_path, capsys):
    root = released_tree(tmp_path / "ac", "mvtec-ac", ["bottle"])
    args = ["run", "--benchmark", "mvtec-ac", "--data-root", str(root), "--gate", "oracle", "--models", "random",
            "--results-dir", str(tmp_path / "results"), "--run-id", "partial", "--no-cache"]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert "1514 released file(s) missing" in capsys.readouterr().err
    assert not (tmp_path / "results" / "partial").exists()
    main(args + ["--allow-partial"])
    run = json.loads((tmp_path / "results" / "partial" / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["allow_partial"] is True
    partial = run["benchmark"]["notes"]["partial"]
    assert partial["missing"] == 1514 and partial["extra"] == 0 and len(partial["missing_files"]) == 1514
    assert run["benchmark"]["n_samples"] == 83
    assert run["benchmark"]["manifest_hash"] == manifest_hash(MVTecACBenchmark().released(["bottle"]))


# --- VisA-AC from either tree ---------------------------------------------------------------


def original_visa_tree(root: Path, categories: list[str]) -> Path:
    """The original VisA layout for the released files of ``categories``, with a 1cls split file."""
    release = release_for("visa-ac")
    lines = ["object,split,label,image,mask"]
    for relpath, (category, folder, name) in release.relpaths(categories).items():
        image = put(original_image(root, category, folder, name))
        rel_image = image.relative_to(root).as_posix()
        if folder == GOOD:
            lines.append(f"{category},test,normal,{rel_image},")
        else:
            mask = put(root / category / "Data/Masks/Anomaly" / f"{Path(name).stem}.png")
            lines.append(f"{category},test,anomaly,{rel_image},{mask.relative_to(root).as_posix()}")
    for category in categories:
        for i in range(2):
            train = put(root / category / "Data/Images/Normal" / f"9{i:03d}.JPG")
            lines.append(f"{category},train,normal,{train.relative_to(root).as_posix()},")
    put(root / "candle/Data/Images/Anomaly/100.JPG")  # a VisA image that VisA-AC does not use
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(lines) + "\n")
    return root


def test_visa_ac_from_the_download_and_from_the_original_tree_is_the_same_test_set(tmp_path):
    benchmark = VisaACBenchmark()
    download = benchmark.load(released_tree(tmp_path / "visa_ac", "visa-ac", ["candle", "cashew"]), ["candle", "cashew"])
    original = benchmark.load(original_visa_tree(tmp_path / "visa", ["candle", "cashew"]), ["candle", "cashew"])
    released = benchmark.released(["candle", "cashew"])
    assert manifest_hash(download) == manifest_hash(original) == manifest_hash(released)
    assert [s.sample_id for s in download.samples] == [s.sample_id for s in original.samples]
    sample = next(s for s in original.samples if s.relpath == "cashew/test/small-holes/038.JPG")
    assert sample.image == tmp_path / "visa/cashew/Data/Images/Anomaly/038.JPG"
    assert sample.mask == tmp_path / "visa/cashew/Data/Masks/Anomaly/038.png"
    assert {p.name for p in original.categories[0].train_images} == {"9000.JPG", "9001.JPG"}


def test_visa_original_tree_missing_images_are_named_in_visa_folders(tmp_path):
    root = original_visa_tree(tmp_path / "visa", ["candle"])
    (root / "candle/Data/Images/Anomaly/055.JPG").unlink()
    with pytest.raises(ReleaseMismatchError) as caught:
        VisaACBenchmark().load(root, ["candle"])
    assert f"missing in {root / 'candle/Data/Images/Anomaly'}: 1 of 10 released file(s): 055 (.JPG)" in str(caught.value)
    assert caught.value.difference["missing_files"] == ["candle/test/chunk-of-wax-missing/055.JPG"]


def test_folder_names_are_the_truth_for_the_release_naming_mismatches(tmp_path):
    """cashew keeps its `small-holes` folder, macaroni1 its two folders; answers naming them score right."""
    root = released_tree(tmp_path / "visa_ac", "visa-ac", ["cashew", "macaroni1"])
    data = VisaACBenchmark().load(root, ["cashew", "macaroni1"])
    labels = {c.name: set(c.labels) for c in data.categories}
    assert "small-holes" in labels["cashew"]
    assert {"middle-breakage_small-scratches", "similar-colour-spot"} <= labels["macaroni1"]
    for sample in data.samples:
        if sample.is_anomalous:
            category = next(c for c in data.categories if c.name == sample.category)
            # A model shown the display names answers with one: it must parse to the folder label.
            assert answers.parse_answer(sample.display_name, category.classes) == (sample.label, None)
            assert answers.parse_answer(sample.label, category.classes) == (sample.label, None)
