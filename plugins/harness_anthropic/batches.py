"""Anthropic's Message Batches API for ``harness run --batch`` (`harness.batches`): one batch holds the
Messages requests (``custom_id`` and ``params``), runs within 24 hours, and streams its results as JSONL,
each matched to its request by ``custom_id``.

Limits (Anthropic's batch processing guide): at most 100,000 requests or 256 MB per batch.
An ``errored`` result carries the error object a live call would have got; its type is mapped to the
HTTP status the live API sends with it and made into the SDK's own exception, so `should_retry` /
`is_timeout` classify it as a live error. ``expired`` is `NotAnswered("expired")`, ``canceled``
`NotAnswered("cancelled")`.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.batches import BatchLimits, BatchOutcome, BatchStatus, NotAnswered
from harness.types import Prompt

#: The HTTP status a live Messages call answers with for each error type.
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": 529,
}


class AnthropicBatches:
    """The batch protocol of `harness_anthropic.AnthropicClassifier` (mixed into it)."""

    batch_limits = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)

    def batch_body(self, prompt: Prompt) -> dict[str, Any]:
        """A live request's parameters (`build_request`), ``extra_body`` merged in as the SDK would send it."""
        request = self.build_request(prompt)
        request.update(request.pop("extra_body", None) or {})
        return request

    async def submit_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        batches = self._get_client().messages.batches
        batch = await self._call(batches.create, requests=[{"custom_id": cid, "params": body} for cid, body in requests])
        return batch.id

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        return self._status(await self._call(self._get_client().messages.batches.retrieve, batch_id))

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        return self._status(await self._call(self._get_client().messages.batches.cancel, batch_id))

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]:
        client = self._get_client()
        outcomes: dict[str, BatchOutcome] = {}
        async for entry in await self._call(client.messages.batches.results, batch_id):
            outcomes[entry.custom_id] = self._outcome(client, entry.result)
        return outcomes

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except self._sdk.AnthropicError as error:
            self.scrub(error)
            raise

    def _outcome(self, client: Any, result: Any) -> BatchOutcome:
        if result.type == "succeeded":
            return self.parse_message(result.message)
        if result.type == "errored":
            body = result.error.model_dump()
            kind = (body.get("error") or {}).get("type", "api_error")
            return status_error(client, ERROR_STATUS.get(kind, 500), body, str(client.base_url) + "/v1/messages")
        return NotAnswered("expired" if result.type == "expired" else "cancelled")

    @staticmethod
    def _status(batch: Any) -> BatchStatus:
        counts = batch.request_counts
        return BatchStatus(
            "ended" if batch.processing_status == "ended" else "in_progress",
            {"processing": counts.processing, "succeeded": counts.succeeded, "errored": counts.errored,
             "expired": counts.expired, "cancelled": counts.canceled},
            batch.processing_status,
        )


def status_error(client: Any, status: int, body: Any, url: str) -> BaseException:
    """The exception a live call answered ``status`` and ``body`` would have raised: the SDK's own class for it."""
    http = importlib.import_module(next(c.__module__.split(".")[0] for c in type(client._client).__mro__
                                        if c.__module__.startswith("httpx")))  # the SDK's httpx (or httpx2)
    response = http.Response(status, json=body, request=http.Request("POST", url))
    return client._make_status_error(f"Error code: {status} - {body}", body=body, response=response)
