"""A run from benchmark to run.json, with scripted classifiers standing in for models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import plugins
from harness.errors import DataLayoutError, HarnessError, UnknownNameError
from harness.hookspecs import hookimpl
from harness.prompts import image_digest
from harness.images import load_rgb
from harness.results import SCHEMA_VERSION, load_run
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import GOOD, ImagePart, Response, TextPart

RECORD_FIELDS = {
    "sample_id", "benchmark", "category", "image", "true_label", "gate", "model", "prompt", "prompt_images",
    "response", "predicted_label", "answer_rule", "correct", "error", "latency_s", "attempts", "tokens_in", "tokens_out",
    "cost_usd",
}


def first_candidate(prompt):
    return prompt.candidates[0].name


def run_with(tmp_path, script, *, root, benchmark="folder", gate="oracle", extra_models=(), **config):
    """Run ``script`` as model ``scripted`` (plus ``extra_models``) and return the result."""
    classifier, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    run_config = RunConfig(
        benchmark=benchmark, data_root=root, gate=gate, models=["scripted", *extra_models],
        results_dir=tmp_path / "results", n_boot=200, **config,
    )
    return Run(run_config, registry).execute(), classifier


def test_every_sample_and_model_gets_exactly_one_record(tmp_path, small_tree):
    result, classifier = run_with(tmp_path, first_candidate, root=small_tree, extra_models=["random"])
    _, on_disk = load_run(result.run_dir)
    n_samples = result.run["benchmark"]["n_samples"]
    assert n_samples == 3 * (2 + 5 * 2)
    assert len(on_disk) == len(result.records) == 2 * n_samples
    keys = {(r["sample_id"], r["model"]) for r in on_disk}
    assert len(keys) == len(on_disk)
    assert all(RECORD_FIELDS <= set(r) for r in on_disk)


def test_the_gate_decides_who_is_asked(tmp_path, small_tree):
    result, classifier = run_with(tmp_path, first_candidate, root=small_tree)
    records = result.records
    good = [r for r in records if r["true_label"] == GOOD]
    anomalous = [r for r in records if r["true_label"] != GOOD]
    # The oracle passes every good image without a call: predicted good, correct, no prompt.
    assert all(r["predicted_label"] == GOOD and r["correct"] and not r["called"] for r in good)
    assert all(r["prompt"] is None and r["latency_s"] is None and r["attempts"] == 0 for r in good)
    # Every anomalous image is sent once, with the anomaly classes only (no "good" candidate).
    assert len(classifier.prompts) == len(anomalous)
    assert all(GOOD not in [c.key for c in p.candidates] for p in classifier.prompts)
    assert all(r["called"] and r["prompt"]["name"] == "velm" and len(r["prompt"]["hash"]) == 16 for r in anomalous)
    # The scripted model always answers the first candidate: correct exactly for that class.
    for r in anomalous:
        first = sorted({x["true_label"] for x in anomalous if x["category"] == r["category"]})[0]
        assert r["correct"] == (r["true_label"] == first)
        assert r["outcome"] == ("correct" if r["correct"] else "wrong_class")


def test_pass_through_gate_makes_good_a_candidate(tmp_path, small_tree):
    result, classifier = run_with(tmp_path, lambda p: "good", root=small_tree, gate="none")
    assert len(classifier.prompts) == result.run["benchmark"]["n_samples"]
    assert all(GOOD in [c.key for c in p.candidates] for p in classifier.prompts)
    velm = result.run["metrics"]["scripted"]["protocols"]["velm"]
    # Answering "good" everywhere is right on exactly the good images (2 of 12 per category).
    assert velm["accuracy"] == pytest.approx(2 / 12)
    assert result.run["metrics"]["scripted"]["protocols"]["anomalous"]["accuracy"] == 0.0


def test_prompts_never_carry_the_true_label_or_sample_identity(tmp_path, small_tree):
    result, classifier = run_with(tmp_path, first_candidate, root=small_tree)
    anomalous = [r for r in result.records if r["called"]]
    texts = [part.text for p in classifier.prompts for m in p.messages for part in m.parts if isinstance(part, TextPart)]
    for record in anomalous:
        assert not any(record["sample_id"] in text or record["image"] in text for text in texts)


def test_reference_image_comes_from_the_training_split(tmp_path, small_tree):
    result, classifier = run_with(tmp_path, first_candidate, root=small_tree, categories=["tile"])
    train = {image_digest(load_rgb(p)) for p in (small_tree / "tile" / "train" / "good").glob("*.png")}
    test = {image_digest(load_rgb(p)) for p in (small_tree / "tile" / "test").rglob("*.png")}
    references = {part.digest for p in classifier.prompts for part in p.images if part.name == "reference"}
    # Demo images are smaller than the prompt size limit, so they reach the prompt unresized.
    assert len(references) == 1, "one reference per category, shown in every velm prompt"
    assert references <= train and not references & test
    outlined = [part for p in classifier.prompts for part in p.images if part.name == "outlined"]
    assert len(outlined) == len(classifier.prompts), "the oracle's mask gives every prompt an outlined query"


def test_failures_are_recorded_never_scored_as_answers(tmp_path, small_tree):
    replies = iter(["I'm sorry, I can't help with that.", "it is blue", RuntimeError("HTTP 400 bad request")])

    def script(prompt):
        return next(replies, "also blue")

    result, _ = run_with(tmp_path, script, root=small_tree, categories=["washer"], prompt="plain")
    called = [r for r in result.records if r["called"]]
    errors = [r["error"] for r in called]
    assert errors.count("refused") == 1
    assert errors.count("backend_error") == 1
    assert errors.count("unparseable") == len(called) - 2
    assert not any(r["correct"] or r["predicted_label"] for r in called)
    failed = next(r for r in called if r["error"] == "backend_error")
    assert "HTTP 400" in failed["error_detail"] and failed["response"] is None
    outcomes = result.run["metrics"]["scripted"]["outcomes"]
    assert outcomes["refused"] == 1 and outcomes["backend_error"] == 1
    assert outcomes["correct"] == 2  # only the good images the oracle passed


def test_a_corrupt_image_becomes_bad_input_and_the_run_goes_on(tmp_path, small_tree):
    root = tmp_path / "data"
    shutil.copytree(small_tree / "label", root / "label")
    broken = root / "label" / "test" / "tear" / "000.png"
    broken.write_bytes(b"not a png at all")
    result, classifier = run_with(tmp_path, first_candidate, root=root, extra_models=["random"])
    bad = [r for r in result.records if r["image"] == "label/test/tear/000.png"]
    assert len(bad) == 2 and all(r["error"] == "bad_input" and not r["correct"] for r in bad)
    assert "000.png" in bad[0]["error_detail"]
    assert bad[0]["gate"] is None
    assert len(result.records) == 2 * 12
    assert result.run["status"] == "finished"
    assert result.run["metrics"]["scripted"]["outcomes"]["bad_input"] == 1


def test_run_json_carries_config_provenance_and_metrics(tmp_path, small_tree):
    result, _ = run_with(tmp_path, first_candidate, root=small_tree, seed=7)
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["schema_version"] == SCHEMA_VERSION and run["status"] == "finished"
    assert run["config"]["seed"] == 7 and run["config"]["gate"] == "oracle"
    assert len(run["benchmark"]["manifest_hash"]) == 16
    provenance = run["provenance"]
    for key in ("harness_version", "git", "python", "torch", "transformers", "platform", "seed", "plugins"):
        assert key in provenance
    assert provenance["prompt_template"]["name"] == "velm" and len(provenance["prompt_template"]["hash"]) == 16
    assert provenance["gate"]["name"] == "oracle"
    assert set(provenance["gate"]["categories"]) == {"label", "tile", "washer"}
    assert provenance["gate"]["categories"]["tile"]["threshold_source"].startswith("ground truth")
    assert provenance["plugins"]["datasets"]["version"]
    scores = run["metrics"]["scripted"]
    assert set(scores["protocols"]) == {"velm", "anomalous"}
    assert set(scores["protocols"]["velm"]["categories"]) == {"label", "tile", "washer"}


def test_manifest_hash_identifies_the_evaluated_images(tmp_path, small_tree):
    full, _ = run_with(tmp_path, first_candidate, root=small_tree, run_id="a")
    again, _ = run_with(tmp_path, first_candidate, root=small_tree, run_id="b")
    subset, _ = run_with(tmp_path, first_candidate, root=small_tree, run_id="c", limit=5)
    assert full.run["benchmark"]["manifest_hash"] == again.run["benchmark"]["manifest_hash"]
    assert full.run["benchmark"]["manifest_hash"] != subset.run["benchmark"]["manifest_hash"]
    assert subset.run["benchmark"]["n_samples"] == 15


def test_lifecycle_hooks_observe_every_record(tmp_path, small_tree):
    seen = {"started": 0, "records": 0, "finished": None}

    class Observer:
        @hookimpl
        def harness_run_started(self, run):
            seen["started"] += 1

        @hookimpl
        def harness_sample_done(self, record):
            seen["records"] += 1

        @hookimpl
        def harness_run_finished(self, run, run_dir):
            seen["finished"] = run["status"]

    _, plugin = scripted_classifier(first_candidate)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin), ("observer", Observer())])
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["scripted"], results_dir=tmp_path)
    result = Run(config, registry).execute()
    assert seen == {"started": 1, "records": len(result.records), "finished": "finished"}


def test_random_baseline_is_reproducible(tmp_path, small_tree):
    registry = plugins.load_registry()

    def answers(run_id, seed):
        config = RunConfig(benchmark="folder", data_root=small_tree, models=["random"], results_dir=tmp_path,
                           run_id=run_id, model_options={"random": {"seed": seed, "concurrency": 8}})
        return [(r["sample_id"], r["predicted_label"]) for r in Run(config, registry).execute().records]

    first, second, other = answers("r1", 1), answers("r2", 1), answers("r3", 2)
    assert sorted(first) == sorted(second)
    assert sorted(first) != sorted(other)


@pytest.mark.parametrize(
    "config, error, words",
    [
        (dict(benchmark="nope", models=["random"]), UnknownNameError, ["nope", "demo", "mvtec-ad"]),
        (dict(benchmark="folder", gate="patchcor", models=["random"]), UnknownNameError, ["patchcor", "oracle"]),
        (dict(benchmark="folder", models=["randm"]), UnknownNameError, ["randm", "random"]),
        (dict(benchmark="folder", models=["random"], prompt="nope"), UnknownNameError, ["nope", "velm"]),
        (dict(benchmark="folder", models=[]), HarnessError, ["no models"]),
        (dict(benchmark="folder", models=["random"], model_options={"random": {"sed": 1}}), HarnessError,
         ["random", "sed"]),
        (dict(benchmark="folder", models=["random"], model_options={"random": {"concurrency": 0}}), HarnessError,
         ["concurrency"]),
    ],
)
def test_configuration_errors_name_the_culprit(tmp_path, small_tree, config, error, words):
    config.setdefault("data_root", small_tree)
    with pytest.raises(error) as raised:
        Run(RunConfig(results_dir=tmp_path, **config), plugins.load_registry()).execute()
    for word in words:
        assert word in str(raised.value)


def test_a_missing_data_root_is_a_layout_error(tmp_path):
    config = RunConfig(benchmark="mvtec-ad", data_root=tmp_path / "absent", models=["random"], results_dir=tmp_path)
    with pytest.raises(DataLayoutError, match="absent"):
        Run(config, plugins.load_registry()).execute()
    config = RunConfig(benchmark="mvtec-ad", data_root=None, models=["random"], results_dir=tmp_path)
    with pytest.raises(HarnessError, match="--data-root"):
        Run(config, plugins.load_registry()).execute()


def test_shots_draw_a_support_set_that_no_model_is_scored_on(tmp_path, small_tree):
    seen_support = {}

    classifier, plugin = scripted_classifier(first_candidate)
    original = classifier.set_support
    classifier.set_support = lambda self, category, examples: seen_support.__setitem__(category, examples)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="folder", data_root=small_tree, models=["scripted", "random"], results_dir=tmp_path,
                       shots=1, n_boot=50)
    result = Run(config, registry).execute()
    support = result.run["benchmark"]["support"]
    # One example of each of the 5 defect classes per category; 2 images per class, so 1 is left to score.
    assert {c: len(ids) for c, ids in support.items()} == {"label": 5, "tile": 5, "washer": 5}
    support_ids = {i for ids in support.values() for i in ids}
    scored = {r["sample_id"] for r in result.records}
    assert not support_ids & scored, "support images are scored for no model"
    assert len(result.records) == 2 * (36 - 15)
    for model in ("scripted", "random"):
        assert result.run["metrics"][model]["n"] == 36 - 15
    # Classifiers receive the labelled examples, with crops from the ground-truth masks.
    assert sorted(seen_support) == ["label", "tile", "washer"]
    tile = seen_support["tile"]
    assert sorted(e.label.key for e in tile) == ["chip", "crack", "hole", "scratch", "stain"]
    assert all({"query", "outlined", "crop"} <= set(e.images) for e in tile)
    # The velm prompt shows them as labelled in-context examples.
    prompt = classifier.prompts[0]
    names = [p.name for p in prompt.images]
    assert sum(n.startswith("support_") for n in names) == 5
    text = " ".join(p.text for m in prompt.messages for p in m.parts if hasattr(p, "text"))
    assert "Labelled examples" in text
    classifier.set_support = original
