"""The batch protocol: what a classifier implements so that ``harness run --batch`` sends its requests as
provider batches (OpenAI Batch, Anthropic Message Batches). The core (`harness.run.batch_mode`) decides
what to submit, splits it within `batch_limits`, keeps the ledger, polls, and makes each `BatchOutcome`
a record as a live answer or error would be; the plugin's methods do the talking (the core imports no SDK).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union, runtime_checkable

from harness.types import Prompt, Response


@dataclass(frozen=True)
class BatchLimits:
    """The most requests, and bytes of request lines, one provider batch may hold."""

    max_requests: int
    max_bytes: int


@dataclass
class BatchStatus:
    """``ended`` once no request of the batch waits; ``counts`` per outcome (processing, succeeded, errored,
    expired, cancelled: what the provider tells); ``provider_status`` in the provider's own word."""

    state: Literal["in_progress", "ended"]
    counts: dict[str, int] = field(default_factory=dict)
    provider_status: str = ""


@dataclass(frozen=True)
class NotAnswered:
    """A request the batch never ran: ``expired`` (the provider's window closed) or ``cancelled``."""

    why: Literal["expired", "cancelled"]


#: One request's outcome: its answer, the SDK error a live call would have raised (the classifier's
#: `should_retry` / `is_timeout` classify it), or why it never ran.
BatchOutcome = Union[Response, BaseException, NotAnswered]


@runtime_checkable
class BatchingClassifier(Protocol):
    """A classifier that batches (`harness_openai.batches`, `harness_anthropic.batches`)."""

    batch_limits: BatchLimits

    def batch_body(self, prompt: Prompt) -> dict[str, Any]:
        """The request body of ``prompt``, its images encoded as a live request's."""

    async def submit_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        """Create one batch of (custom_id, body) requests; its id."""

    async def poll_batch(self, batch_id: str) -> BatchStatus: ...

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]:
        """An ended batch's outcomes by custom_id (never by position)."""

    async def cancel_batch(self, batch_id: str) -> BatchStatus: ...


def can_batch(classifier: Any) -> bool:
    """Whether ``classifier`` implements `BatchingClassifier`."""
    return isinstance(classifier, BatchingClassifier)


def custom_id(spec: str, sample_id: str, repeat: int, prompt_hash: str) -> str:
    """The id of one (model, sample, repeat, prompt) request, the same on resume; valid for both providers
    (Anthropic's ``^[a-zA-Z0-9_-]{1,64}$``)."""
    return "h-" + hashlib.sha256("\0".join([spec, sample_id, str(repeat), prompt_hash]).encode()).hexdigest()[:48]
