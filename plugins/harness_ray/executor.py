"""`RayRun`: the core's `Run` with its categories fitted and prepared on Ray actors and its local models
served by actor replicas; everything that writes (records, run.json, the cache, prompt images) stays here."""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

from harness.errors import HarnessError
from harness.gates import FittedGate
from harness.options import validate_options
from harness.plugins import Registry
from harness.results import RunFiles
from harness.run.cache import ResponseCache
from harness.run.plan import RunPlan
from harness.run.run_config import RunConfig
from harness.run.runner import ProgressCallback, Run, RunResult
from harness.run.stages import CategoryInputs, PreparedSample
from harness.types import Category, Sample

from harness_ray.cluster import (
    RayOptions, Reservation, check_room, connect, gate_resources, gate_slots, import_ray, replica_resources, unwrapped,
)
from harness_ray.workers import RemoteFitted, ReplicaPool, start_category


class RayRun(Run):
    """``--executor ray``: each category's gate fitted and its samples prepared in a Ray actor (all categories'
    fits start at once, as the cluster has room); models that hold a local model as actor replicas."""

    name = "ray"
    description = ("Ray: each category's gate fitted and its samples prepared in an actor; local models (hf) as "
                   "actor replicas; hosted APIs called from this process (options: the run config's executor-options table)")
    Options = RayOptions  # `harness list --verbose` documents them

    def __init__(self, config: RunConfig, registry: Registry, progress: ProgressCallback | None = None):
        super().__init__(config, registry, progress)
        self.options = validate_options(RayOptions, config.executor_options, "executor 'ray' ([executor-options])")
        for classifier in self.classifiers:
            if classifier.holds_model and classifier.needs_support:
                raise HarnessError(f"model {classifier.spec!r} learns from --shots examples inside a local model; "
                                   "the ray executor cannot hand them to its replicas yet: use --executor local")
        self.ray = import_ray()
        self.pools: dict[str, ReplicaPool] = {}  # model spec -> its replicas, while the run goes on
        self.workers: dict[str, Any] = {}  # category -> its gate actor
        self._slots: dict[str, int] = {}  # category -> its gate actor's place in the run's `Reservation`

    @classmethod
    @contextmanager
    def session(cls, address: str | None) -> Iterator[str]:
        """Joined to the cluster at ``address`` (or the local one, started if none runs) for several runs, as
        ``harness sweep`` runs its cells; yields the address other processes join it at."""
        ray = import_ray()
        joined = connect(ray, address)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            if joined:
                ray.shutdown()

    def execute(self, resume: bool = False, retry_errors: bool = False) -> RunResult:
        joined = connect(self.ray, self.config.ray_address)
        try:
            return super().execute(resume=resume, retry_errors=retry_errors)
        finally:
            if joined:
                self.ray.shutdown()

    def executor_info(self) -> dict[str, Any]:
        cluster = self.ray.cluster_resources()
        return {
            "name": self.name, "ray_version": self.ray.__version__,
            "nodes": len([node for node in self.ray.nodes() if node.get("Alive")]),
            "cluster": {key: cluster.get(key, 0) for key in ("CPU", "GPU")},
            "replicas": {c.spec: self.options.replicas for c in self.classifiers if c.holds_model},
            "replica_resources": replica_resources(self.options, cluster),
            "gate_resources": gate_resources(self.parts.gate, self.options, cluster),
        }

    async def _run_all(self, plan: RunPlan, files: RunFiles, run: dict[str, Any], cache: ResponseCache | None) -> None:
        ray, options = self.ray, self.options
        cluster = ray.cluster_resources()
        gate_needs = gate_resources(plan.gate, options, cluster)
        holding = [c for c in plan.classifiers if c.holds_model]
        replicas = [replica_resources(options, cluster)] * (options.replicas * len(holding))
        check_room(cluster, gate_needs, replicas)
        pending = deque(c for c in plan.data.categories if self._pending(c.test_samples))
        # As many categories' gates are fitted at once as fit beside the replicas; each next one when one is done.
        slots = gate_slots(cluster, gate_needs, replicas, len(pending))
        reservation = Reservation(ray, replicas + [gate_needs] * slots)
        try:
            await reservation.ready()
            for number, classifier in enumerate(holding):
                mine = range(number * options.replicas, (number + 1) * options.replicas)
                pool = ReplicaPool.start(ray, classifier, [{**replicas[i], **reservation.options(i)} for i in mine],
                                         options.max_restarts)
                self.pools[classifier.spec] = pool
                classifier.classify = pool.classify  # what the dispatcher calls; the header is written already
                # `concurrency` is per replica: the dispatcher keeps every replica as busy as one local model.
                classifier.options = classifier.options.model_copy(
                    update={"concurrency": classifier.options.concurrency * options.replicas})

            def start_next(slot: int) -> None:
                if pending:
                    category = pending.popleft()
                    self.workers[category.name] = start_category(
                        ray, {**gate_needs, **reservation.options(slot)}, options.max_restarts, plan.gate, category,
                        plan.reference(category), plan.support.get(category.name, []), plan.template, plan.gate_mode,
                        plan.orders(category), plan.image_limits)
                    self._slots[category.name] = slot

            self._start_next = start_next
            for slot in range(len(replicas), len(replicas) + slots):
                start_next(slot)
            await super()._run_all(plan, files, run, cache)
        finally:
            for worker in self.workers.values():
                ray.kill(worker, no_restart=True)
            for pool in self.pools.values():
                pool.close()
            reservation.release()

    async def _fit(self, plan: RunPlan, category: Category) -> FittedGate:
        worker = self.workers[category.name]
        try:
            info, batch_size = await worker.describe.remote()
        except self.ray.exceptions.RayTaskError as error:
            raise unwrapped(error) from None
        return RemoteFitted(worker, info, batch_size)

    async def _run_category(self, plan: RunPlan, category: Category, fitted: FittedGate, *args: Any) -> None:
        try:
            await super()._run_category(plan, category, fitted, *args)
        finally:  # its place goes to the next category's gate
            self.ray.kill(self.workers.pop(category.name), no_restart=True)
            self._start_next(self._slots.pop(category.name))

    def _category_inputs(self, plan: RunPlan, category: Category, fitted: FittedGate, orders, support) -> CategoryInputs:
        # The worker read its own reference and support; these inputs only carry the stand-in to `_prepare_batch`.
        return CategoryInputs(category, fitted, plan.template, plan.gate_mode, orders, plan.image_limits, None, support)

    def _prepare_batch(self, samples: list[Sample], inputs: CategoryInputs, pixel_pair_wanted: bool) -> list[PreparedSample]:
        worker = inputs.fitted.worker  # a `RemoteFitted`
        try:
            return self.ray.get(worker.prepare.remote(samples, pixel_pair_wanted))
        except self.ray.exceptions.RayTaskError as error:
            raise unwrapped(error) from None
