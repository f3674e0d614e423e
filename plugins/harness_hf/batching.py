"""Turning concurrent ``classify`` calls into batches for one model.

The core's dispatcher calls ``classify`` concurrently (up to the model's
``concurrency``), one prompt per call. A local model is fastest when it runs
several prompts in one forward pass, and it can run only one pass at a time. So
each call puts its request on a queue and waits; a single worker takes up to
``max_batch`` requests off the queue, runs them together in a thread (the event
loop stays free for other models and for preparing the next samples), and
hands each caller its own result.

The worker waits at most ``max_wait_s`` after the first request of a batch for
more to arrive. In a run, requests queue up while the previous batch runs, so
batches fill by themselves as long as the dispatcher's concurrency is at least
the batch size; the wait only matters when the queue is empty.

A caller that gives up (the dispatcher's timeout cancels it) is skipped if its
request has not started, and its result is dropped if it has.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, Sequence, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

#: How often the worker looks for more requests while it waits to fill a batch.
_POLL_S = 0.001


class MicroBatcher(Generic[Request, Result]):
    """Collects concurrent requests into batches and runs each batch in a worker thread.

    ``run_batch`` receives a list of requests and returns one result per
    request, in order; a result may be an exception, which is raised to that
    request's caller. An exception raised by ``run_batch`` itself is raised to
    every caller of the batch.
    """

    def __init__(self, run_batch: Callable[[list[Request]], Sequence[Result | BaseException]],
                 max_batch: int, max_wait_s: float = 0.01):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_sizes: list[int] = []  # sizes of the batches run, for tests and benchmarks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, request: Request) -> Result:
        """Queue ``request`` and wait for its result."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # First use, or a new event loop (each asyncio.run() has its own).
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._work(), name="harness-hf-batcher")
        future: asyncio.Future = loop.create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def aclose(self) -> None:
        """Stop the worker. A batch already running in its thread finishes there; its results are dropped."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done() and worker.get_loop() is asyncio.get_running_loop():
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the model was closed before this request ran"))

    async def _next_batch(self) -> list[tuple[Request, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            remaining = deadline - asyncio.get_running_loop().time()
            if len(batch) >= self.max_batch or remaining <= 0:
                break
            # Polling, not wait_for(queue.get()): a timed-out get can lose an item on Python 3.11.
            await asyncio.sleep(min(_POLL_S, remaining))
        return batch

    async def _work(self) -> None:
        while True:
            batch = [(request, future) for request, future in await self._next_batch() if not future.done()]
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                results = await asyncio.to_thread(self.run_batch, [request for request, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} requests returned {len(results)} results")
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError("the model was closed while this request ran"))
                raise
            except Exception as error:
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done():  # the caller gave up meanwhile
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
