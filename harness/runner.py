"""One run, from benchmark to run.json.

    benchmark -> samples -> gate (once per sample) -> flagged?
        no  -> "good" for every model, no call
        yes -> visual prompt images -> template -> every model (async) -> answer parser
    -> one record per (sample, model), appended at once -> metrics -> run.json

The gate and image preparation run in a worker thread while model calls for
earlier samples are in flight, so a slow gate and slow models overlap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import __version__, answers, metrics, paths
from harness.class_order import check_class_order, class_orders, first_repeat, position_bias, record_repeat
from harness.cache import ResponseCache
from harness.classifiers import Classifier, parse_model_spec
from harness.datasets import Benchmark, ReleaseMismatchError, manifest_hash
from harness.decision_report import decisions_for_run, record_decisions
from harness.decisions import CostMatrix, Policy, load_costs, load_policy, resolve_file
from harness.dispatch import CallResult, Dispatcher
from harness.errors import BadInputError, HarnessError
from harness.gate_metrics import gate_metrics, pixel_auroc, shrink_for_pixel_auroc
from harness.gates import FittedGate, Gate
from harness.images import load_mask, load_rgb
from harness.options import validate_options
from harness.plugins import Registry
from harness.pricing import load_prices, price_for
from harness.prompt_memo import PromptMemo
from harness.prompts import PromptTemplate, render_prompt
from harness.redact import redact_value
from harness.results import (
    SCHEMA_VERSION, RunFiles, environment_provenance, load_run, new_run_id, truncate_partial_line,
)
from harness.types import GOOD, GOOD_CLASS, BenchmarkData, Category, GateResult, Prompt, Sample, SupportExample
from harness.visual import resize_for_prompt, visual_prompt_images

#: Samples prepared ahead of the model calls; bounds the images held in memory.
MAX_SAMPLES_IN_FLIGHT = 64


def reference_path(category: Category, seed: int) -> Path | None:
    """The training normal a run with ``seed`` shows as the reference for ``category`` (None without any).

    Public so that readers of a finished run (``harness report``) can show the same picture.
    """
    if not category.train_images:
        return None
    return random.Random(f"{seed}:{category.name}").choice(category.train_images)


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Written to run.json as given."""

    benchmark: str
    models: list[str]
    gate: str = "oracle"
    prompt: str = "velm"
    data_root: Path | None = None
    categories: list[str] | None = None
    gate_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    results_dir: Path = Path("results")
    run_id: str | None = None
    n_boot: int = 1000
    output_formats: list[str] = field(default_factory=list)
    use_cache: bool = True
    prices: Path | None = None
    #: Backoff between retries of transient errors: initial wait and cap, in seconds.
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    #: Labelled examples per anomaly class drawn from the test set (seeded); excluded from scoring.
    shots: int = 0
    #: Evaluate the files a data root shares with a benchmark's released list when they differ.
    allow_partial: bool = False
    #: Candidate class order: "given", or "shuffle" with ``repeats`` >= 2 orders (harness/class_order.py).
    class_order: str = "given"
    repeats: int = 1
    #: Decision policy and cost matrix (paths or shipped names, harness/decisions.py); None for none.
    policy: Path | str | None = None
    costs: Path | str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], results_dir: Path, run_id: str) -> "RunConfig":
        """The config a run.json recorded, to resume that run exactly as it was started."""
        return cls(
            benchmark=data["benchmark"], models=list(data["models"]), gate=data["gate"], prompt=data["prompt"],
            data_root=Path(data["data_root"]) if data.get("data_root") else None,
            categories=data.get("categories"), gate_options=data.get("gate_options") or {},
            model_options=data.get("model_options") or {}, seed=data.get("seed", 0), limit=data.get("limit"),
            results_dir=results_dir, run_id=run_id, n_boot=data.get("n_boot", 1000),
            prices=Path(data["prices"]) if data.get("prices") else None,
            retry_initial_s=data.get("retry_initial_s", 1.0), retry_max_s=data.get("retry_max_s", 60.0),
            shots=data.get("shots", 0),
            allow_partial=data.get("allow_partial", False),
            class_order=data.get("class_order", "given"), repeats=data.get("repeats", 1),
            policy=data.get("policy"), costs=data.get("costs"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "data_root": str(self.data_root) if self.data_root else None,
            "categories": self.categories,
            "gate": self.gate,
            "gate_options": redact_value(self.gate_options),
            "models": self.models,
            "model_options": redact_value(self.model_options),
            "prompt": self.prompt,
            "seed": self.seed,
            "limit": self.limit,
            "n_boot": self.n_boot,
            "prices": str(self.prices) if self.prices else None,
            "retry_initial_s": self.retry_initial_s,
            "retry_max_s": self.retry_max_s,
            "shots": self.shots,
            "allow_partial": self.allow_partial,
            "class_order": self.class_order,
            "repeats": self.repeats,
            "policy": str(self.policy) if self.policy else None,
            "costs": str(self.costs) if self.costs else None,
        }


@dataclass
class Prepared:
    """A sample after the gate: what every model's record for it needs."""

    sample: Sample
    gate: GateResult | None
    bad_input: str | None = None
    prompts: dict[int | None, Prompt] = field(default_factory=dict)  # keyed by max_images


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    run: dict[str, Any]
    records: list[dict[str, Any]]


ProgressCallback = Callable[[str, int, int], None]  # (category, done, total)


class Run:
    """Resolves names through the registry, then executes one run."""

    def __init__(self, config: RunConfig, registry: Registry, progress: ProgressCallback | None = None):
        self.config = config
        self.registry = registry
        self.progress = progress or (lambda category, done, total: None)
        benchmark_entry = registry.get("benchmarks", config.benchmark)
        self.benchmark: Benchmark = benchmark_entry.obj
        gate_entry = registry.get("gates", config.gate)
        gate_class: type[Gate] = gate_entry.obj
        self.gate = gate_class(validate_options(gate_class.Options, config.gate_options, f"gate {config.gate!r}"))
        self.template_entry = registry.get("templates", config.prompt)
        self.template: PromptTemplate = self.template_entry.obj
        if not config.models:
            raise HarnessError("no models given; use --models, e.g. --models random")
        self.classifiers = [self._make_classifier(spec) for spec in config.models]
        price_table = load_prices(config.prices)
        self.prices = {c.spec: price_for(c.spec, price_table) for c in self.classifiers}
        check_class_order(config.class_order, config.repeats)
        self.policy, self.costs = self._load_decisions()
        self.records: list[dict[str, Any]] = []
        #: (sample_id, model, repeat) already recorded; filled when resuming.
        self.done: set[tuple[str, str, int]] = set()
        #: category -> support samples drawn by --shots (removed from the scored test set).
        self.support: dict[str, list[Sample]] = {}
        self._support_examples: list[SupportExample] = []  # the current category's
        #: category -> (score map, mask) per image at reduced size, for pixel AUROC; None once an image lacks a map.
        self._pixel_pairs: dict[str, list | None] = {}
        self._memo: PromptMemo | None = None  # the current category's prompt-key memo, when responses are cached
        self._parsed: dict[tuple, tuple[str | None, str | None]] = {}  # (answer text, candidates) -> parse

    def _make_classifier(self, spec: str) -> Classifier:
        plugin, model_id = parse_model_spec(spec)
        classifier_class: type[Classifier] = self.registry.get("classifiers", plugin).obj
        if classifier_class.requires_model_id and not model_id:
            raise HarnessError(f"model spec {spec!r} needs a model id: {plugin}:MODEL_ID")
        if classifier_class.needs_support and not self.config.shots:
            raise HarnessError(f"model {spec!r} learns from labelled examples: add --shots K (e.g. --shots 3)")
        options = validate_options(classifier_class.Options, self.config.model_options.get(spec), f"model {spec!r}")
        return classifier_class(model_id, options)

    def _load_decisions(self) -> tuple[Policy | None, CostMatrix | None]:
        """The decision policy and cost matrix of ``--policy``/``--costs`` (files or shipped names)."""
        modules = self.registry.manager.list_name_plugin() if self.registry.manager is not None else []
        policy = load_policy(resolve_file(self.config.policy, modules, "policy")) if self.config.policy else None
        if self.config.costs and policy is None:
            raise HarnessError("--costs prices the actions of a decision policy: add --policy FILE")
        costs = load_costs(resolve_file(self.config.costs, modules, "cost matrix")) if self.config.costs else None
        return policy, costs

    def _check_decisions(self, data: BenchmarkData) -> None:
        """Fail before any model is called when the policy or costs do not fit the benchmark."""
        if self.policy is None:
            return
        label_sets = {c.name: c.labels for c in data.categories}
        self.policy.check(label_sets, data.name, partial=self.config.categories is not None)
        if self.costs is not None:
            self.costs.check(self.policy, label_sets)

    # ----------------------------------------------------------------- data

    def load_data(self) -> BenchmarkData:
        root = self.config.data_root
        if root is None and self.benchmark.requires_data_root:
            raise HarnessError(f"benchmark {self.benchmark.name!r} needs --data-root")
        try:
            data = self.benchmark.load(root, self.config.categories)
        except ReleaseMismatchError as mismatch:
            if not self.config.allow_partial or mismatch.partial is None:
                raise
            # The user chose the intersection: say so, and keep the difference for run.json.
            data = mismatch.partial
            data.notes["partial"] = mismatch.difference
            logging.getLogger(__name__).warning(
                "--allow-partial: %d released file(s) missing and %d extra file(s) left out; "
                "evaluating the %d present in both", mismatch.difference["missing"], mismatch.difference["extra"],
                len(data.samples),
            )
        if self.config.shots:
            for category in data.categories:
                support = _draw_support(category.test_samples, self.config.shots, self.config.seed)
                chosen = {s.sample_id for s in support}
                category.test_samples = [s for s in category.test_samples if s.sample_id not in chosen]
                self.support[category.name] = support
        if self.config.limit is not None:
            for category in data.categories:
                category.test_samples = _seeded_subset(category.test_samples, self.config.limit, self.config.seed)
        if not data.samples:
            raise HarnessError(f"benchmark {data.name!r} has no test images at {data.root}")
        return data

    # ------------------------------------------------------------------ run

    def execute(self, resume: bool = False) -> RunResult:
        """Run (or with ``resume``, finish) the run; records are on disk as each sample finishes."""
        # The provenance (a git process, package metadata) is gathered while the data is listed.
        provenance = None if resume else _in_background(environment_provenance)
        data = self.load_data()
        self._check_decisions(data)
        run_id = self.config.run_id or new_run_id(data.name)
        run_dir = self.config.results_dir / run_id
        if resume:
            run = self._resume_state(run_dir, data)
        elif (run_dir / "run.json").exists():
            raise HarnessError(f"{run_dir} already holds a run; resume it with --resume {run_id} or pick another --run-id")
        else:
            run = self._run_header(run_id, data, provenance.result())
        files = RunFiles(run_dir)
        files.write_run(run)
        cache = ResponseCache(paths.cache_dir() / "responses.sqlite") if self.config.use_cache else None
        pm = self.registry.manager
        if pm is not None:
            pm.hook.harness_run_started(run=run)
        try:
            asyncio.run(self._run_all(data, files, run, cache))
            run["metrics"] = self._score(data)
            if self.policy is not None:
                run["decisions"] = decisions_for_run(first_repeat(self.records), self.policy, self.costs, [c.spec for c in self.classifiers])
            if self.config.repeats > 1:
                run["class_order"]["models"] = self._score_class_orders(data)
            first_model = self.classifiers[0].spec
            run["gate_metrics"] = gate_metrics([r for r in first_repeat(self.records) if r["model"] == first_model])
            self._add_pixel_auroc(run["gate_metrics"])
            run["status"] = "finished"
            if cache is not None:
                run["cache"] = {"path": str(cache.path), "hits": cache.hits, "misses": cache.misses}
        except BaseException as error:
            run["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            run["failure"] = f"{type(error).__name__}: {error}"
            raise
        finally:
            run["finished_at"] = _now()
            files.write_run(run)
            files.close()
            if cache is not None:
                cache.close()
        for name in self.config.output_formats:
            writer = self.registry.get("writers", name).obj
            run.setdefault("outputs", {})[name] = str(writer.write(run_dir, run, self.records))
        if run.get("outputs"):
            files.write_run(run)
        if pm is not None:
            pm.hook.harness_run_finished(run=run, run_dir=run_dir)
        return RunResult(run_id, run_dir, run, self.records)

    def _resume_state(self, run_dir: Path, data: BenchmarkData) -> dict[str, Any]:
        """Load a run's finished records so only the missing (sample, model) pairs are run."""
        truncate_partial_line(run_dir)
        run, records = load_run(run_dir)
        recorded, current = run["benchmark"]["manifest_hash"], manifest_hash(data)
        if recorded != current:
            raise HarnessError(
                f"cannot resume {run_dir.name}: the data at {data.root} is not what the run evaluated "
                f"(manifest {current}, the run has {recorded})"
            )
        seen: set[tuple[str, str, int]] = set()
        for record in records:
            key = (record["sample_id"], record["model"], record_repeat(record))
            if key not in seen:
                seen.add(key)
                self.records.append(record)
        self.done = seen
        run["status"] = "running"
        run.setdefault("resumed", []).append(
            {"at": _now(), "records_kept": len(self.records), "harness_version": __version__}
        )
        return run

    def _run_header(self, run_id: str, data: BenchmarkData, environment: dict[str, Any] | None = None) -> dict[str, Any]:
        """run.json as the run starts; ``environment`` is `environment_provenance()` (looked up when not given)."""
        plugins = {name: {"distribution": dist, "version": version} for name, (dist, version) in self.registry.plugins.items()}
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": "running",
            "created_at": _now(),
            "finished_at": None,
            "config": self.config.to_json(),
            "benchmark": {
                "name": data.name,
                "protocol": data.protocol,
                "data_root": str(data.root),
                "manifest_hash": manifest_hash(data),
                "n_samples": len(data.samples),
                "notes": data.notes,
                "support": {c: [s.sample_id for s in samples] for c, samples in self.support.items()},
                "categories": {
                    c.name: {"n_test": len(c.test_samples), "n_train": len(c.train_images), "labels": c.labels}
                    for c in data.categories
                },
            },
            "provenance": {
                **(environment if environment is not None else environment_provenance()),
                "seed": self.config.seed,
                "plugins": plugins,
                "prompt_template": {
                    "name": self.template.name,
                    "hash": self.template.hash,
                    "plugin": self.template_entry.plugin,
                },
                "gate": {**self.gate.describe(), "categories": {}},
                "classifiers": {c.spec: c.describe() for c in self.classifiers},
                "prices_usd_per_million_tokens": {
                    spec: None if price is None else {"input": price.input_per_million, "output": price.output_per_million}
                    for spec, price in self.prices.items()
                },
                "price_table": str(self.config.prices) if self.config.prices else "harness/prices.toml",
            },
            "metrics": {},
            **({"class_order": self._class_order_header(data)} if self.config.repeats > 1 else {}),
        }

    def _candidates(self, category: Category) -> list:
        """The candidate classes of a category in the given order (``good`` last when the gate passes all)."""
        return list(category.classes) + ([GOOD_CLASS] if self.gate.passes_all else [])

    def _class_order_header(self, data: BenchmarkData) -> dict[str, Any]:
        """run.json's record of the orders shown: candidate keys per category and repeat."""
        orders = {
            c.name: [[info.key for info in order]
                     for order in class_orders(self._candidates(c), self.config.repeats, self.config.seed, c.name)]
            for c in data.categories
        }
        return {"mode": self.config.class_order, "repeats": self.config.repeats,
                "repeat_0": "the given order; repeats 1.. are seeded shuffles", "orders": orders, "models": {}}

    async def _run_all(self, data: BenchmarkData, files: RunFiles, run: dict[str, Any], cache: ResponseCache | None) -> None:
        dispatchers = [
            Dispatcher(c, cache=cache, wait_initial_s=self.config.retry_initial_s, wait_max_s=self.config.retry_max_s)
            for c in self.classifiers
        ]
        try:
            for category in data.categories:
                if not self._pending(category.test_samples):
                    continue  # resumed: every model already answered every sample here
                fitted = await asyncio.to_thread(self.gate.fit, category)
                run["provenance"]["gate"]["categories"][category.name] = fitted.info()
                # Kept for a resumed run's provenance: atomic, but not synced to disk (the
                # records are flushed, not synced, either); the run's last write is synced.
                files.write_run(run, durable=False)
                await self._run_category(category, fitted, dispatchers, files)
        finally:
            for classifier in self.classifiers:
                await classifier.aclose()

    async def _run_category(self, category: Category, fitted: FittedGate, dispatchers: list[Dispatcher], files: RunFiles) -> None:
        candidates = self._candidates(category)
        orders = class_orders(candidates, self.config.repeats, self.config.seed, category.name)
        # Support images are read in a worker thread; without --shots there are none (no thread round trip).
        self._support_examples = await asyncio.to_thread(self._support_for, category) if self.support.get(category.name) else []
        cache = next((d.cache for d in dispatchers if d.cache is not None), None)
        self._memo = None if cache is None else PromptMemo(
            cache, dispatchers, self.gate, fitted, self.template, category, orders,
            reference_path(category, self.config.seed), self.support.get(category.name, []), self.config.repeats, self.done,
        )
        for classifier in self.classifiers:
            classifier.set_support(category.name, self._support_examples)
        pending = self._pending(category.test_samples)
        total = len(category.test_samples)
        done = total - len(pending)  # resumed runs start part-way
        in_flight = asyncio.Semaphore(MAX_SAMPLES_IN_FLIGHT)
        tasks: list[asyncio.Task] = []
        self.progress(category.name, done, total)

        async def finish(prepared: Prepared) -> None:
            nonlocal done
            try:
                await self._classify_and_record(prepared, dispatchers, files)
            finally:
                in_flight.release()
            done += 1
            self.progress(category.name, done, total)

        # The training normal shown beside each query is read at the first sample prepared in full:
        # a sample recalled from the prompt memo shows no image (the memo keys on the reference's identity).
        reference, reference_read = None, False
        for sample in pending:
            await in_flight.acquire()
            prepared = self._recall(sample)
            if prepared is None:
                if not reference_read:
                    reference, reference_read = await asyncio.to_thread(self._reference_image, category), True
                prepared = await asyncio.to_thread(self._prepare, sample, fitted, category, reference, orders)
            tasks.append(asyncio.create_task(finish(prepared)))
        await asyncio.gather(*tasks)

    def _support_for(self, category: Category) -> list[SupportExample]:
        """Prompt images of this category's support samples, from their ground-truth masks."""
        examples = []
        for sample in self.support.get(category.name, []):
            try:
                image = load_rgb(sample.image)
                region = load_mask(sample.mask, image.size) if sample.mask else None
            except BadInputError as error:
                raise HarnessError(f"support image for --shots is unreadable: {error}") from None
            region = region if region is not None and region.any() else None
            visuals = visual_prompt_images(image, None, region, None)
            examples.append(SupportExample(category.class_info(sample.label), visuals))
        return examples

    def _pending(self, samples: list[Sample]) -> list[Sample]:
        """Samples some model has not answered yet (all of them, unless resuming)."""
        specs = [c.spec for c in self.classifiers]
        repeats = range(self.config.repeats)
        return [s for s in samples if any((s.sample_id, spec, r) not in self.done for spec in specs for r in repeats)]

    def _reference_image(self, category: Category):
        """A normal image from the training split (never the test set), chosen by seed."""
        path = reference_path(category, self.config.seed)
        if path is None:
            return None
        try:
            return load_rgb(path)
        except BadInputError as error:
            raise HarnessError(f"reference image for category {category.name!r} is unreadable: {error}") from None

    def _recall(self, sample: Sample) -> Prepared | None:
        """What `_prepare` gave last time, when every answer is cached (harness.prompt_memo): no image is read."""
        recalled = self._memo.recall(sample) if self._memo is not None else None
        if recalled is None:
            return None
        gate_result, prompts = recalled
        self._keep_pixel_pair(sample, None, gate_result)  # a remembered verdict has no map: no image needed
        return Prepared(sample, gate_result, prompts=prompts)

    def _prepare(self, sample: Sample, fitted: FittedGate, category: Category, reference, orders) -> Prepared:
        """`_prepare_in_full`, remembered in the prompt-key memo when a re-run may reuse it."""
        prepared = self._prepare_in_full(sample, fitted, category, reference, orders)
        if self._memo is not None and prepared.bad_input is None:
            self._memo.remember(sample, prepared.gate, prepared.prompts)
        return prepared

    def _prepare_in_full(self, sample: Sample, fitted: FittedGate, category: Category, reference, orders) -> Prepared:
        """Load, gate, and (when flagged) render the prompt once per class order and distinct image limit."""
        try:
            image = load_rgb(sample.image)
            gate_result = fitted.score(sample, image)
        except BadInputError as error:
            return Prepared(sample, None, bad_input=str(error))
        prepared = Prepared(sample, gate_result)
        self._keep_pixel_pair(sample, image, gate_result)
        if not gate_result.flagged:
            return prepared
        visuals = visual_prompt_images(image, reference, gate_result.region, gate_result.anomaly_map)
        visuals = {name: resize_for_prompt(img) for name, img in visuals.items()}
        # Labelled in-context examples for templates: images support_1.. and extra.support.
        support = []
        for number, example in enumerate(self._support_examples, start=1):
            name = f"support_{number}"
            visuals[name] = example.images.get("outlined", example.images["query"])
            support.append({"name": example.label.name, "key": example.label.key, "image": name})
        for repeat, candidates in enumerate(orders):
            for classifier in self.classifiers:
                limit = classifier.capabilities.max_images
                if (repeat, limit) not in prepared.prompts:
                    prepared.prompts[(repeat, limit)] = render_prompt(
                        self.template, category=category, candidates=candidates, images=visuals, max_images=limit,
                        extra={"support": support},
                    )
                    self._check_order_shown(prepared, repeat, limit, orders)
        return prepared

    def _check_order_shown(self, prepared: Prepared, repeat: int, limit, orders) -> None:
        """A shuffled order must change the prompt; otherwise the template hides the order (and the cache would answer)."""
        if repeat == 0 or [c.key for c in orders[repeat]] == [c.key for c in orders[0]]:
            return
        if prepared.prompts[(repeat, limit)].hash == prepared.prompts[(0, limit)].hash:
            raise HarnessError(
                f"prompt template {self.template.name!r} renders the same prompt for different class orders "
                "(it does not list `classes` in the order given), so --class-order shuffle cannot measure position bias"
            )

    def _keep_pixel_pair(self, sample: Sample, image, gate_result: GateResult) -> None:
        """Keep a small copy of the gate's map and the true mask; a category with a map-less image gets no pixel AUROC."""
        pairs = self._pixel_pairs.setdefault(sample.category, [])
        if pairs is None:
            return
        score_map = gate_result.score_map if gate_result.score_map is not None else gate_result.anomaly_map
        if score_map is None or (sample.is_anomalous and sample.mask is None):
            self._pixel_pairs[sample.category] = None
            return
        mask = load_mask(sample.mask, image.size)
        pairs.append(shrink_for_pixel_auroc(np.asarray(score_map, dtype=np.float32), mask))

    async def _classify_and_record(self, prepared: Prepared, dispatchers: list[Dispatcher], files: RunFiles) -> None:
        """Ask every model that has not answered this sample yet; write each record the moment it is ready."""

        async def one(dispatcher: Dispatcher, repeat: int) -> None:
            classifier = dispatcher.classifier
            if (prepared.sample.sample_id, classifier.spec, repeat) in self.done:
                return
            if prepared.bad_input is not None or not prepared.gate or not prepared.gate.flagged:
                record = self._record(prepared, classifier, None, None, repeat=repeat)
            else:
                prompt = prepared.prompts[(repeat, classifier.capabilities.max_images)]
                call = await dispatcher.call(prompt)
                record = self._record(prepared, classifier, prompt, call, repeat=repeat)
            files.append_record(record)
            self.records.append(record)
            if self.registry.manager is not None:
                self.registry.manager.hook.harness_sample_done(record=record)

        jobs = [one(d, r) for d in dispatchers for r in range(self.config.repeats)]
        if len(jobs) == 1:
            await jobs[0]  # one model, one order: no task to wrap it in
        else:
            await asyncio.gather(*jobs)

    def _record(self, prepared: Prepared, classifier: Classifier, prompt: Prompt | None,
                call: CallResult | None, repeat: int = 0) -> dict[str, Any]:
        sample, gate = prepared.sample, prepared.gate
        predicted, error, detail, response_text = None, None, None, None
        if prepared.bad_input is not None:
            error, detail = "bad_input", prepared.bad_input
        elif call is None:
            predicted = GOOD  # passed as normal by the gate: no model is asked
        elif call.error is not None:
            error, detail = call.error, call.detail
        else:
            response = call.response
            response_text = response.text
            if response.option_scores is not None:
                predicted, error = answers.parse_option_scores(response.option_scores, prompt.candidates)
            elif response.refused:
                error = "refused"
            else:
                # Option numbers refer to the order this prompt listed the classes in.
                predicted, error = self._parse(response.text, prompt.candidates)
        usage = call.response if call is not None and call.response is not None else None
        record = {
            "sample_id": sample.sample_id,
            "benchmark": self.benchmark.name,
            "category": sample.category,
            "image": sample.relpath,
            "true_label": sample.label,
            "gate": None if gate is None else {
                "name": self.gate.name,
                "score": float(gate.score),
                "flagged": bool(gate.flagged),
                "threshold": gate.threshold,
            },
            "model": classifier.spec,
            "prompt": None if prompt is None else {"name": prompt.template, "hash": prompt.hash},
            "repeat": repeat,
            "class_order": None if prompt is None else [c.key for c in prompt.candidates],
            "called": call is not None,
            "response": response_text,
            "option_scores": _option_scores(usage),
            "predicted_label": predicted,
            "correct": error is None and predicted == sample.label,
            "error": error,
            "error_detail": detail,
            "latency_s": call.latency_s if call is not None else None,
            "queued_s": call.queued_s if call is not None else None,
            "attempts": call.attempts if call is not None else 0,
            "cached": bool(call.cached) if call is not None else False,
            "tokens_in": usage.tokens_in if usage else None,
            "tokens_out": usage.tokens_out if usage else None,
            "cost_usd": self._cost(classifier.spec, usage),
        }
        record["outcome"] = metrics.outcome_of(record, self.gate.passes_all)
        if self.policy is not None:
            record.update(record_decisions(record, self.policy))
        return record

    def _parse(self, text: str, candidates: list) -> tuple[str | None, str | None]:
        """`answers.parse_answer`, once per distinct (answer, candidates): it is pure, and models repeat short answers."""
        key = (text, tuple(candidates))
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = answers.parse_answer(text, candidates)
        return parsed

    def _add_pixel_auroc(self, figures: dict[str, Any]) -> None:
        """Pixel AUROC per category where the gate mapped every image and masks exist (not across a resume)."""
        values = []
        for category, entry in figures["categories"].items():
            pairs = None if self.done else self._pixel_pairs.get(category)
            entry["pixel_auroc"] = pixel_auroc(pairs) if pairs else None
            if entry["pixel_auroc"] is not None:
                values.append(entry["pixel_auroc"])
        figures["pixel_auroc"] = float(np.mean(values)) if values and len(values) == len(figures["categories"]) else None

    def _cost(self, spec: str, usage) -> float | None:
        """The backend's own cost figure when it gives one, else tokens times the price table."""
        if usage is None:
            return None
        if usage.cost_usd is not None:
            return usage.cost_usd
        price = self.prices.get(spec)
        return price.cost(usage.tokens_in, usage.tokens_out) if price else None

    # -------------------------------------------------------------- scoring

    def _score(self, data: BenchmarkData) -> dict[str, Any]:
        label_sets = {c.name: c.labels for c in data.categories}
        scores = {}
        for classifier in self.classifiers:
            # Headline figures are repeat 0's (the given class order), comparable with runs without repeats.
            own = [r for r in first_repeat(self.records) if r["model"] == classifier.spec]
            scores[classifier.spec] = metrics.score_model(
                own, label_sets, gate_passes_all=self.gate.passes_all, seed=self.config.seed, n_boot=self.config.n_boot
            )
        return scores

    def _score_class_orders(self, data: BenchmarkData) -> dict[str, Any]:
        """Per model: accuracy per class order, answer consistency across orders, answer positions."""
        label_sets = {c.name: c.labels for c in data.categories}
        return {
            c.spec: position_bias([r for r in self.records if r["model"] == c.spec], label_sets, self.config.repeats,
                                  seed=self.config.seed, n_boot=self.config.n_boot)
            for c in self.classifiers
        }


def _draw_support(samples: list[Sample], shots: int, seed: int) -> list[Sample]:
    """``shots`` samples of each anomaly class (seeded), leaving at least one of each class to score."""
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.is_anomalous:
            by_class.setdefault(sample.label, []).append(sample)
    support = []
    for label, members in sorted(by_class.items()):
        take = min(shots, len(members) - 1)
        rng = random.Random(f"{seed}:support:{label}")
        support.extend(members[i] for i in sorted(rng.sample(range(len(members)), take)))
    return support


def _seeded_subset(samples: list[Sample], limit: int, seed: int) -> list[Sample]:
    if limit >= len(samples):
        return samples
    chosen = random.Random(seed).sample(range(len(samples)), limit)
    return [samples[i] for i in sorted(chosen)]


def _option_scores(usage) -> dict[str, float | None] | None:
    """An option-scoring model's score per class key (a non-finite score as null, to keep the line strict JSON)."""
    if usage is None or usage.option_scores is None:
        return None
    return {key: float(value) if math.isfinite(value) else None for key, value in usage.option_scores.items()}


def _in_background(function: Callable[[], Any]) -> Future:
    """Start ``function`` in a daemon thread; its result (or exception) arrives through the future."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(function())
        except BaseException as error:  # handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=work, name="harness-background", daemon=True).start()
    return future


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
