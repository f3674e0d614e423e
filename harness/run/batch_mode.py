"""Batch mode (``harness run --batch``, or a model's ``batch = true``): requests sent as provider batches.

While categories are prepared, a flagged sample's request to a batching model is answered from the
response cache when it can be (a record at once), else deferred: its body (images encoded as in the
live path) goes to a spool file in the run folder, and only what its record needs stays in memory.
Once every category is prepared, `BatchMode.finish` submits the deferred requests in batches within
the provider's `BatchLimits`, polls them, and writes each record the moment its batch has ended.

The ledger, ``batches.jsonl`` in the run folder, appended and synced line by line:
``submitting`` (a local key, the model, every custom_id) before a batch is created, ``created``
(the key and the provider's batch id) after, ``collected`` once every record of it is written.
A resume looks each deferred request up there: one held by a created, uncollected batch is polled,
never submitted again. The window: a kill during the create call itself leaves a ``submitting``
line without its ``created`` line; the provider may or may not hold that batch, and a resume
submits those requests again (it warns), so at most that one batch may be paid twice.
Outcomes are matched by custom_id: an answer is read as a live one; an error is classified by the
classifier as a live one; expired is ``timeout`` (transient: submitted again on resume); cancelled
is ``backend_error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.batches import NotAnswered, can_batch, custom_id
from harness.errors import HarnessError
from harness.results import read_jsonl
from harness.run.dispatch import CallResult, Dispatcher
from harness.run.prompt_record import shown_images
from harness.run.run_header import now_utc
from harness.run.run_records import RecordBuilder
from harness.types import GateResult, KeyOnlyPrompt, Prepared

log = logging.getLogger(__name__)

LEDGER_FILE = "batches.jsonl"
SPOOL_DIR = "batch_requests"


def batch_specs(batch_all: bool, classifiers) -> set[str]:
    """The models whose requests go in batches; a model asked to batch that cannot is an error."""
    specs = set()
    for classifier in classifiers:
        if batch_all or getattr(classifier.options, "batch", False):
            if not can_batch(classifier):
                raise HarnessError(
                    f"model {classifier.spec!r} cannot run in batch mode: plugin {classifier.plugin!r} has no batch API "
                    "(mix batch and live models with the option batch = true under [model-options.\"SPEC\"] instead of --batch)")
            specs.add(classifier.spec)
    return specs


class Ledger:
    """``batches.jsonl``: which requests each batch holds (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LEDGER_FILE
        self.lines = read_jsonl(self.path)

    def write(self, **line: Any) -> None:
        line = {"at": now_utc(), **line}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # the intent must be on disk before the batch exists
        self.lines.append(line)

    def batches(self) -> list[dict[str, Any]]:
        """One entry per intent: key, model, custom_ids, batch_id (None: never created), collected."""
        found: dict[str, dict[str, Any]] = {}
        by_id: dict[str, dict[str, Any]] = {}
        for line in self.lines:
            if line["event"] == "submitting":
                found[line["key"]] = {"key": line["key"], "model": line["model"], "custom_ids": line["custom_ids"],
                                      "batch_id": None, "collected": False, "submitted_at": line["at"]}
            elif line["event"] == "created" and line["key"] in found:
                found[line["key"]]["batch_id"] = line["batch_id"]
                by_id[line["batch_id"]] = found[line["key"]]
            elif line["event"] == "collected" and line["batch_id"] in by_id:
                by_id[line["batch_id"]]["collected"] = True
        return list(found.values())


@dataclass
class Deferred:
    """A request waiting for its batch: what its record needs, no images or maps."""

    prepared: Prepared
    prompt: KeyOnlyPrompt
    repeat: int
    dispatcher: Dispatcher
    earlier_attempts: int
    spool: tuple[int, int]  # offset and length of its line in the model's spool file


class BatchMode:
    """One run's deferred requests and batches (see the module docstring)."""

    def __init__(self, specs: set[str], run_dir: Path, poll_s: float, recorder: RecordBuilder,
                 write_record: Callable[[dict[str, Any]], None], progress: Callable[[str, int, int], None]):
        self.specs, self.run_dir, self.poll_s = specs, run_dir, poll_s
        self.recorder, self.write_record, self.progress = recorder, write_record, progress
        self.ledger = Ledger(run_dir)
        self.waiting: dict[str, dict[str, Deferred]] = {spec: {} for spec in specs}  # spec -> custom_id -> request
        self._spool_lock = threading.Lock()

    async def defer(self, prepared: Prepared, repeat: int, dispatcher: Dispatcher, earlier_attempts: int) -> bool:
        """Defer this request to a batch; False when it is to be asked live (not a batching model, no prompt, cached)."""
        spec = dispatcher.classifier.spec
        if spec not in self.specs or not prepared.asks_a_model:
            return False
        prompt = prepared.prompts[(repeat, dispatcher.classifier.capabilities.max_images)]
        if dispatcher.is_cached(prompt):
            return False  # answered from the cache at once, never submitted
        request_id = custom_id(spec, prepared.sample.sample_id, repeat, prompt.hash)
        spool = await asyncio.to_thread(self._spool, dispatcher.classifier, request_id, prompt)
        gate = prepared.gate  # kept without its maps
        light = Prepared(prepared.sample, GateResult(gate.score, gate.flagged, gate.threshold), images=prepared.images)
        key_only = KeyOnlyPrompt(prompt.template, [], list(prompt.candidates), prompt.hash, prompt.request_hash,
                                 shown_digests=shown_images(prompt))
        self.waiting[spec][request_id] = Deferred(light, key_only, repeat, dispatcher, earlier_attempts, spool)
        return True

    def _spool_path(self, spec: str) -> Path:
        return self.run_dir / SPOOL_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", spec) + ".jsonl")

    def _spool(self, classifier, request_id: str, prompt) -> tuple[int, int]:
        line = (json.dumps(classifier.batch_body(prompt)) + "\n").encode()
        path = self._spool_path(classifier.spec)
        with self._spool_lock:
            path.parent.mkdir(exist_ok=True)
            with path.open("ab") as handle:
                offset = handle.tell()
                handle.write(line)
        return offset, len(line)

    async def finish(self) -> None:
        """Submit what no batch holds yet, poll every batch the deferred requests are in, write their records."""
        held: dict[str, tuple[str, str]] = {}  # custom_id -> (batch id, model) of an open batch
        for entry in self.ledger.batches():
            if entry["batch_id"] is None:
                log.warning("batch intent %s of %s has no batch id (killed while creating it): its requests are "
                            "submitted again; check the provider for a duplicate batch", entry["key"], entry["model"])
            elif not entry["collected"]:
                held.update({cid: (entry["batch_id"], entry["model"]) for cid in entry["custom_ids"]})
        members: dict[str, list[str]] = {}  # batch id -> the deferred custom_ids it holds
        for spec, waiting in self.waiting.items():
            fresh = []
            for cid in waiting:
                batch_id, model = held.get(cid, (None, None))
                if model == spec:
                    members.setdefault(batch_id, []).append(cid)  # already paid for: polled, not submitted
                else:
                    fresh.append(cid)
            members.update(await self._submit(spec, fresh))
        await self._poll(members)

    async def _submit(self, spec: str, request_ids: list[str]) -> dict[str, list[str]]:
        """Create batches of ``request_ids`` within the model's limits, each written to the ledger around its creation."""
        if not request_ids:
            return {}
        waiting = self.waiting[spec]
        classifier = waiting[request_ids[0]].dispatcher.classifier
        limits = classifier.batch_limits
        chunks: list[list[str]] = [[]]
        size = 0
        for cid in request_ids:
            length = waiting[cid].spool[1] + len(cid) + 64  # the line's envelope around the body
            if chunks[-1] and (len(chunks[-1]) >= limits.max_requests or size + length > limits.max_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(cid)
            size += length
        created: dict[str, list[str]] = {}
        with self._spool_path(spec).open("rb") as spool:
            for chunk in chunks:
                requests = []
                for cid in chunk:
                    offset, length = waiting[cid].spool
                    spool.seek(offset)
                    requests.append((cid, json.loads(spool.read(length))))
                key = uuid.uuid4().hex
                self.ledger.write(event="submitting", key=key, model=spec, custom_ids=chunk)
                batch_id = await classifier.submit_batch(requests)
                self.ledger.write(event="created", key=key, model=spec, batch_id=batch_id)
                created[batch_id] = chunk
        self._spool_path(spec).unlink()  # the provider holds the bodies now; a resume encodes them again
        return created

    async def _poll(self, members: dict[str, list[str]]) -> None:
        """Poll every ``poll_s`` until each batch has ended; collect each as it ends. Progress: per model, the
        requests its batches have ended of those they hold; the log: batches submitted, in progress, ended."""
        pending = {batch_id: self.waiting_of(cids[0]).dispatcher.classifier for batch_id, cids in members.items()}
        specs = {batch_id: classifier.spec for batch_id, classifier in pending.items()}
        ended_requests = {batch_id: 0 for batch_id in members}
        while pending:
            for batch_id, classifier in list(pending.items()):
                try:
                    status = await classifier.poll_batch(batch_id)
                except Exception as error:
                    if not classifier.should_retry(error):
                        raise
                    log.warning("polling batch %s failed transiently (%s); polling again", batch_id, error)
                    continue
                ended_requests[batch_id] = sum(v for k, v in status.counts.items() if k != "processing")
                if status.state == "ended":
                    outcomes = await classifier.batch_results(batch_id)
                    for cid in members[batch_id]:
                        self._record(self.waiting[classifier.spec].pop(cid), batch_id, outcomes.get(cid))
                    self.ledger.write(event="collected", batch_id=batch_id)
                    ended_requests[batch_id] = len(members[batch_id])
                    del pending[batch_id]
            for spec in sorted(set(specs.values())):
                mine = [b for b in members if specs[b] == spec]
                self.progress(f"batches {spec}", sum(ended_requests[b] for b in mine), sum(len(members[b]) for b in mine))
            log.info("batches: %d submitted, %d in progress, %d ended; requests ended: %d of %d", len(members),
                     len(pending), len(members) - len(pending), sum(ended_requests.values()),
                     sum(len(cids) for cids in members.values()))
            if pending:
                await asyncio.sleep(self.poll_s)

    def waiting_of(self, request_id: str) -> Deferred:
        return next(waiting[request_id] for waiting in self.waiting.values() if request_id in waiting)

    def _record(self, deferred: Deferred, batch_id: str, outcome: Any) -> None:
        call = self._call_result(deferred, batch_id, outcome)
        self.write_record(self.recorder.record(deferred.prepared, deferred.dispatcher.classifier, deferred.prompt, call,
                                               repeat=deferred.repeat, earlier_attempts=deferred.earlier_attempts))

    def _call_result(self, deferred: Deferred, batch_id: str, outcome: Any) -> CallResult:
        dispatcher = deferred.dispatcher
        if outcome is None:
            call = CallResult(None, "backend_error", f"batch {batch_id} gave no result for this request", 1, None, 0.0,
                              transient=True)
        elif isinstance(outcome, NotAnswered) and outcome.why == "expired":
            call = CallResult(None, "timeout", f"batch {batch_id} expired before this request ran", 1, None, 0.0,
                              transient=True)
        elif isinstance(outcome, NotAnswered):
            call = CallResult(None, "backend_error", f"batch {batch_id} was cancelled before this request ran", 1, None,
                              0.0, transient=False)
        elif isinstance(outcome, BaseException):
            call = dispatcher.failure(outcome, f"batch {batch_id}: failed transiently (submitted again on --resume)")
        else:
            call = CallResult(outcome, None, None, 1, None, 0.0)
            key = dispatcher.cache_key(deferred.prompt)
            if key is not None:
                classifier = dispatcher.classifier
                dispatcher.cache.put(key, classifier.plugin, classifier.model_id, outcome, None, dispatcher.endpoint)
        call.batch_id = batch_id
        return call
