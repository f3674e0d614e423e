"""One run, from benchmark to run.json.

    benchmark -> samples -> gate (once per sample) -> flagged?
        no  -> "good" for every model, no call
        yes -> visual prompt images -> template -> every model (async) -> answer parser
    -> one record per (sample, model), appended at once -> metrics -> run.json

The gate and image preparation run in a worker thread while model calls for
earlier samples are in flight, so a slow gate and slow models overlap.

The pieces a run uses live beside it: `harness.run.run_config` (the config and its
run.json round trip), `harness.run.sampling` (seeded support set, subset and
reference image), `harness.run.run_header` (run.json as the run starts),
`harness.run.run_records` (one record per answer) and `harness.run.run_folder` (the
result). `RunConfig`, `RunResult` and `reference_path` are importable from
here as before. A change to how samples are prepared bumps
`harness.run.prompt_memo.PREPARATION_VERSION`, wherever that code lives.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import __version__
from harness.analyses import FinishedRun, apply_analyses
from harness.classifiers import Classifier, parse_model_spec
from harness.datasets import Benchmark, ReleaseMismatchError, manifest_hash
from harness.errors import BadInputError, HarnessError
from harness.gates import FittedGate, Gate, gate_mode
from harness.images import load_mask, load_rgb
from harness.options import validate_options
from harness.plugins import BUILTIN_PLUGIN, Registry
from harness.prompts import PromptTemplate, render_prompt
from harness.results import RunFiles, environment_provenance, load_run, new_run_id, truncate_partial_line
from harness.run import class_file, prechecks
from harness.run.cache import ResponseCache, default_path as default_cache_path
from harness.run.dispatch import Dispatcher
from harness.run.failfast import EarlyStop, FailFast
from harness.run.pricing import load_prices, price_for
from harness.run.prompt_memo import PromptMemo
from harness.run.prompt_record import PromptImageStore, support_picture, support_visuals
from harness.run.resume import prepare_resume, record_key
from harness.run.run_config import RunConfig
from harness.run.run_folder import RunFolder
from harness.run.run_header import header_inputs, now_utc, run_header
from harness.run.run_records import Prepared, RecordBuilder
from harness.run.sampling import draw_support, reference_path, seeded_subset
from harness.scoring import sample_counts
from harness.scoring.class_order import check_class_order, class_orders
from harness.scoring.decisions import CostMatrix, Policy, load_costs, load_policy, resolve_file
from harness.scoring.gate_metrics import shrink_for_pixel_auroc
from harness.types import GOOD_CLASS, BenchmarkData, Category, GateResult, Sample, SupportExample
from harness.visual import resize_for_prompt, visual_prompt_images

#: Samples prepared ahead of the model calls; bounds the images held in memory.
MAX_SAMPLES_IN_FLIGHT = 64


#: What `Run.execute` returns: the run it wrote, as a `RunFolder` (harness/run/run_folder.py).
RunResult = RunFolder

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
        if "threshold" in config.gate_options and "threshold" not in gate_class.Options.model_fields:
            raise HarnessError(f"--gate-threshold: gate {config.gate!r} has no threshold (it does not score images); "
                               "only a scoring gate such as patchcore takes one")
        self.gate = gate_class(validate_options(gate_class.Options, config.gate_options, f"gate {config.gate!r}"))
        self.gate_mode = gate_mode(self.gate)  # how templates word what the gate did
        self.template_entry = registry.get("templates", config.prompt)
        self.template: PromptTemplate = self.template_entry.obj
        if not config.models:
            raise HarnessError("no models given; use --models, e.g. --models random")
        # Everything checkable is checked before the first request (harness/run/prechecks.py).
        prechecks.check_model_options(config.model_options, config.models)
        self.writers = prechecks.resolve_writers(registry, config.output_formats)
        prechecks.check_results_dir(config.results_dir)
        self.classifiers = [self._make_classifier(spec) for spec in config.models]
        price_table = load_prices(config.prices)
        self.prices = {c.spec: price_for(c.spec, price_table) for c in self.classifiers}
        check_class_order(config.class_order, config.repeats)
        self.policy, self.costs = self._load_decisions()
        self.records: list[dict[str, Any]] = []
        #: (sample_id, model, repeat) already recorded; filled when resuming.
        self.done: set[tuple[str, str, int]] = set()
        #: (sample_id, model, repeat) -> attempts spent by the records a resume replaces (harness/run/resume.py).
        self.earlier_attempts: dict[tuple[str, str, int], int] = {}
        #: category -> support samples drawn by --shots (removed from the scored test set).
        self.support: dict[str, list[Sample]] = {}
        self._support_examples: list[SupportExample] = []  # the current category's
        #: category -> (score map, mask) per image at reduced size, for pixel AUROC; None once an image lacks a map.
        self._pixel_pairs: dict[str, list | None] = {}
        self._memo: PromptMemo | None = None  # the current category's prompt-key memo, when responses are cached
        self._prompt_images: PromptImageStore | None = None  # what redraws each prompt's images (harness.run.prompt_record)
        self.recorder = RecordBuilder(self.benchmark.name, self.gate, self.prices, self.policy, config.answers)
        self.failfast = FailFast()
        self.class_file: class_file.UserClassFile | None = None  # read by load_data

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
        policy = load_policy(resolve_file(self.config.policy, self.registry.policies, "policy")) if self.config.policy else None
        if self.config.costs and policy is None:
            raise HarnessError("--costs prices the actions of a decision policy: add --policy FILE")
        costs = load_costs(resolve_file(self.config.costs, self.registry.costs, "cost matrix")) if self.config.costs else None
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
        # The user's descriptions and fixed references, checked before any model call (harness/run/class_file.py).
        self.class_file = class_file.apply_to_run(data, self.config.classes, data.root)
        # Checked before any draw, gate fit or model call (harness.scoring.sample_counts).
        in_data = sample_counts.defect_counts(data.categories)
        sample_counts.check_shots(data.categories, self.config.shots)
        if self.config.shots:
            for category in data.categories:
                support = draw_support(category.test_samples, self.config.shots, self.config.seed)
                chosen = {s.sample_id for s in support}
                category.test_samples = [s for s in category.test_samples if s.sample_id not in chosen]
                self.support[category.name] = support
        if self.config.limit is not None:
            for category in data.categories:
                category.test_samples = seeded_subset(category.test_samples, self.config.limit, self.config.seed)
        sample_counts.warn_few_to_score(data, in_data, shots=self.config.shots, limit=self.config.limit)
        if not data.samples:
            raise HarnessError(f"benchmark {data.name!r} has no test images at {data.root}")
        return data

    # ------------------------------------------------------------------ run

    def execute(self, resume: bool = False, retry_errors: bool = False) -> RunResult:
        """Run (or with ``resume``, finish) the run; records are on disk as each sample finishes.

        A resume also asks again every record whose failure was transient, and with
        ``retry_errors`` every failed record but ``bad_input`` (harness/run/resume.py).
        """
        # The provenance (a git process, package metadata) is gathered while the data is listed.
        provenance = None if resume else _in_background(environment_provenance)
        data = self.load_data()
        self._check_decisions(data)
        run_id = self.config.run_id or new_run_id(data.name)
        run_dir = self.config.results_dir / run_id
        if resume:
            run = self._resume_state(run_dir, data, retry_errors)
        elif (run_dir / "run.json").exists():
            raise HarnessError(f"{run_dir} already holds a run; resume it with --resume {run_id} or pick another --run-id")
        else:
            inputs = header_inputs(
                self.config, data, plugins=self.registry.plugins, class_file=self.class_file, support=self.support,
                template=self.template, template_plugin=self.template_entry.plugin, gate=self.gate,
                classifiers=self.classifiers, prices=self.prices, candidates=self.candidates)
            run = run_header(inputs, run_id, data, provenance.result())
        files = RunFiles(run_dir)
        files.write_run(run)
        self.failfast.run_dir = run_dir
        cache = ResponseCache(default_cache_path()) if self.config.use_cache else None
        pm = self.registry.manager
        if pm is not None:
            pm.hook.harness_run_started(run=run)
        try:
            asyncio.run(self._run_all(data, files, run, cache))
            apply_analyses(self._analyses(), self._finished(data), run)
            run["status"] = "finished"
            if cache is not None:
                run["cache"] = {"path": _home_relative(cache.path), "hits": cache.hits, "misses": cache.misses}
        except BaseException as error:
            run["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            run["failure"] = f"{type(error).__name__}: {error}"
            if isinstance(error, EarlyStop):
                run["stopped_early"] = error.as_json()
            raise
        finally:
            run["finished_at"] = now_utc()
            files.write_run(run)
            files.close()
            if cache is not None:
                cache.close()
        for name, writer in self.writers.items():
            run.setdefault("outputs", {})[name] = str(writer.write(run_dir, run, self.records))
        if run.get("outputs"):
            files.write_run(run)
        if pm is not None:
            pm.hook.harness_run_finished(run=run, run_dir=run_dir)
        return RunResult(run_id, run_dir, run, self.records)

    def _resume_state(self, run_dir: Path, data: BenchmarkData, retry_errors: bool = False) -> dict[str, Any]:
        """Load a run's records; what is missing, or is to be asked again, is what runs."""
        truncate_partial_line(run_dir)
        run, records = load_run(run_dir)
        recorded, current = run["benchmark"]["manifest_hash"], manifest_hash(data)
        if recorded != current:
            raise HarnessError(
                f"cannot resume {run_dir.name}: the data at {data.root} is not what the run evaluated "
                f"(manifest {current}, the run has {recorded})"
            )
        class_file.check_resumed(run, self.class_file)
        plan = prepare_resume(run_dir, records, retry_errors, resume_number=len(run.get("resumed", [])))
        self.records.extend(plan.kept)
        self.done = {record_key(r) for r in plan.kept}
        self.earlier_attempts = plan.earlier_attempts
        run["status"] = "running"
        run.setdefault("resumed", []).append(
            {"at": now_utc(), **plan.summary(retry_errors), "harness_version": __version__}
        )
        return run

    def candidates(self, category: Category) -> list:
        """The candidate classes of a category in the given order (``good`` last when the gate passes all)."""
        return list(category.classes) + ([GOOD_CLASS] if self.gate.passes_all else [])

    async def _run_all(self, data: BenchmarkData, files: RunFiles, run: dict[str, Any], cache: ResponseCache | None) -> None:
        dispatchers = [
            Dispatcher(c, cache=cache, wait_initial_s=self.config.retry_initial_s, wait_max_s=self.config.retry_max_s,
                       failfast=self.failfast)
            for c in self.classifiers
        ]
        self._prompt_images = PromptImageStore(files.run_dir, data.root)
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
        candidates = self.candidates(category)
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
        self._prompt_images.begin_category(reference_path(category, self.config.seed), self.support.get(category.name, []))
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
        try:
            for sample in pending:
                await in_flight.acquire()
                self.failfast.check()  # a model's first requests all failed fatally: prepare no more
                prepared = self._recall(sample)
                if prepared is None:
                    if not reference_read:
                        reference, reference_read = await asyncio.to_thread(self._reference_image, category), True
                    prepared = await asyncio.to_thread(self._prepare, sample, fitted, category, reference, orders)
                tasks.append(asyncio.create_task(finish(prepared)))
            await asyncio.gather(*tasks)
        except BaseException:
            # Stopping (early stop, an error, Ctrl-C): requests still in flight are abandoned, not awaited.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _support_for(self, category: Category) -> list[SupportExample]:
        """Prompt images of this category's support samples, from their ground-truth masks."""
        examples = []
        for sample in self.support.get(category.name, []):
            try:
                visuals = support_visuals(load_rgb(sample.image), sample.mask)
            except BadInputError as error:
                raise HarnessError(f"support image for --shots is unreadable: {error}") from None
            examples.append(SupportExample(category.class_info(sample.label), visuals))
        return examples

    def _pending(self, samples: list[Sample]) -> list[Sample]:
        """Samples some model has not answered yet (all of them, unless resuming)."""
        specs = [c.spec for c in self.classifiers]
        repeats = range(self.config.repeats)
        return [s for s in samples if any((s.sample_id, spec, r) not in self.done for spec in specs for r in repeats)]

    def _reference_image(self, category: Category):
        """A normal image from the training split (never the test set), chosen by seed, at prompt size.

        Shrunk here, once per category, rather than with every sample's images
        (the same pixels: `resize_for_prompt` leaves an image that fits alone).
        """
        path = reference_path(category, self.config.seed)
        if path is None:
            return None
        try:
            return resize_for_prompt(load_rgb(path))
        except BadInputError as error:
            raise HarnessError(f"reference image for category {category.name!r} is unreadable: {error}") from None

    def _recall(self, sample: Sample) -> Prepared | None:
        """What `_prepare` gave last time, when every answer is cached (harness.run.prompt_memo): no image is read."""
        recalled = self._memo.recall(sample) if self._memo is not None else None
        if recalled is None:
            return None
        gate_result, prompts = recalled
        self._keep_pixel_pair(sample, None, gate_result)  # a remembered verdict has no map: no image needed
        prepared = Prepared(sample, gate_result, prompts=prompts)
        prepared.images = self._prompt_images.keep(prepared)  # no region to store: references only
        return prepared

    def _prepare(self, sample: Sample, fitted: FittedGate, category: Category, reference, orders) -> Prepared:
        """`_prepare_in_full`, remembered in the prompt-key memo when a re-run may reuse it."""
        prepared = self._prepare_in_full(sample, fitted, category, reference, orders)
        prepared.images = self._prompt_images.keep(prepared)
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
        visuals = visual_prompt_images(image, reference, gate_result.region, gate_result.anomaly_map)  # at prompt size
        # Labelled in-context examples for templates: images support_1.. and extra.support.
        support = []
        for number, example in enumerate(self._support_examples, start=1):
            name = f"support_{number}"
            visuals[name] = support_picture(example.images)
            support.append({"name": example.label.name, "key": example.label.key, "image": name})
        for repeat, candidates in enumerate(orders):
            for classifier in self.classifiers:
                limit = classifier.capabilities.max_images
                if (repeat, limit) not in prepared.prompts:
                    prepared.prompts[(repeat, limit)] = render_prompt(
                        self.template, category=category, candidates=candidates, images=visuals, max_images=limit,
                        extra={"support": support}, gate_mode=self.gate_mode,
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
            key = (prepared.sample.sample_id, classifier.spec, repeat)
            if key in self.done:
                return
            earlier = self.earlier_attempts.get(key, 0)
            if prepared.bad_input is not None or not prepared.gate or not prepared.gate.flagged:
                record = self.recorder.record(prepared, classifier, None, None, repeat=repeat, earlier_attempts=earlier)
            else:
                prompt = prepared.prompts[(repeat, classifier.capabilities.max_images)]
                call = await dispatcher.call(prompt)
                record = self.recorder.record(prepared, classifier, prompt, call, repeat=repeat, earlier_attempts=earlier)
            files.append_record(record)
            self.records.append(record)
            if self.registry.manager is not None:
                self.registry.manager.hook.harness_sample_done(record=record)
            self.failfast.check()  # the failed record is kept; the run stops after it

        jobs = [one(d, r) for d in dispatchers for r in range(self.config.repeats)]
        if len(jobs) == 1:
            await jobs[0]  # one model, one order: no task to wrap it in
        else:
            await asyncio.gather(*jobs)

    # -------------------------------------------------------------- analyses

    def _finished(self, data: BenchmarkData) -> FinishedRun:
        """What the analyses read: the finished records and what the run was asked to do."""
        return FinishedRun(
            records=self.records, models=[c.spec for c in self.classifiers], categories=data.categories,
            gate_name=self.gate.name, gate_passes_all=self.gate.passes_all, seed=self.config.seed,
            n_boot=self.config.n_boot, repeats=self.config.repeats, resumed=bool(self.done),
            pixel_pairs=self._pixel_pairs, policy=self.policy, costs=self.costs,
        )

    def _analyses(self) -> list:
        """Registered analyses, the core's own first (their run.json order), then the plugins'."""
        entries = list(self.registry.analyses.values())
        return [e.obj for e in entries if e.plugin == BUILTIN_PLUGIN] + [e.obj for e in entries if e.plugin != BUILTIN_PLUGIN]


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


def _home_relative(path: Path) -> str:
    """``~/...`` for a path in the home folder: a published run.json names no user's home."""
    try:
        return "~/" + path.absolute().relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)
