"""A run is stages over a resolved plan (harness.run.plan, harness.run.stages): each stage a function of its inputs."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

import harness.run.plan
import harness.run.stages
from harness import plugins
from harness.errors import HarnessError
from harness.run.dispatch import Dispatcher
from harness.run.plan import RunPlan, load_plan, resolve_parts, resolve_plan
from harness.run.run_config import RunConfig
from harness.run.run_records import RecordBuilder
from harness.run.stages import CategoryInputs, classify, fit_gate, prepare_sample, read_reference, read_support
from harness.testing import scripted_classifier
from harness.types import GateResult, Prepared


def _plan(root: Path, tmp_path: Path, registry=None, **options) -> RunPlan:
    config = RunConfig(benchmark="folder", data_root=root, gate="oracle", models=["random"], categories=["tile"],
                       results_dir=tmp_path / "results", **options)
    return resolve_plan(config, registry or plugins.load_registry())


def _inputs(plan: RunPlan) -> CategoryInputs:
    category = plan.data.categories[0]
    return CategoryInputs(category, fit_gate(plan.gate, category), plan.template, plan.gate_mode, plan.orders(category),
                          plan.image_limits, read_reference(category, plan.reference(category)),
                          read_support(category, plan.support.get(category.name, [])))


def test_the_plan_is_resolved_once_and_holds_the_data_as_evaluated(small_tree, tmp_path):
    plan = _plan(small_tree, tmp_path, shots=1, limit=3, seed=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.gate = None
    (category,) = plan.data.categories
    drawn = {s.sample_id for s in plan.support["tile"]}
    assert len(drawn) == len(category.classes)  # one support sample per defect class
    assert len(category.test_samples) == 3 and not drawn & {s.sample_id for s in category.test_samples}
    assert [c.spec for c in plan.classifiers] == ["random"] and plan.template.name == "velm"
    assert [c.key for c in plan.candidates(category)] == [c.key for c in category.classes]  # oracle: no "good"


def test_the_config_is_checked_before_any_data_is_read(tmp_path):
    missing = tmp_path / "no-such-tree"
    config = RunConfig(benchmark="folder", data_root=missing, models=["random"], results_dir=tmp_path / "results")
    parts = resolve_parts(config, plugins.load_registry())  # nothing read yet: no error
    with pytest.raises(HarnessError, match="no-such-tree"):
        load_plan(parts)
    with pytest.raises(HarnessError, match="no models given"):
        resolve_parts(dataclasses.replace(config, models=[]), plugins.load_registry())


def test_a_sample_prepared_in_another_process_gives_the_same_prompts(small_tree, tmp_path):
    # What a distributed executor would do: ship the stage's inputs, pickled, to a fresh interpreter.
    plan = _plan(small_tree, tmp_path, repeats=2, class_order="shuffle")
    inputs = _inputs(plan)
    sample = next(s for s in inputs.category.test_samples if s.is_anomalous)
    here = prepare_sample(sample, inputs)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        there = pool.submit(prepare_sample, sample, pickle.loads(pickle.dumps(inputs))).result()
    hashes = {key: (p.hash, p.request_hash) for key, p in here.prepared.prompts.items()}
    assert sorted(hashes) == [(0, None), (1, None)] and hashes[(0, None)] != hashes[(1, None)]  # shuffled order shown
    assert {key: (p.hash, p.request_hash) for key, p in there.prepared.prompts.items()} == hashes
    # The oracle's map is the true mask: the pair for pixel AUROC travels back with the prompts.
    assert all((a == b).all() for a, b in zip(here.pixel_pair, there.pixel_pair)) and here.pixel_pair[1].any()
    # A category that already lost its pixel AUROC (a map-less image) reads no more masks.
    assert prepare_sample(sample, inputs, pixel_pair_wanted=False).pixel_pair is None


def test_classify_asks_only_about_flagged_samples_and_builds_the_record(small_tree, tmp_path):
    classifier_class, plugin = scripted_classifier(lambda prompt: prompt.candidates[-1].name)
    classifier_class.prompts = []
    plan = _plan(small_tree, tmp_path, plugins.load_registry(extra_plugins=[("scripted-stages", plugin)]))
    plan = dataclasses.replace(plan, classifiers=(classifier_class(None, classifier_class.Options()),))
    inputs = _inputs(plan)
    sample = next(s for s in inputs.category.test_samples if s.is_anomalous)
    prepared = prepare_sample(sample, inputs).prepared
    builder = RecordBuilder(plan.benchmark.name, plan.gate, {"scripted": None}, None)

    async def both():
        dispatcher = Dispatcher(plan.classifiers[0])
        passed = Prepared(sample, GateResult(score=0.0, flagged=False, threshold=0.5))
        return await classify(prepared, 0, dispatcher, builder), await classify(passed, 0, dispatcher, builder, 3)

    asked, passed = asyncio.run(both())
    assert len(classifier_class.prompts) == 1  # the sample the gate passed asked nobody
    last = inputs.orders[0][-1].key
    assert asked["called"] and asked["predicted_label"] == last and asked["prompt"]["hash"] == prepared.prompts[(0, None)].hash
    assert asked["class_order"] == [c.key for c in inputs.orders[0]]
    assert not passed["called"] and passed["predicted_label"] == "good" and passed["attempts_total"] == 3


def test_the_plan_and_the_stages_never_reach_for_the_running_object():
    for module in (harness.run.plan, harness.run.stages):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "harness.run.runner" not in imported, module.__name__
