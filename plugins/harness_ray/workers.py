"""What runs on the Ray workers: a category's gate actor and a model's replicas, and the driver's pool of them.

Both are plain classes, made Ray actors where a run starts them (`start_category`, `ReplicaPool.start`),
so this module imports without Ray. Both are restarted by Ray when their process dies and their calls
that were cut short are retried (``max_restarts``, ``max_task_retries``): a restarted gate actor fits
its gate again from the same inputs, a restarted replica builds its model again, and their answers
are what the first would have given. The driver writes every record itself, once, when a call returns.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from harness.classifiers import Classifier, ClassifierOptions
from harness.gates import FittedGate, Gate
from harness.prompts import PromptTemplate
from harness.run.runner import preparation_threads
from harness.run.stages import CategoryInputs, PreparedSample, fit_gate, prepare_batch, read_reference, read_support
from harness.types import Category, ClassInfo, GateResult, Prompt, Response, Sample

from harness_ray.cluster import unwrapped


class CategoryWorker:
    """One category on a worker: the gate fitted once, its reference and support read there (images travel
    by path), then groups of test samples prepared as `harness.run.stages.prepare_batch` prepares them."""

    def __init__(self, gate: Gate, category: Category, reference: Path | None, support: Sequence[Sample],
                 template: PromptTemplate, gate_mode: str, orders: list[list[ClassInfo]], image_limits: tuple):
        self.error: BaseException | None = None
        try:  # kept for `describe`: an exception here would end the actor with Ray's text, not the message
            fitted = fit_gate(gate, category)
            pictures = read_support(category, support) if support else []
            self.inputs = CategoryInputs(category, fitted, template, gate_mode, orders, image_limits,
                                         read_reference(category, reference), pictures)
        except Exception as error:
            self.error = error
        self.threads = ThreadPoolExecutor(max_workers=preparation_threads(), thread_name_prefix="harness-ray-prepare")
        self.gate_lock = threading.Lock()

    def describe(self) -> tuple[dict[str, Any], int]:
        """The fitted gate's `FittedGate.info` and batch size; the fit's error, if it failed."""
        if self.error is not None:
            raise self.error
        return self.inputs.fitted.info(), self.inputs.fitted.batch_size

    def prepare(self, samples: list[Sample], pixel_pair_wanted: bool) -> list[PreparedSample]:
        """`prepare_batch` of these samples with the category's inputs."""
        return prepare_batch(samples, self.inputs, pixel_pair_wanted=pixel_pair_wanted, parallel_map=self.threads.map,
                             gate_lock=self.gate_lock)


class RemoteFitted(FittedGate):
    """The driver's stand-in for a gate fitted in a `CategoryWorker`: its info and batch size, and the actor."""

    def __init__(self, worker: Any, info: dict[str, Any], batch_size: int):
        self.worker, self._info, self.batch_size = worker, info, batch_size

    def score(self, sample: Sample, image: Any) -> GateResult:
        raise RuntimeError("a gate fitted on a Ray worker scores there (CategoryWorker.prepare)")

    def info(self) -> dict[str, Any]:
        return self._info


def start_category(ray: Any, resources: dict[str, Any], max_restarts: int, *args: Any) -> Any:
    """A `CategoryWorker` actor for one category (``args`` as its constructor's); fitting starts at once.
    ``resources``: ``num_cpus``, ``num_gpus`` and where it is placed (`Reservation.options`)."""
    actor = ray.remote(CategoryWorker).options(max_restarts=max_restarts, max_task_retries=max_restarts, **resources)
    return actor.remote(*args)


class ModelReplica:
    """One replica of a model that holds a local model: the classifier built once, answering prompts."""

    def __init__(self, classifier_class: type[Classifier], model_id: str | None, options: ClassifierOptions):
        self.classifier = classifier_class(model_id, options)

    async def classify(self, prompt: Prompt) -> Response:
        return await self.classifier.classify(prompt)

    def pid(self) -> int:
        """This replica's process id (tests use it to see a restart)."""
        return os.getpid()


class ReplicaPool:
    """The driver's side of a model's replicas: each prompt goes to the replica with the fewest in flight
    (ties in turn). Its `classify` takes the place of the classifier's, behind the core's dispatcher."""

    def __init__(self, ray: Any, handles: list[Any]):
        self.ray, self.handles = ray, handles
        self.in_flight = [0] * len(handles)
        self.answered = [0] * len(handles)
        self._turn = 0

    @classmethod
    def start(cls, ray: Any, classifier: Classifier, resources: list[dict[str, Any]], max_restarts: int) -> "ReplicaPool":
        """One replica per entry of ``resources`` (``num_cpus``, ``num_gpus``, where it is placed)."""
        actor = ray.remote(ModelReplica)
        return cls(ray, [actor.options(max_restarts=max_restarts, max_task_retries=max_restarts, **each)
                         .remote(type(classifier), classifier.model_id, classifier.options) for each in resources])

    async def classify(self, prompt: Prompt) -> Response:
        count = len(self.handles)
        index = min(range(count), key=lambda i: (self.in_flight[i], (i - self._turn) % count))
        self._turn = (index + 1) % count
        self.in_flight[index] += 1
        try:
            response = await self.handles[index].classify.remote(prompt)
        except self.ray.exceptions.RayTaskError as error:
            raise unwrapped(error) from None  # the backend's own error, which it classifies (transient or not)
        finally:
            self.in_flight[index] -= 1
        self.answered[index] += 1
        return response

    def close(self) -> None:
        for handle in self.handles:
            self.ray.kill(handle, no_restart=True)
