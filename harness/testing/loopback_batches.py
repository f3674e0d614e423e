"""The batch APIs of the loopback server: OpenAI's Files + Batch API and Anthropic's Message Batches.

OpenAI: ``POST /v1/files`` (multipart, purpose ``batch``), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``; results in an
output file (answers) and an error file (errored, expired and cancelled requests).
Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches/{id}/results`` (JSONL).

A batch ends after `BatchBook.polls_to_complete` retrievals (0: on the first); only then is every
request of it answered, one by one, by the server's responder, as a live request would be: an
answer, a `Fault` status (an errored entry), or `Fault.expired()` (an expired entry). A cancelled
batch ends on the next retrieval with its requests cancelled. With `BatchBook.fail_validation` set, an
OpenAI batch is created ``failed`` (as when the provider's validation rejects its file after creation):
no request runs and its ``errors`` carry that message. `submissions` counts what clients created, so a
test can assert that nothing was submitted twice.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any, Callable

from harness.testing.loopback_anthropic import ANTHROPIC_PATH, anthropic_error, anthropic_reply
from harness.testing.loopback_openai import OPENAI_PATH, openai_error, openai_reply
from harness.testing.loopback_script import Answer, Fault, Request

#: Paths of the batch APIs (their prefixes).
BATCH_PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")

Reply = tuple[int, bytes, str]  # status, body, content type


@dataclass
class LoopbackBatch:
    """One batch as the server holds it."""

    id: str
    protocol: str
    requests: list[dict[str, Any]]  # {"custom_id", "body"}
    headers: dict[str, str]
    created_at: float = field(default_factory=time.time)
    polls: int = 0
    cancelling: bool = False
    ended: bool = False
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> outcome entry
    output_file_id: str | None = None
    error_file_id: str | None = None
    validation_error: str | None = None  # an OpenAI batch that failed validation: why


@dataclass
class Submission:
    """One batch a client created: its protocol, id and custom_ids."""

    protocol: str
    batch_id: str
    custom_ids: list[str]


class BatchBook:
    """The batches and files of one loopback server (see the module docstring)."""

    def __init__(self, outcome_of: Callable[[Request], Any]):
        self._outcome_of = outcome_of  # the server's: the 400 of an invalid body, else its responder's outcome
        self.polls_to_complete = 0
        self.fail_validation: str | None = None  # set: OpenAI batches are created ``failed`` with this message
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, LoopbackBatch] = {}
        self.submissions: list[Submission] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def submitted_requests(self) -> int:
        """Requests submitted in all batches so far."""
        return sum(len(s.custom_ids) for s in self.submissions)

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(BATCH_PREFIXES)

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            try:
                return self._route(method, path, headers, raw)
            except KeyError as missing:
                return _json(404, openai_error(404, f"loopback: no such object {missing}"))

    # -- routing

    def _route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        parts = path.strip("/").split("/")[1:]  # without "v1"
        if parts[:2] == ["messages", "batches"]:
            rest = parts[2:]
            if method == "POST" and not rest:
                return self._anthropic_create(json.loads(raw), headers)
            batch = self.batches[rest[0]]
            if method == "GET" and len(rest) == 1:
                return _json(200, self._anthropic_view(self._advance(batch)))
            if method == "POST" and rest[1:] == ["cancel"]:
                batch.cancelling = not batch.ended
                return _json(200, self._anthropic_view(batch))
            if method == "GET" and rest[1:] == ["results"]:
                lines = [json.dumps({"custom_id": cid, "result": {k: v for k, v in entry.items() if k != "status"}})
                         for cid, entry in batch.results.items()]
                return 200, ("\n".join(lines) + "\n").encode(), "application/binary"
        elif parts[0] == "files":
            if method == "POST" and len(parts) == 1:
                return self._upload(headers, raw)
            if method == "GET" and parts[2:] == ["content"]:
                return 200, self.files[parts[1]], "application/octet-stream"
        elif parts[0] == "batches":
            if method == "POST" and len(parts) == 1:
                return self._openai_create(json.loads(raw), headers)
            batch = self.batches[parts[1]]
            if method == "GET" and len(parts) == 2:
                return _json(200, self._openai_view(self._advance(batch)))
            if method == "POST" and parts[2:] == ["cancel"]:
                batch.cancelling = not batch.ended
                return _json(200, self._openai_view(batch))
        return _json(404, openai_error(404, f"loopback: no route for {method} {path}"))

    # -- creating

    def _new_batch(self, protocol: str, prefix: str, requests: list[dict[str, Any]], headers: dict[str, str]) -> LoopbackBatch:
        batch = LoopbackBatch(f"{prefix}{next(self._ids)}", protocol, requests, headers)
        self.batches[batch.id] = batch
        self.submissions.append(Submission(protocol, batch.id, [r["custom_id"] for r in requests]))
        return batch

    def _upload(self, headers: dict[str, str], raw: bytes) -> Reply:
        message = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + headers.get("content-type", "").encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                  for part in message.iter_parts()}
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return _json(400, openai_error(400, "loopback: a batch upload needs purpose=batch and a file"))
        file_id = f"file-loopback{next(self._ids)}"
        self.files[file_id] = fields["file"]
        return _json(200, {"id": file_id, "object": "file", "bytes": len(fields["file"]), "created_at": int(time.time()),
                           "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})

    def _openai_create(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines() if line.strip()]
        if any(line.get("url") != body.get("endpoint") or line.get("method") != "POST" for line in lines):
            return _json(400, openai_error(400, "loopback: every line must POST to the batch's endpoint"))
        requests = [{"custom_id": line["custom_id"], "body": line["body"]} for line in lines]
        if len({r["custom_id"] for r in requests}) != len(requests):
            return _json(400, openai_error(400, "loopback: custom_id values must be unique within a batch"))
        batch = self._new_batch("openai", "batch_loopback", requests, headers)
        if self.fail_validation is not None:
            batch.validation_error, batch.ended = self.fail_validation, True
        return _json(200, self._openai_view(batch))

    def _anthropic_create(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        requests = [{"custom_id": r["custom_id"], "body": r["params"]} for r in body.get("requests") or []]
        bad = [r["custom_id"] for r in requests if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", r["custom_id"])]
        if bad or not requests or len({r["custom_id"] for r in requests}) != len(requests):
            return _json(400, anthropic_error(400, f"loopback: requests need unique custom_ids of ^[a-zA-Z0-9_-]{{1,64}}$ ({bad})"))
        return _json(200, self._anthropic_view(self._new_batch("anthropic", "msgbatch_loopback", requests, headers)))

    # -- processing

    def _advance(self, batch: LoopbackBatch) -> LoopbackBatch:
        """A retrieval: a cancelled batch ends now; another after `polls_to_complete` retrievals, all answered."""
        batch.polls += 1
        if batch.ended or (not batch.cancelling and batch.polls <= self.polls_to_complete):
            return batch
        for index, request in enumerate(batch.requests):
            if batch.cancelling:
                batch.results[request["custom_id"]] = {"type": "canceled"}
                continue
            path = OPENAI_PATH if batch.protocol == "openai" else ANTHROPIC_PATH
            wire = Request(index=index, protocol=batch.protocol, method="POST", path=path,  # type: ignore[arg-type]
                           headers=batch.headers, body=request["body"], received_at=time.monotonic())
            batch.results[request["custom_id"]] = self._result(wire, self._outcome_of(wire))
        batch.ended = True
        if batch.protocol == "openai":
            self._write_openai_files(batch)
        return batch

    @staticmethod
    def _result(request: Request, outcome: Any) -> dict[str, Any]:
        """One request's entry, in Anthropic's result form (the OpenAI files are written from it)."""
        if isinstance(outcome, Fault) and outcome.kind == "expired":
            return {"type": "expired"}
        if isinstance(outcome, Fault):
            build = anthropic_error if request.protocol == "anthropic" else openai_error
            body = outcome.body if isinstance(outcome.body, dict) else build(outcome.status, outcome.message)
            return {"type": "errored", "status": outcome.status, "error": body}
        if isinstance(outcome, dict):
            return {"type": "succeeded", "message": outcome}
        answer = outcome if isinstance(outcome, Answer) else Answer(str(outcome))
        build = anthropic_reply if request.protocol == "anthropic" else openai_reply
        return {"type": "succeeded", "message": build(request, answer)}

    def _write_openai_files(self, batch: LoopbackBatch) -> None:
        output, errors = [], []
        for number, (cid, entry) in enumerate(batch.results.items()):
            line: dict[str, Any] = {"id": f"batch_req_{batch.id}_{number}", "custom_id": cid, "response": None, "error": None}
            if entry["type"] == "succeeded":
                line["response"] = {"status_code": 200, "request_id": f"req_{number}", "body": entry["message"]}
                output.append(line)
                continue
            if entry["type"] == "errored":
                line["response"] = {"status_code": entry["status"], "request_id": f"req_{number}", "body": entry["error"]}
            else:
                code = "batch_expired" if entry["type"] == "expired" else "batch_cancelled"
                line["error"] = {"code": code, "message": f"loopback: {code}"}
            errors.append(line)
        for kind, lines in (("output", output), ("error", errors)):
            if lines:
                file_id = f"file-loopback-{kind}{next(self._ids)}"
                self.files[file_id] = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
                setattr(batch, f"{kind}_file_id", file_id)

    # -- views

    def _openai_view(self, batch: LoopbackBatch) -> dict[str, Any]:
        failed = sum(1 for entry in batch.results.values() if entry["type"] != "succeeded")
        if batch.validation_error is not None:
            status = "failed"
        elif batch.ended:
            status = "cancelled" if any(e["type"] == "canceled" for e in batch.results.values()) else "completed"
        else:
            status = "cancelling" if batch.cancelling else "in_progress"
        return {
            "id": batch.id, "object": "batch", "endpoint": OPENAI_PATH,
            "errors": None if batch.validation_error is None else {"object": "list", "data": [
                {"code": "invalid_request", "message": batch.validation_error, "param": None, "line": None}]},
            "input_file_id": "file-loopback", "completion_window": "24h", "status": status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at), "expires_at": int(batch.created_at) + 86400,
            "request_counts": {"total": len(batch.requests), "completed": len(batch.results) - failed, "failed": failed},
            "metadata": None,
        }

    def _anthropic_view(self, batch: LoopbackBatch) -> dict[str, Any]:
        counts = {"processing": len(batch.requests) - len(batch.results), "succeeded": 0, "errored": 0, "canceled": 0,
                  "expired": 0}
        for entry in batch.results.values():
            counts[entry["type"]] += 1
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created_at))
        return {
            "id": batch.id, "type": "message_batch",
            "processing_status": "ended" if batch.ended else ("canceling" if batch.cancelling else "in_progress"),
            "request_counts": counts, "created_at": created, "expires_at": created, "ended_at": created if batch.ended else None,
            "cancel_initiated_at": created if batch.cancelling else None, "archived_at": None,
            "results_url": f"/v1/messages/batches/{batch.id}/results" if batch.ended else None,
        }


def _json(status: int, body: Any) -> Reply:
    return status, json.dumps(body).encode(), "application/json"
