"""`harness score`: predictions made elsewhere become a normal run, scored by the same code.

Prediction files are constructed here in the VELM release's format, with
per-category correctness chosen to match the published GPT-4o figures, and
scored from the released file lists (no image needed).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from harness.scoring import leaderboard

from conftest import run_cli
from harness.datasets import manifest_hash
from harness.results import load_run

from harness_datasets.benchmarks import MVTecACBenchmark, MVTecADBenchmark, VisaACBenchmark

#: Published DDAD + GPT-4o accuracy on MVTec-AC per category (VELM paper; ../shared/data/README.md).
GPT4O_MVTEC_AC = {
    "bottle": 86.7, "cable": 86.3, "capsule": 79.8, "carpet": 82.9, "grid": 66.7, "hazelnut": 91.8,
    "leather": 86.3, "metal_nut": 90.4, "pill": 79.2, "screw": 83.9, "tile": 89.7, "transistor": 89.0,
    "wood": 88.2, "zipper": 75.6,
}
GPT4O_MVTEC_AC_MEAN = 84.0
GPT4O_MVTEC_AD_MEAN = 81.4


harness = run_cli


def velm_predictions(benchmark, accuracy: dict[str, float]) -> dict[str, str]:
    """A VELM-format file: per category, round(acc * n) images named right, the rest named as another class.

    Names are written as a model might (display names, some capitalised); wrong
    answers take the next class in the category's label list, ``good`` included.
    """
    data = benchmark.released(sorted(accuracy))
    predictions = {}
    for category in data.categories:
        names = {c.key: c.name for c in category.classes} | {"good": "good"}
        labels = category.labels
        samples = category.test_samples
        right = round(accuracy[category.name] / 100 * len(samples))
        for i, sample in enumerate(samples):
            label = sample.label if i < right else labels[(labels.index(sample.label) + 1) % len(labels)]
            name = names[label].title() if i % 3 == 0 else names[label]
            predictions[f"{category.name}_{sample.label}_{Path(sample.relpath).stem}"] = name
    return predictions


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


def score(tmp_path: Path, capsys, benchmark: str, predictions: Path, *extra: object, run_id: str = "imported"):
    code, out, err = harness("score", "--benchmark", benchmark, "--predictions", predictions, "--format", "velm",
                             "--name", "velm-gpt-4o", "--results-dir", tmp_path / "results", "--run-id", run_id,
                             *extra, capsys=capsys)
    assert code == 0, err
    run, records = load_run(tmp_path / "results" / run_id)
    return run, records, out, err


# --- published figures ------------------------------------------------------------------


def test_score_reproduces_the_published_gpt4o_figures_on_mvtec_ac(tmp_path, capsys):
    path = write_json(tmp_path / "gpt4o_mvtec_ac.json", velm_predictions(MVTecACBenchmark(), GPT4O_MVTEC_AC))
    run, records, out, _ = score(tmp_path, capsys, "mvtec-ac", path)
    scores = run["metrics"]["imported:velm-gpt-4o"]["protocols"]["velm"]
    for category, published in GPT4O_MVTEC_AC.items():
        assert abs(100 * scores["categories"][category]["accuracy"] - published) < 0.1, category
    assert abs(100 * scores["accuracy"] - GPT4O_MVTEC_AC_MEAN) < 0.1
    assert len(records) == 1597 and run["imported"]["missing"]["count"] == 0
    assert run["benchmark"]["manifest_hash"] == manifest_hash(MVTecACBenchmark().released())
    assert all(r["model"] == "imported:velm-gpt-4o" and r["error"] is None for r in records)
    assert "84.0" in out and "mean" in out


def test_score_reproduces_the_published_gpt4o_mean_on_mvtec_ad(tmp_path, capsys):
    # Only the mean (81.4) is published for MVTec-AD: spread it unevenly over the 15 categories.
    categories = MVTecADBenchmark().released().categories
    offsets = [12, -12, 7, -7, 4, -4, 9, -9, 2, -2, 5, -5, 1, -1, 0]
    accuracy = {c.name: GPT4O_MVTEC_AD_MEAN + o for c, o in zip(categories, offsets)}
    path = write_json(tmp_path / "gpt4o_mvtec_ad.json", velm_predictions(MVTecADBenchmark(), accuracy))
    run, records, _, _ = score(tmp_path, capsys, "mvtec-ad", path)
    scores = run["metrics"]["imported:velm-gpt-4o"]["protocols"]["velm"]
    assert abs(100 * scores["accuracy"] - GPT4O_MVTEC_AD_MEAN) < 0.1
    assert len(records) == 1724 and scores["n_categories"] == 15


# --- one table with real runs -------------------------------------------------------------


def bottle_tree(root: Path) -> Path:
    """MVTec-AD's released bottle test files as tiny images (the real folder is checked in test_ac_release)."""
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (90, 90, 90)).save(png, format="PNG")
    for sample in MVTecADBenchmark().released(["bottle"]).samples:
        (root / sample.relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / sample.relpath).write_bytes(png.getvalue())
    (root / "bottle/train/good").mkdir(parents=True)
    (root / "bottle/train/good/000.png").write_bytes(png.getvalue())
    return root


def test_imported_run_lands_in_the_same_leaderboard_table_as_a_real_run(tmp_path, capsys):
    data_root = bottle_tree(tmp_path / "mvtec_ad")
    code, _, err = harness("run", "--benchmark", "mvtec-ad", "--data-root", data_root, "--category", "bottle",
                           "--gate", "oracle", "--models", "random", "--results-dir", tmp_path / "results",
                           "--run-id", "real", "--no-cache", capsys=capsys)
    assert code == 0, err
    path = write_json(tmp_path / "bottle.json", velm_predictions(MVTecADBenchmark(), {"bottle": 86.7}))
    imported, _, _, _ = score(tmp_path, capsys, "mvtec-ad", path, "--category", "bottle")
    with_data, _, _, _ = score(tmp_path, capsys, "mvtec-ad", path, "--category", "bottle", "--data-root", data_root,
                               run_id="with-data")
    real, _ = load_run(tmp_path / "results" / "real")
    assert imported["benchmark"]["manifest_hash"] == real["benchmark"]["manifest_hash"]
    assert with_data["benchmark"]["manifest_hash"] == real["benchmark"]["manifest_hash"]
    tables = leaderboard.group(leaderboard.collect([tmp_path / "results"]))
    assert len(tables) == 1
    (rows,) = tables.values()
    assert {r.model for r in rows} == {"random", "imported:velm-gpt-4o"}


# --- what is not scored is reported ------------------------------------------------------------


def test_missing_unmatched_unparseable_and_aliases(tmp_path, capsys):
    predictions = velm_predictions(VisaACBenchmark(), {"cashew": 100.0})
    del predictions["cashew_good_006"]
    del predictions["cashew_burnt_001"]
    # The release's class key `small-hole` for the `small-holes` folder: still the right image and class.
    predictions["cashew_small-hole_038"] = predictions.pop("cashew_small-holes_038")
    predictions["cashew_small-holes_039"] = "small-hole"
    predictions["cashew_small-holes_040"] = "a crack"  # no class of cashew
    predictions["cashew_small-holes_043"] = "2"  # a position in a list nobody knows
    predictions["cashew_good_012"] = "Normal"
    predictions["cashew_nothing_999"] = "good"
    path = write_json(tmp_path / "cashew.json", predictions)
    run, records, _, err = score(tmp_path, capsys, "visa-ac", path, "--category", "cashew")
    by_id = {r["sample_id"]: r for r in records}
    assert run["imported"]["missing"] == {"count": 2, "samples": ["cashew/burnt/001", "cashew/good/006"]}
    assert run["imported"]["unmatched"] == {"count": 1, "keys": ["cashew_nothing_999"]}
    assert run["imported"]["aliased"]["keys"] == ["cashew_small-hole_038"]
    assert "2 image(s) have no prediction" in err and "cashew/good/006" in err
    assert "1 prediction key(s) name no image" in err and "cashew_nothing_999" in err
    assert by_id["cashew/small-holes/038"]["correct"] and by_id["cashew/small-holes/039"]["correct"]
    assert by_id["cashew/good/012"]["predicted_label"] == "good" and by_id["cashew/good/012"]["correct"]
    for sample_id in ("cashew/small-holes/040", "cashew/small-holes/043"):
        assert by_id[sample_id]["error"] == "unparseable" and not by_id[sample_id]["correct"]
    assert len(records) == 119 - 2
    scores = run["metrics"]["imported:velm-gpt-4o"]
    assert scores["outcomes"]["unparseable"] == 2
    assert abs(scores["protocols"]["velm"]["accuracy"] - 115 / 117) < 1e-9
    # The scored set is smaller than the released category, so it never shares a table with full runs.
    assert run["benchmark"]["manifest_hash"] != manifest_hash(VisaACBenchmark().released(["cashew"]))


def test_jsonl_by_sample_id_or_category_and_image(tmp_path, capsys):
    lines = [
        {"sample_id": "bottle/broken_large/000", "predicted_label": "broken large"},
        {"sample_id": "bottle_broken_small_000", "predicted_label": "Broken Large"},
        {"category": "bottle", "image": "test/contamination/000.png", "predicted_label": "contamination"},
        {"category": "bottle", "image": "bottle/test/good/000.png", "predicted_label": None},
    ]
    path = tmp_path / "bottle.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    code, _, err = harness("score", "-b", "mvtec-ac", "--predictions", path, "--format", "jsonl", "--name", "mine",
                           "--category", "bottle", "--results-dir", tmp_path / "results", "--run-id", "j",
                           capsys=capsys)
    assert code == 0, err
    run, records = load_run(tmp_path / "results" / "j")
    outcome = {r["sample_id"]: (r["predicted_label"], r["error"], r["correct"]) for r in records}
    assert outcome == {
        "bottle/broken_large/000": ("broken_large", None, True),
        "bottle/broken_small/000": ("broken_large", None, False),
        "bottle/contamination/000": ("contamination", None, True),
        "bottle/good/000": (None, "unparseable", False),
    }
    assert run["imported"]["missing"]["count"] == 83 - 4 and run["config"]["models"] == ["imported:mine"]


# --- bad files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content", "needles"),
    [
        ("velm", "{not json", ["not valid JSON", "format velm expects one JSON object"]),
        ("velm", '["bottle_good_000"]', ["holds a JSON array"]),
        ("velm", '{"bottle_good_000": ["good"]}', ["'bottle_good_000'", "is a JSON array", "class name string"]),
        ("velm", "{}", ["holds no predictions"]),
        ("velm", '{"bottle_good_000": "good", "bottle_good_000": "broken large"}', ["two different predictions"]),
        ("velm", '{"no_such_image": "good"}', ["none of its 1 prediction(s)", "bottle_broken_large_000"]),
        ("jsonl", '{"sample_id": "bottle/good/000", "predicted_label": "good"}\n[1]\n', [":2:", "holds a JSON array"]),
        ("jsonl", '{"sample_id": "bottle/good/000"}\n', [":1:", "no predicted_label"]),
        ("jsonl", '{"predicted_label": "good"}\n', [":1:", "names no image"]),
    ],
)
def test_bad_prediction_files_are_named(tmp_path, capsys, fmt, content, needles):
    path = tmp_path / "predictions.txt"
    path.write_text(content, encoding="utf-8")
    code, _, err = harness("score", "-b", "mvtec-ac", "--predictions", path, "--format", fmt, "--name", "x",
                           "--results-dir", tmp_path / "results", capsys=capsys)
    assert code == 2
    assert str(path) in err.replace("\n", "")
    for needle in needles:
        assert needle in err.replace("\n", ""), err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_missing_file_and_benchmark_without_a_released_list(tmp_path, capsys):
    code, _, err = harness("score", "-b", "mvtec-ac", "--predictions", tmp_path / "absent.json", "--name", "x",
                           capsys=capsys)
    assert code == 2 and "predictions file not found" in err
    path = write_json(tmp_path / "p.json", {"a_good_000": "good"})
    code, _, err = harness("score", "-b", "folder", "--predictions", path, "--name", "x", capsys=capsys)
    assert code == 2 and "publishes no fixed file list" in err and "--data-root" in err


def test_macaroni1_class_keys_of_the_release_reach_their_folders(tmp_path, capsys):
    predictions = velm_predictions(VisaACBenchmark(), {"macaroni1": 100.0})
    predictions["macaroni1_similar-colour-spots_048"] = predictions.pop("macaroni1_similar-colour-spot_048")
    predictions["macaroni1_middle-breakage-small-scratches_038"] = "middle-breakage-small-scratches"
    del predictions["macaroni1_middle-breakage_small-scratches_038"]
    predictions["macaroni1_similar-colour-spot_049"] = "similar colour spots"
    path = write_json(tmp_path / "macaroni1.json", predictions)
    run, records, _, _ = score(tmp_path, capsys, "visa-ac", path, "--category", "macaroni1")
    assert run["imported"]["missing"]["count"] == 0 and run["imported"]["unmatched"]["count"] == 0
    assert all(r["correct"] for r in records), [r for r in records if not r["correct"]]
    assert run["metrics"]["imported:velm-gpt-4o"]["protocols"]["velm"]["accuracy"] == 1.0
