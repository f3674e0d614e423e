"""The batch protocol: what a classifier implements so that ``harness run --batch`` can send its requests
as provider batches (OpenAI Batch, Anthropic Message Batches) at the providers' batch price.

A batching classifier has `batch_limits` and five methods (`BatchingClassifier`); the core
(`harness.run.batch_mode`) decides what to submit, splits it within the limits, keeps the run's
ledger, polls, and turns each `BatchOutcome` into a record exactly as a live answer or error would
be. The core never imports an SDK: the plugin's methods do the talking.
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
    """A batch's state: ``ended`` once no request of it is still waiting; ``counts`` per outcome
    (``processing``, ``succeeded``, ``errored``, ``expired``, ``cancelled``; a provider gives what it knows)."""

    state: Literal["in_progress", "ended"]
    counts: dict[str, int] = field(default_factory=dict)
    provider_status: str = ""  # the provider's own word (validating, finalizing, canceling, ...)


@dataclass(frozen=True)
class NotAnswered:
    """A request the batch never ran: ``expired`` (the provider's window closed) or ``cancelled``."""

    why: Literal["expired", "cancelled"]


#: One request's outcome: the answer, the SDK error it failed with (classified by the classifier's
#: own `should_retry` / `is_timeout`, as a live call's), or why it never ran.
BatchOutcome = Union[Response, BaseException, NotAnswered]


@runtime_checkable
class BatchingClassifier(Protocol):
    """What a classifier implements to batch (see `harness_openai.batches`, `harness_anthropic.batches`)."""

    batch_limits: BatchLimits

    def batch_body(self, prompt: Prompt) -> dict[str, Any]:
        """The request body for ``prompt``, its images encoded exactly as a live request's."""

    async def submit_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        """Create one batch of (custom_id, body) requests; return its id."""

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts."""

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]:
        """An ended batch's outcomes by custom_id (never by position)."""

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        """Ask the provider to cancel the batch; its state after asking."""


def can_batch(classifier: Any) -> bool:
    """Whether ``classifier`` implements the batch protocol."""
    return isinstance(classifier, BatchingClassifier)


def custom_id(spec: str, sample_id: str, repeat: int, prompt_hash: str) -> str:
    """The request id of one (model, sample, repeat, prompt): stable across resumes, and valid for both
    providers (Anthropic's ``^[a-zA-Z0-9_-]{1,64}$``)."""
    digest = hashlib.sha256("\0".join([spec, sample_id, str(repeat), prompt_hash]).encode()).hexdigest()
    return f"h-{digest[:48]}"
