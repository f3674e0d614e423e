"""Batch mode (``--batch``, or a model's ``batch = true``; README "Batch mode"): requests as provider batches.

While categories are prepared, a batching model's request is answered from the cache when it can be,
else deferred: its body goes to a spool file in the run folder, what its record needs stays in memory.
`BatchMode.finish` then submits them within the provider's `BatchLimits`, polls, and writes each record
when its batch ends. The ledger ``batches.jsonl`` (appended, synced) says ``submitting`` (key, model,
custom_ids) before a batch is created, ``created`` (its id) after, ``collected`` once its records are
written; a resume polls the created, uncollected batches holding its requests and never submits those
again. The window: a kill inside the create call leaves an intent without an id, whose requests a resume
submits again (with a warning): at most that one batch may be paid twice. Outcomes are matched by
custom_id and made into what a live call gives (errors classified by the classifier; expired: transient
``timeout``; cancelled: ``backend_error``)."""

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
from harness.run.redact import redact
from harness.run.run_header import now_utc
from harness.run.run_records import RecordBuilder
from harness.types import GateResult, KeyOnlyPrompt, Prepared

log = logging.getLogger(__name__)

LEDGER_FILE = "batches.jsonl"
SPOOL_DIR = "batch_requests"


def batch_specs(batch_all: bool, classifiers) -> set[str]:
    """The models whose requests go in batches; a model asked to batch that cannot is an error."""
    wanted = [c for c in classifiers if batch_all or getattr(c.options, "batch", False)]
    for c in wanted:
        if not can_batch(c):
            raise HarnessError(f"model {c.spec!r} cannot run in batch mode: plugin {c.plugin!r} has no batch API (batch "
                               "some models only with their option batch = true under [model-options.\"SPEC\"])")
    return {c.spec for c in wanted}


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
        for line in self.lines:
            if line["event"] == "submitting":
                found[line["key"]] = {**line, "batch_id": None, "collected": False}
            elif line["event"] == "created" and line["key"] in found:
                found[line["key"]]["batch_id"] = line["batch_id"]
            elif line["event"] == "failed":
                found.pop(line["key"], None)  # refused by the provider: no batch
        collected = {line["batch_id"] for line in self.lines if line["event"] == "collected"}
        for entry in found.values():
            entry["collected"] = entry["batch_id"] in collected
        return list(found.values())

    def held(self) -> dict[tuple[str, str], str]:
        """(model, custom_id) -> the created, uncollected batch holding it: paid for, to be polled."""
        return {(e["model"], cid): e["batch_id"] for e in self.batches() if e["batch_id"] and not e["collected"]
                for cid in e["custom_ids"]}


@dataclass
class Deferred:
    """A request waiting for its batch: what its record needs, no images or maps."""

    prepared: Prepared
    prompt: KeyOnlyPrompt
    repeat: int
    dispatcher: Dispatcher
    earlier_attempts: int
    spool: tuple[int, int] | None  # offset and length of its body in the model's spool file; None: already held


class BatchMode:
    """One run's deferred requests and batches (see the module docstring)."""

    def __init__(self, specs: set[str], run_dir: Path, poll_s: float, recorder: RecordBuilder,
                 write_record: Callable[[dict[str, Any]], None], progress: Callable[[str, int, int], None]):
        self.run_dir, self.poll_s, self.recorder, self.write_record, self.progress = run_dir, poll_s, recorder, write_record, progress
        self.ledger = Ledger(run_dir)
        self.held = self.ledger.held()
        for entry in self.ledger.batches():
            if entry["batch_id"] is None:
                log.warning("batch intent %s of %s has no batch id (killed while it was created): its requests are "
                            "submitted again; check the provider for a duplicate batch", entry["key"], entry["model"])
        self.waiting: dict[str, dict[str, Deferred]] = {spec: {} for spec in specs}  # spec -> custom_id -> request
        self._spool_lock = threading.Lock()

    async def defer(self, prepared: Prepared, repeat: int, dispatcher: Dispatcher, earlier_attempts: int) -> bool:
        """Defer this request to a batch; False when it is to be asked live (not a batching model, no prompt, cached)."""
        spec = dispatcher.classifier.spec
        if spec not in self.waiting or not prepared.asks_a_model:
            return False
        prompt = prepared.prompts[(repeat, dispatcher.classifier.capabilities.max_images)]
        if dispatcher.is_cached(prompt):
            return False  # answered from the cache at once, never submitted
        request_id = custom_id(spec, prepared.sample.sample_id, repeat, prompt.hash)
        spool = None if (spec, request_id) in self.held else await asyncio.to_thread(self._spool, dispatcher.classifier, prompt)
        if spool is not None and spool[1] > dispatcher.classifier.batch_limits.max_bytes:  # no batch could hold it
            raise HarnessError(f"model {spec!r}: the request for {prepared.sample.sample_id} is {spool[1]:,} bytes, over "
                               f"the {dispatcher.classifier.batch_limits.max_bytes:,} one batch may hold; ask it live")
        gate = prepared.gate  # kept without its maps
        light = Prepared(prepared.sample, GateResult(gate.score, gate.flagged, gate.threshold), images=prepared.images)
        key_only = KeyOnlyPrompt(prompt.template, [], list(prompt.candidates), prompt.hash, prompt.request_hash,
                                 shown_digests=shown_images(prompt))
        self.waiting[spec][request_id] = Deferred(light, key_only, repeat, dispatcher, earlier_attempts, spool)
        return True

    def _spool_path(self, spec: str) -> Path:
        return self.run_dir / SPOOL_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", spec) + ".jsonl")

    def _spool(self, classifier, prompt) -> tuple[int, int]:
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
        members: dict[str, tuple[str, list[str]]] = {}  # batch id -> its model and the deferred custom_ids it holds
        for spec, waiting in self.waiting.items():
            for cid, deferred in waiting.items():
                if deferred.spool is None:  # already paid for: polled only
                    members.setdefault(self.held[(spec, cid)], (spec, []))[1].append(cid)
            created = await self._submit(spec, [cid for cid, d in waiting.items() if d.spool is not None])
            members.update((batch_id, (spec, cids)) for batch_id, cids in created.items())
        await self._poll(members)

    async def _submit(self, spec: str, request_ids: list[str]) -> dict[str, list[str]]:
        """Create batches of ``request_ids`` within the model's limits, each written to the ledger around its creation."""
        waiting, created = self.waiting[spec], {}
        chunks: list[list[str]] = []
        size = 0
        for cid in request_ids:
            limits = waiting[cid].dispatcher.classifier.batch_limits
            length = waiting[cid].spool[1] + len(cid) + 128  # with the envelope around the body (OpenAI: ~75 bytes)
            if not chunks or len(chunks[-1]) >= limits.max_requests or size + length > limits.max_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(cid)
            size += length
        for chunk in chunks:
            with self._spool_path(spec).open("rb") as spool:
                requests = []
                for cid in chunk:
                    spool.seek(waiting[cid].spool[0])
                    requests.append((cid, json.loads(spool.read(waiting[cid].spool[1]))))
            key = uuid.uuid4().hex
            self.ledger.write(event="submitting", key=key, model=spec, custom_ids=chunk)
            try:
                batch_id = await waiting[chunk[0]].dispatcher.classifier.submit_batch(requests)
            except Exception as error:  # refused (a bad key, a bad request): no batch exists, nothing is paid
                self.ledger.write(event="failed", key=key)
                raise HarnessError(f"model {spec!r}: creating a batch of {len(chunk)} requests failed: "
                                   f"{redact(f'{type(error).__name__}: {error}')[:500]}; fix it and --resume the run") from None
            self.ledger.write(event="created", key=key, model=spec, batch_id=batch_id)
            created[batch_id] = chunk
        self._spool_path(spec).unlink(missing_ok=True)  # the provider holds the bodies; a resume encodes them again
        return created

    async def _poll(self, members: dict[str, tuple[str, list[str]]]) -> None:
        """Poll every ``poll_s`` until each batch has ended, collecting each as it ends; progress in requests ended."""
        pending = {b: self.waiting[spec][cids[0]].dispatcher.classifier for b, (spec, cids) in members.items()}
        ended = {batch_id: 0 for batch_id in members}
        while pending:
            for batch_id, classifier in list(pending.items()):
                try:
                    status = await classifier.poll_batch(batch_id)
                except Exception as error:
                    if not classifier.should_retry(error):
                        raise
                    log.warning("polling batch %s failed transiently (%s); polling again", batch_id, error)
                    continue
                ended[batch_id] = sum(v for k, v in status.counts.items() if k != "processing")
                if status.state == "ended":
                    outcomes = await classifier.batch_results(batch_id)
                    for cid in members[batch_id][1]:
                        self._record(self.waiting[classifier.spec].pop(cid), batch_id, outcomes.get(cid),
                                     status.provider_status)
                    self.ledger.write(event="collected", batch_id=batch_id)
                    del pending[batch_id]
            total = sum(len(cids) for _, cids in members.values())
            self.progress("batches", min(total, sum(ended.values())), total)
            log.info("batches: %d submitted, %d in progress, %d ended; requests ended: %d of %d", len(members),
                     len(pending), len(members) - len(pending), sum(ended.values()), total)
            if pending:
                await asyncio.sleep(self.poll_s)

    def _record(self, deferred: Deferred, batch_id: str, outcome: Any, provider_status: str = "") -> None:
        """Write a deferred request's record: ``outcome`` made into what a live call would have given."""
        dispatcher, detail = deferred.dispatcher, f"batch {batch_id}"
        if outcome is None:  # e.g. a batch that failed validation: the provider's status says why
            call = CallResult(None, "backend_error", redact(f"{detail} ({provider_status}) gave no result for it")[:500],
                              1, None, 0.0, transient=True)
        elif isinstance(outcome, NotAnswered):  # expired: the provider's window closed (transient); or cancelled
            expired = outcome.why == "expired"
            call = CallResult(None, "timeout" if expired else "backend_error", f"{detail} {outcome.why} before it ran",
                              1, None, 0.0, transient=expired)
        elif isinstance(outcome, BaseException):
            call = dispatcher.failure(outcome, f"{detail}: failed transiently (submitted again on --resume)")
        else:
            call = CallResult(outcome, None, None, 1, None, 0.0)
            key = dispatcher.cache_key(deferred.prompt)
            if key is not None:  # as a live answer is: a run again asks nothing
                classifier = dispatcher.classifier
                dispatcher.cache.put(key, classifier.plugin, classifier.model_id, outcome, None, dispatcher.endpoint)
        call.batch_id = batch_id
        self.write_record(self.recorder.record(deferred.prepared, dispatcher.classifier, deferred.prompt, call,
                                               repeat=deferred.repeat, earlier_attempts=deferred.earlier_attempts))
