"""Samples are prepared in groups: decoded and drawn on threads, gated in batches of the gate's size
(harness.run.stages.prepare_batch), and give exactly what preparing them one by one gives."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import harness.visual
from harness import plugins
from harness.errors import BadInputError, HarnessError
from harness.gates import FittedGate, OracleGate, PassThroughGate
from harness.hookspecs import hookimpl
from harness.prompts import render_prompt
from harness.run.plan import resolve_plan
from harness.run.run_config import RunConfig
from harness.run.runner import Run
from harness.run.stages import CategoryInputs, fit_gate, prepare_batch, prepare_sample, read_reference, read_support
from harness.types import GateResult
from harness.visual import PromptPictures, visual_prompt_images


class CountingFitted(FittedGate):
    """The oracle's verdicts, in batches of ``batch_size``; fails a test if two threads score at once."""

    def __init__(self, inner: FittedGate, batch_size: int, broken: set[str] = frozenset(), extra: int = 0):
        self.inner, self.batch_size, self.broken, self.extra = inner, batch_size, broken, extra
        self.batches: list[int] = []
        self._inside = threading.Lock()

    def score(self, sample, image) -> GateResult:
        if sample.sample_id in self.broken:
            raise BadInputError(f"{sample.sample_id}: mask unreadable")
        return self.inner.score(sample, image)

    def score_batch(self, samples, images):
        assert self._inside.acquire(blocking=False), "a fitted gate was scored from two threads at once"
        try:
            time.sleep(0.01)  # long enough for a second thread to arrive
            self.batches.append(len(samples))
            results = [self.score(sample, image) for sample, image in zip(samples, images)]
            return results + results[: self.extra]
        finally:
            self._inside.release()


def _inputs(root: Path, tmp_path: Path, fitted_wrapper=None) -> CategoryInputs:
    config = RunConfig(benchmark="folder", data_root=root, gate="oracle", models=["random"], categories=["tile"],
                       results_dir=tmp_path / "results")
    plan = resolve_plan(config, plugins.load_registry())
    category = plan.data.categories[0]
    fitted = fit_gate(plan.gate, category)
    return CategoryInputs(category, fitted_wrapper(fitted) if fitted_wrapper else fitted, plan.template, plan.gate_mode,
                          plan.orders(category), plan.image_limits, read_reference(category, plan.reference(category)),
                          read_support(category, []))


def _summary(prepared_sample) -> tuple:
    prepared = prepared_sample.prepared
    gate = prepared.gate
    return (prepared.sample.sample_id, prepared.bad_input, gate and (gate.score, gate.flagged),
            {key: (p.hash, p.request_hash) for key, p in prepared.prompts.items()})


def test_a_batch_prepared_on_threads_equals_the_samples_prepared_one_by_one(small_tree, tmp_path):
    gate = {}
    inputs = _inputs(small_tree, tmp_path, lambda fitted: gate.setdefault("g", CountingFitted(fitted, batch_size=3)))
    samples = inputs.category.test_samples
    assert len(samples) >= 7
    with ThreadPoolExecutor(2) as pool:
        together = prepare_batch(samples, inputs, parallel_map=pool.map)
    alone = [prepare_sample(sample, inputs) for sample in samples]
    assert [_summary(p) for p in together] == [_summary(p) for p in alone]
    assert any(p.prepared.prompts for p in together) and any(not p.prepared.gate.flagged for p in together)
    # The gate saw batches of its size, the last one shorter; then the one-by-one calls.
    n = len(samples)
    assert gate["g"].batches[: -n] == [3] * (n // 3) + ([n % 3] if n % 3 else [])
    for a, b in zip(together, alone):  # the pixel pairs for pixel AUROC too
        assert (a.pixel_pair is None) == (b.pixel_pair is None)
        assert a.pixel_pair is None or all(np.array_equal(x, y) for x, y in zip(a.pixel_pair, b.pixel_pair))
    assert any(p.pixel_pair is not None for p in together)


def test_an_unreadable_image_or_mask_costs_only_its_own_sample(small_tree, tmp_path):
    inputs = _inputs(small_tree, tmp_path)
    samples = list(inputs.category.test_samples[:5])
    broken_file = tmp_path / "broken.png"
    broken_file.write_bytes(b"\x89PNG not really")
    samples[1] = dataclasses.replace(samples[1], image=broken_file)
    fitted = CountingFitted(inputs.fitted, batch_size=8, broken={samples[3].sample_id})
    inputs = dataclasses.replace(inputs, fitted=fitted)
    prepared = prepare_batch(samples, inputs)
    bad = {p.prepared.sample.sample_id: p.prepared.bad_input for p in prepared if p.prepared.bad_input}
    assert sorted(bad) == sorted([samples[1].sample_id, samples[3].sample_id])
    assert "broken.png" in bad[samples[1].sample_id] and "mask unreadable" in bad[samples[3].sample_id]
    assert all(p.prepared.gate is not None for p in prepared if not p.prepared.bad_input)
    # The batch of 4 readable images met the bad mask and was scored again one by one.
    assert fitted.batches == [4]


def test_a_gate_answering_the_wrong_number_of_samples_is_named(small_tree, tmp_path):
    inputs = _inputs(small_tree, tmp_path, lambda fitted: CountingFitted(fitted, batch_size=4, extra=1))
    with pytest.raises(HarnessError, match=r"CountingFitted.score_batch gave 5 results for 4 samples"):
        prepare_batch(inputs.category.test_samples[:4], inputs)


class BatchingOracle(OracleGate):
    """The oracle, fitted as a `CountingFitted` with batches of 3 (registered as ``batching-oracle``)."""

    name = "batching-oracle"
    description = "the oracle in batches of 3"
    fitted: list[CountingFitted] = []

    def fit(self, category):
        fitted = CountingFitted(super().fit(category), batch_size=3)
        BatchingOracle.fitted.append(fitted)
        return fitted


class BatchingOraclePlugin:
    @hookimpl
    def register_gates(self, register):
        register(BatchingOracle)


def _records(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    for record in records:
        for key in ("latency_s", "queued_s", "started_at", "finished_at"):
            record.pop(key, None)
    return sorted(records, key=lambda r: (r["sample_id"], r["model"], r.get("repeat") or 0))


def test_a_run_in_batches_records_what_a_run_one_by_one_records(small_tree, tmp_path, monkeypatch):
    # One preparation thread: groups of 4 samples, so a category's samples come in two groups prepared at
    # once, which must take turns at the gate (CountingFitted fails a run whose gate two threads enter).
    monkeypatch.setattr("harness.run.runner.preparation_threads", lambda: 1)
    BatchingOracle.fitted.clear()
    registry = plugins.load_registry(extra_plugins=[("batching", BatchingOraclePlugin())])
    runs = {}
    for gate in ("oracle", "batching-oracle"):
        config = RunConfig(benchmark="folder", data_root=small_tree, gate=gate, models=["random"], repeats=2,
                           class_order="shuffle", results_dir=tmp_path / gate, run_id="r", use_cache=False)
        runs[gate] = Run(config, registry).execute()
    one_by_one, batched = (_records(runs[g].run_dir) for g in ("oracle", "batching-oracle"))
    for record in one_by_one + batched:
        record.pop("gate")  # its name differs; its score and flag are compared below
    samples = sum(len(c.test_samples) for c in resolve_plan(config, registry).data.categories)
    assert one_by_one == batched and len(batched) == 2 * samples
    flags = {g: sorted((r["sample_id"], r["gate"]["score"], r["gate"]["flagged"]) for r in _records(runs[g].run_dir))
             for g in runs}
    assert flags["oracle"] == flags["batching-oracle"]
    assert all(size <= 3 for fitted in BatchingOracle.fitted for size in fitted.batches)
    assert max(len(fitted.batches) for fitted in BatchingOracle.fitted) >= 2  # groups did take turns
    metrics = {g: json.dumps(runs[g].run["gate_metrics"]).replace(g, "GATE") for g in runs}
    assert metrics["oracle"] == metrics["batching-oracle"]


# --- prompt pictures are drawn when a template shows them ------------------------------------------


def test_pictures_no_template_shows_are_never_drawn(small_tree, tmp_path, monkeypatch):
    inputs = _inputs(small_tree, tmp_path)
    sample = next(s for s in inputs.category.test_samples if s.is_anomalous)
    image = Image.open(sample.image).convert("RGB")
    region = np.zeros((image.height, image.width), bool)
    region[10:30, 10:30] = True
    anomaly_map = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    drawn = []
    real_heatmap = harness.visual.heatmap_overlay
    monkeypatch.setattr(harness.visual, "heatmap_overlay", lambda *a, **k: drawn.append(1) or real_heatmap(*a, **k))

    pictures = visual_prompt_images(image, image, region, anomaly_map)
    assert isinstance(pictures, PromptPictures) and list(pictures) == ["query", "reference", "outlined", "crop", "heatmap"]
    assert "heatmap" in pictures and not drawn  # asking whether it exists does not draw it
    shown = render_prompt(inputs.template, category=inputs.category, candidates=inputs.orders[0], images=pictures)
    assert "heatmap" not in {part.name for part in shown.images} and not drawn
    # Drawn on demand or all at once, the prompt is the same, and the heat map is the one drawn eagerly.
    eager = {name: pictures[name] for name in pictures}
    assert len(drawn) == 1
    again = render_prompt(inputs.template, category=inputs.category, candidates=inputs.orders[0], images=eager)
    assert (again.hash, again.request_hash) == (shown.hash, shown.request_hash)
    assert np.array_equal(np.asarray(eager["heatmap"]), np.asarray(real_heatmap(
        pictures["query"], harness.visual.map_thumbnail(anomaly_map).astype(np.float32) / 255.0)))


def test_prompt_pictures_behave_as_a_mapping():
    calls = []
    pictures = PromptPictures()
    pictures["query"] = Image.new("RGB", (4, 4))
    pictures.draw_later("late", lambda: calls.append(1) or Image.new("RGB", (2, 2), "red"))
    assert len(pictures) == 2 and "late" in pictures and "missing" not in pictures and not calls
    assert pictures["late"].size == (2, 2) and pictures["late"] is pictures["late"] and calls == [1]
    assert pictures.get("missing") is None
    pictures["late"] = Image.new("RGB", (3, 3))
    del pictures["query"]
    assert list(pictures) == ["late"] and pictures["late"].size == (3, 3)


def test_groups_larger_than_the_samples_in_flight_still_finish(small_tree, tmp_path, monkeypatch):
    # Three groups of 4 being prepared need 12 places; with 8 allowed the run would wait for itself.
    monkeypatch.setattr("harness.run.runner.preparation_threads", lambda: 1)
    monkeypatch.setattr("harness.run.runner.MAX_SAMPLES_IN_FLIGHT", 8)
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="oracle", models=["random"],
                       results_dir=tmp_path / "results", run_id="r", use_cache=False)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(Run(config, plugins.load_registry()).execute()), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the run waited for itself"
    assert outcome[0].run["status"] == "finished" and len(outcome[0].records) == 36


class PixelReadingPassThrough(PassThroughGate):
    """The ``none`` gate, declared to read pixels: the run decodes its first images while it is fitted."""

    name = "none-reading-pixels"
    reads_pixels = True


class PixelReadingPlugin:
    @hookimpl
    def register_gates(self, register):
        register(PixelReadingPassThrough)


def test_images_decoded_while_the_gate_is_fitted_are_decoded_once(small_tree, tmp_path, monkeypatch):
    import harness.run.stages as stages

    decoded = []
    real = stages.load_rgb
    monkeypatch.setattr(stages, "load_rgb", lambda path: decoded.append(str(path)) or real(path))
    registry = plugins.load_registry(extra_plugins=[("pixels", PixelReadingPlugin())])
    config = RunConfig(benchmark="folder", data_root=small_tree, gate="none-reading-pixels", models=["random"],
                       results_dir=tmp_path / "results", run_id="r", use_cache=False)
    result = Run(config, registry).execute()
    tests = [str(sample.image) for c in resolve_plan(config, registry).data.categories for sample in c.test_samples]
    assert sorted(path for path in decoded if path in tests) == sorted(tests)  # each test image once
    assert len(result.records) == len(tests) and result.run["status"] == "finished"
