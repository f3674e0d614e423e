"""OpenAI's Batch API for ``harness run --batch`` (`harness.batches`): the requests of one batch are a
JSONL file uploaded through the Files API (purpose ``batch``), run on ``/v1/chat/completions`` within
24 hours; answers come back in the batch's output file, failed, expired and cancelled requests in its
error file, each line matched to its request by ``custom_id``.

Limits (OpenAI's Batch API reference): at most 50,000 requests and 200 MB per input file.
A failed request's line carries the HTTP status and error body a live call would have got: it is
made into the SDK's own exception, so `should_retry` / `is_timeout` classify it as they do a live
error. ``batch_expired`` is `NotAnswered("expired")`, ``batch_cancelled`` `NotAnswered("cancelled")`.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from harness.batches import BatchLimits, BatchOutcome, BatchStatus, NotAnswered
from harness.hosted import MalformedResponseError
from harness.types import Prompt

ENDPOINT = "/v1/chat/completions"
#: Batch states after which no request of it runs.
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


class OpenAIBatches:
    """The batch protocol of `harness_openai.OpenAIClassifier` (mixed into it)."""

    batch_limits = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)

    def batch_body(self, prompt: Prompt) -> dict[str, Any]:
        """The body a live request would post (`request_body`), images encoded the same way."""
        return self.request_body(prompt)

    def _batch_client(self) -> Any:
        return self._lanes_for_loop()[0].clients[0]

    async def submit_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        client = self._batch_client()
        lines = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body}) + "\n"
                        for cid, body in requests).encode()
        try:
            uploaded = await client.files.create(file=("harness-batch.jsonl", lines, "application/jsonl"), purpose="batch")
            batch = await client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h")
        except self._sdk.OpenAIError as error:
            self.scrub(error)
            raise
        return batch.id

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        return self._status(await self._call(self._batch_client().batches.retrieve, batch_id))

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        return self._status(await self._call(self._batch_client().batches.cancel, batch_id))

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]:
        client = self._batch_client()
        batch = await self._call(client.batches.retrieve, batch_id)
        outcomes: dict[str, BatchOutcome] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._call(client.files.content, file_id)
                for line in content.content.decode("utf-8").splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        outcomes[entry["custom_id"]] = self._outcome(client, entry)
        return outcomes

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except self._sdk.OpenAIError as error:
            self.scrub(error)
            raise

    def _outcome(self, client: Any, entry: dict[str, Any]) -> BatchOutcome:
        response, error = entry.get("response"), entry.get("error") or {}
        if response and response.get("status_code") == 200:
            try:
                return self.parse_completion(response.get("body"))
            except MalformedResponseError as malformed:
                return malformed
        if response:  # an HTTP error, as the live call would have raised it
            return status_error(client, int(response["status_code"]), response.get("body"), str(client.base_url) + ENDPOINT)
        if error.get("code") == "batch_expired":
            return NotAnswered("expired")
        if error.get("code") == "batch_cancelled":
            return NotAnswered("cancelled")
        return RuntimeError(f"batch entry failed: {error.get('code')}: {error.get('message')}")

    @staticmethod
    def _status(batch: Any) -> BatchStatus:
        counts = batch.request_counts
        total, done, failed = (counts.total, counts.completed, counts.failed) if counts else (0, 0, 0)
        # A batch that failed validation ran nothing; its errors say why (records name them).
        reasons = "; ".join(f"{e.code}: {e.message}" for e in (batch.errors.data or [])) if batch.errors else ""
        return BatchStatus("ended" if batch.status in ENDED else "in_progress",
                           {"processing": max(0, total - done - failed), "succeeded": done, "errored": failed},
                           f"{batch.status}: {reasons}" if reasons else batch.status)


def status_error(client: Any, status: int, body: Any, url: str) -> BaseException:
    """The exception a live call answered ``status`` and ``body`` would have raised: the SDK's own class for it."""
    http = importlib.import_module(next(c.__module__.split(".")[0] for c in type(client._client).__mro__
                                        if c.__module__.startswith("httpx")))  # the SDK's httpx (or httpx2)
    response = http.Response(status, json=body, request=http.Request("POST", url))
    return client._make_status_error(f"Error code: {status} - {body}", body=body, response=response)
