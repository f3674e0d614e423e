"""One run, from benchmark to run.json: the local executor of the run's stages (`harness.run.stages`).

`Run` resolves the plan, writes run.json's header, then per category fits the gate and, per sample,
prepares it and asks every model about a flagged one, appending each record at once; the analyses
finish run.json. Preparation runs in a worker thread while earlier samples' calls are in flight.
`RunConfig`, `RunResult` and `reference_path` are importable from here as before.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from harness import __version__
from harness.analyses import FinishedRun, apply_analyses
from harness.datasets import manifest_hash
from harness.errors import HarnessError
from harness.gates import FittedGate
from harness.plugins import Registry
from harness.record import records_from_json
from harness.results import RunFiles, environment_provenance, load_run, new_run_id, truncate_partial_line
from harness.run import class_file
from harness.run.batch_mode import BatchMode, batch_specs
from harness.run.cache import ResponseCache, default_path as default_cache_path
from harness.run.dispatch import Dispatcher
from harness.run.failfast import EarlyStop, FailFast
from harness.run.plan import RunParts, RunPlan, load_plan, resolve_parts
from harness.run.prompt_memo import PromptMemo
from harness.run.prompt_record import PromptImageStore
from harness.run.resume import prepare_resume, record_key
from harness.run.run_config import RunConfig
from harness.run.run_folder import RunFolder
from harness.run.run_header import header_inputs, now_utc, run_header
from harness.run.run_records import Prepared, RecordBuilder
from harness.run.sampling import reference_path  # noqa: F401  (importable from here as before)
from harness.run.stages import (
    CategoryInputs, PreparedSample, classify, fit_gate, load_sample_image, prepare_batch, read_reference, read_support,
)
from harness.types import Category, Sample

#: Samples prepared ahead of the model calls (more when GROUPS_AHEAD groups need more); bounds the images held.
MAX_SAMPLES_IN_FLIGHT = 64
#: Groups of samples being prepared at once: one decoded, one scored by the gate, one drawn.
GROUPS_AHEAD = 3

RunResult = RunFolder  # what `Run.execute` returns (its old name)

ProgressCallback = Callable[[str, int, int], None]  # (category, done, total)


class Run:
    """The local executor of one run: resolves its plan, then runs the stages over it with asyncio.

    Another executor (hook ``register_executors``) subclasses it and replaces `_fit`, `_category_inputs` and
    `_prepare_batch` (where a category is fitted and prepared) or the classifiers' calls; records stay written here.
    """

    name = "local"
    description = "this process: asyncio for the model calls, threads for preparation"

    def __init__(self, config: RunConfig, registry: Registry, progress: ProgressCallback | None = None):
        self.config = config
        self.registry = registry
        self.progress = progress or (lambda category, done, total: None)
        if config.executor_options and getattr(self, "Options", None) is None:  # an executor with options validates them
            raise HarnessError(f"[executor-options] are given, but executor {self.name!r} takes none (ray does)")
        self.parts: RunParts = resolve_parts(config, registry)  # the benchmark data is read by `execute`
        self.classifiers = self.parts.classifiers
        self.records: list[dict[str, Any]] = []
        self.done: set[tuple[str, str, int]] = set()  # (sample_id, model, repeat) recorded before a resume
        self.earlier_attempts: dict[tuple[str, str, int], int] = {}  # attempts of the records a resume replaces
        #: category -> (score map, mask) per image at reduced size, for pixel AUROC; None once an image lacks a map.
        self._pixel_pairs: dict[str, list | None] = {}
        self._memo: PromptMemo | None = None  # the current category's prompt-key memo, when responses are cached
        self._prompt_images: PromptImageStore | None = None  # what redraws each prompt's images
        parts = self.parts
        self.recorder = RecordBuilder(parts.benchmark.name, parts.gate, parts.prices, parts.policy, config.answers)
        self.failfast = FailFast()
        self.batch_specs = batch_specs(config.batch, self.classifiers)  # models whose requests go in provider batches
        self._batches: BatchMode | None = None
        self._thread_count = preparation_threads()
        self._threads: ThreadPoolExecutor | None = None  # decode and draw the samples being prepared
        self._gate_lock = threading.Lock()  # a fitted gate is asked by one thread at a time
        self._decoded: dict[str, Future] = {}  # sample id -> its image being decoded ahead of the fit

    def execute(self, resume: bool = False, retry_errors: bool = False) -> RunResult:
        """Run (or with ``resume``, finish) the run; records are on disk as each sample finishes (see `resume`)."""
        # The provenance (a git process, package metadata) is gathered while the data is listed.
        provenance = None if resume else _in_background(environment_provenance)
        plan = load_plan(self.parts)
        data = plan.data
        run_id = self.config.run_id or new_run_id(data.name)
        run_dir = self.config.results_dir / run_id
        if resume:
            run = self._resume_state(run_dir, plan, retry_errors)
        elif (run_dir / "run.json").exists():
            raise HarnessError(f"{run_dir} already holds a run; resume it with --resume {run_id} or pick another --run-id")
        else:
            run = run_header(header_inputs(plan), run_id, data, provenance.result())
        (run["resumed"][-1] if resume else run["provenance"])["executor"] = self.executor_info()
        files = RunFiles(run_dir)
        files.write_run(run)
        self.failfast.run_dir = run_dir
        cache = ResponseCache(default_cache_path()) if self.config.use_cache else None
        pm = self.registry.manager
        if pm is not None:
            pm.hook.harness_run_started(run=run)
        try:
            asyncio.run(self._run_all(plan, files, run, cache))
            apply_analyses(list(plan.analyses), self._finished(plan), run)
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
        for name, writer in plan.writers.items():
            run.setdefault("outputs", {})[name] = str(writer.write(run_dir, run, self.records))
        if run.get("outputs"):
            files.write_run(run)
        if pm is not None:
            pm.hook.harness_run_finished(run=run, run_dir=run_dir)
        return RunResult(run_id, run_dir, run, self.records)

    def _resume_state(self, run_dir: Path, plan: RunPlan, retry_errors: bool = False) -> dict[str, Any]:
        """Load a run's records; what is missing, or is to be asked again, is what runs."""
        truncate_partial_line(run_dir)
        run, records = load_run(run_dir)
        recorded, current = run["benchmark"]["manifest_hash"], manifest_hash(plan.data)
        if recorded != current:
            raise HarnessError(
                f"cannot resume {run_dir.name}: the data at {plan.data.root} is not what the run evaluated "
                f"(manifest {current}, the run has {recorded})"
            )
        class_file.check_resumed(run, plan.class_file)
        kept = prepare_resume(run_dir, records, retry_errors, resume_number=len(run.get("resumed", [])))
        self.records.extend(kept.kept)
        self.done = {record_key(r) for r in kept.kept}
        self.earlier_attempts = kept.earlier_attempts
        run["status"] = "running"
        run.setdefault("resumed", []).append(
            {"at": now_utc(), **kept.summary(retry_errors), "harness_version": __version__}
        )
        return run

    async def _run_all(self, plan: RunPlan, files: RunFiles, run: dict[str, Any], cache: ResponseCache | None) -> None:
        dispatchers = [
            Dispatcher(c, cache=cache, wait_initial_s=self.config.retry_initial_s, wait_max_s=self.config.retry_max_s,
                       failfast=self.failfast)
            for c in plan.classifiers
        ]
        self._prompt_images = PromptImageStore(files.run_dir, plan.data.root)
        self._threads = ThreadPoolExecutor(max_workers=self._thread_count, thread_name_prefix="harness-prepare")
        if self.batch_specs:
            self._batches = BatchMode(self.batch_specs, files.run_dir, self.config.batch_poll_s, self.recorder,
                                      lambda record: self._write_record(record, files), self.progress)
        try:
            for category in plan.data.categories:
                if not self._pending(category.test_samples):
                    continue  # resumed: every model already answered every sample here
                fitted = await self._fit(plan, category)
                run["provenance"]["gate"]["categories"][category.name] = fitted.info()
                # Kept for a resumed run's provenance: atomic, but not synced to disk (the
                # records are flushed, not synced, either); the run's last write is synced.
                files.write_run(run, durable=False)
                await self._run_category(plan, category, fitted, dispatchers, files)
            if self._batches is not None:
                await self._batches.finish()  # the deferred requests, as provider batches
        finally:
            self._threads.shutdown(cancel_futures=True)
            for classifier in plan.classifiers:
                await classifier.aclose()

    def executor_info(self) -> dict[str, Any]:
        """What run.json's provenance (or a resume's entry) says about where the stages ran."""
        return {"name": self.name}

    async def _fit(self, plan: RunPlan, category: Category) -> FittedGate:
        """The category's fitted gate, in a worker thread."""
        # The first images are decoded while the gate is fitted (a cached fit is mostly torch's
        # import, on one core). Not for a gate whose verdicts the prompt memo recalls without them.
        self._decoded = {} if not plan.gate.reads_pixels else {
            sample.sample_id: self._threads.submit(load_sample_image, sample)
            for sample in self._pending(category.test_samples)[:MAX_SAMPLES_IN_FLIGHT]
        }
        return await asyncio.to_thread(fit_gate, plan.gate, category)

    def _category_inputs(self, plan: RunPlan, category: Category, fitted: FittedGate, orders, support) -> CategoryInputs:
        """What preparing the category's samples needs; reads the reference (in a worker thread)."""
        reference = read_reference(category, plan.reference(category))
        return CategoryInputs(category, fitted, plan.template, plan.gate_mode, orders, plan.image_limits, reference, support)

    async def _run_category(self, plan: RunPlan, category: Category, fitted: FittedGate, dispatchers: list[Dispatcher],
                            files: RunFiles) -> None:
        orders = plan.orders(category)
        drawn = plan.support.get(category.name, [])
        # Support images are read in a worker thread; without --shots there are none (no thread round trip).
        support = await asyncio.to_thread(read_support, category, drawn) if drawn else []
        cache = next((d.cache for d in dispatchers if d.cache is not None), None)
        self._memo = None if cache is None else PromptMemo(
            cache, dispatchers, plan.gate, fitted, plan.template, category, orders,
            plan.reference(category), drawn, self.config.repeats, self.done,
        )
        for classifier in plan.classifiers:
            classifier.set_support(category.name, support)
        self._prompt_images.begin_category(plan.reference(category), drawn)
        pending = self._pending(category.test_samples)
        total = len(category.test_samples)
        done = total - len(pending)  # resumed runs start part-way
        # Groups of samples, a few for every thread (or the gate's batch), prepared GROUPS_AHEAD at a time
        # (one read while another is scored and a third drawn); their records follow in the samples' order.
        # The groups being prepared hold their places until their records start: room for all of them.
        size = max(4 * self._thread_count, fitted.batch_size)
        in_flight = asyncio.Semaphore(max(MAX_SAMPLES_IN_FLIGHT, GROUPS_AHEAD * size))
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

        # The training normal shown beside each query is read when the first sample is prepared in full:
        # a sample recalled from the prompt memo shows no image (the memo keys on the reference's identity).
        inputs: asyncio.Task | None = None

        async def category_inputs() -> CategoryInputs:
            return await asyncio.to_thread(self._category_inputs, plan, category, fitted, orders, support)

        async def prepare(group: list[Sample]) -> list[PreparedSample]:
            nonlocal inputs
            recalled = [self._recall(sample) for sample in group]
            fresh = [sample for sample, prepared in zip(group, recalled) if prepared is None]
            if fresh:
                inputs = inputs or asyncio.create_task(category_inputs())
                made = iter(await asyncio.to_thread(self._prepare, fresh, await inputs))
            return [prepared if prepared is not None else next(made) for prepared in recalled]

        preparing: deque[asyncio.Task] = deque()
        try:
            for start in range(0, len(pending), size):
                if len(preparing) == GROUPS_AHEAD:
                    tasks.extend(asyncio.create_task(finish(p)) for p in self._kept(await preparing.popleft()))
                group = pending[start : start + size]
                for _ in group:
                    await in_flight.acquire()
                self.failfast.check()  # a model's first requests all failed fatally: prepare no more
                preparing.append(asyncio.create_task(prepare(group)))
                tasks.append(preparing[-1])
            while preparing:
                tasks.extend(asyncio.create_task(finish(p)) for p in self._kept(await preparing.popleft()))
            await asyncio.gather(*tasks)
        except BaseException:
            # Stopping (early stop, an error, Ctrl-C): requests still in flight are abandoned, not awaited.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _pending(self, samples: list[Sample]) -> list[Sample]:
        """Samples some model has not answered yet (all of them, unless resuming)."""
        specs = [c.spec for c in self.classifiers]
        repeats = range(self.config.repeats)
        return [s for s in samples if any((s.sample_id, spec, r) not in self.done for spec in specs for r in repeats)]

    def _recall(self, sample: Sample) -> PreparedSample | None:
        """What `_prepare` gave last time, when every answer is cached (harness.run.prompt_memo): no image is
        read. A remembered verdict has no map, so no pixel pair: its category gets no pixel AUROC."""
        recalled = self._memo.recall(sample) if self._memo is not None else None
        if recalled is None:
            return None
        gate_result, prompts = recalled
        prepared = Prepared(sample, gate_result, prompts=prompts)
        prepared.images = self._prompt_images.keep(prepared)  # no region to store: references only
        return PreparedSample(prepared)

    def _prepare(self, samples: list[Sample], inputs: CategoryInputs) -> list[PreparedSample]:
        """The `prepare_batch` stage on the run's threads, its prompt images stored and, when a re-run may
        reuse them, remembered."""
        wanted = self._pixel_pairs.get(inputs.category.name, []) is not None  # None: no pixel AUROC here
        results = self._prepare_batch(samples, inputs, wanted)
        for result in results:
            prepared = result.prepared
            prepared.images = self._prompt_images.keep(prepared)
            if self._memo is not None and prepared.bad_input is None:
                self._memo.remember(prepared.sample, prepared.gate, prepared.prompts)
        return results

    def _prepare_batch(self, samples: list[Sample], inputs: CategoryInputs, pixel_pair_wanted: bool) -> list[PreparedSample]:
        """`prepare_batch` on the run's threads."""
        # A future decoded ahead was queued on these threads before any of this batch's work, so waiting
        # for it from one of them never waits for work queued behind it.
        ahead = [self._decoded.pop(sample.sample_id, None) for sample in samples]
        return prepare_batch(samples, inputs, pixel_pair_wanted=pixel_pair_wanted, parallel_map=self._threads.map,
                             gate_lock=self._gate_lock, decoded=[f.result if f else None for f in ahead])

    def _kept(self, results: list[PreparedSample]) -> list[Prepared]:
        """The prepared samples, their pixel pairs kept (in the order of the samples, whatever thread finished first)."""
        for result in results:
            if result.prepared.bad_input is None:
                self._keep_pixel_pair(result.prepared.sample.category, result.pixel_pair)
        return [result.prepared for result in results]

    def _keep_pixel_pair(self, category: str, pair) -> None:
        """Keep a sample's pixel pair; a category with a map-less image gets no pixel AUROC."""
        pairs = self._pixel_pairs.setdefault(category, [])
        if pair is None:
            self._pixel_pairs[category] = None
        elif pairs is not None:
            pairs.append(pair)

    async def _classify_and_record(self, prepared: Prepared, dispatchers: list[Dispatcher], files: RunFiles) -> None:
        """Ask every model that has not answered this sample yet; write each record the moment it is ready."""

        async def one(dispatcher: Dispatcher, repeat: int) -> None:
            key = (prepared.sample.sample_id, dispatcher.classifier.spec, repeat)
            if key in self.done:
                return
            if self._batches is not None and await self._batches.defer(prepared, repeat, dispatcher,
                                                                       self.earlier_attempts.get(key, 0)):
                return  # its record is written when its batch has ended
            record = await classify(prepared, repeat, dispatcher, self.recorder, self.earlier_attempts.get(key, 0))
            self._write_record(record, files)
            self.failfast.check()  # the failed record is kept; the run stops after it

        jobs = [one(d, r) for d in dispatchers for r in range(self.config.repeats)]
        if len(jobs) == 1:
            await jobs[0]  # one model, one order: no task to wrap it in
        else:
            await asyncio.gather(*jobs)

    def _write_record(self, record: dict[str, Any], files: RunFiles) -> None:
        """Append a record to samples.jsonl at once, keep it, and tell the hooks."""
        files.append_record(record)
        self.records.append(record)
        if self.registry.manager is not None:
            self.registry.manager.hook.harness_sample_done(record=record)

    def _finished(self, plan: RunPlan) -> FinishedRun:
        """What the analyses read: the finished records (as `Record`s; writers and hooks get the lines) and what
        the run was asked to do."""
        return FinishedRun(
            records=records_from_json(self.records), models=[c.spec for c in plan.classifiers], categories=plan.data.categories,
            gate_name=plan.gate.name, gate_passes_all=plan.gate.passes_all, seed=self.config.seed,
            n_boot=self.config.n_boot, repeats=self.config.repeats, resumed=bool(self.done),
            pixel_pairs=self._pixel_pairs, policy=plan.policy, costs=plan.costs,
        )


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


def preparation_threads() -> int:
    """Threads that decode and draw samples: one per usable core (PIL and numpy release the GIL), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _home_relative(path: Path) -> str:
    """``~/...`` for a path in the home folder: a published run.json names no user's home."""
    try:
        return "~/" + path.absolute().relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)
