"""The classifier protocol: what a backend plugin implements.

A classifier turns a rendered `Prompt` into a `Response` and never sees the true label. Retries,
timeouts and concurrency are the core's job (:mod:`harness.run.dispatch`); a backend only says which
of its errors are transient (`Classifier.should_retry`) and which of those are rate limits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from harness.run import failfast
from harness.errors import HarnessError
from harness.options import Options
from harness.types import Prompt, Response, SupportExample


class ClassifierOptions(Options):
    """Options every classifier accepts; backends subclass this to add their own."""

    concurrency: int = Field(4, ge=1, description="requests in flight at once for this model")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds")
    max_attempts: int = Field(10, ge=1, description=(
        "most attempts per request that end in a transient error other than rate limiting or overload "
        "(5xx, dropped connection, timeout, malformed reply); 10 loses one request in a million when "
        "a quarter of all requests fail that way (4 lost one in 256)"))
    rate_limit_budget_s: float = Field(600.0, gt=0, description=(
        "seconds a request keeps retrying while the server answers rate limited or overloaded "
        "(429, 503, 529), counted from its first attempt; those answers do not count against max_attempts"))
    requests_per_minute: float | None = Field(None, gt=0, description="most requests started in any 60 s window")
    tokens_per_minute: float | None = Field(None, gt=0, description="most tokens (in + out) in any 60 s window")
    cache: bool | None = Field(None, description=(
        "reuse cached answers: None caches deterministic requests only, True always, False never"))


#: Options that change how requests are sent, not what is answered; left out of cache keys.
#: ``batch`` (a batching backend's option, `harness.batches`) changes how and what it costs, not what is answered.
DISPATCH_OPTIONS = frozenset(ClassifierOptions.model_fields) | {"batch"}


@dataclass(frozen=True)
class Capabilities:
    """What a classifier can take and do."""

    #: Most images one request may carry (None: no limit). Extra images are dropped, last first.
    max_images: int | None = None
    #: True when it can score each candidate instead of generating text.
    can_score_options: bool = False


class Classifier(ABC):
    """A classifier backend. ``plugin`` is the prefix of the model specs it serves."""

    plugin: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[ClassifierOptions]] = ClassifierOptions
    #: True when a spec must name a model (``openai:gpt-4o``); False for ``random``.
    requires_model_id: ClassVar[bool] = False
    #: True when it cannot answer without labelled examples (``--shots K``).
    needs_support: ClassVar[bool] = False
    #: True when it holds a model in this process (``hf``): an executor may run it as replicas elsewhere.
    holds_model: ClassVar[bool] = False
    capabilities: Capabilities = Capabilities()

    def __init__(self, model_id: str | None, options: ClassifierOptions):
        self.model_id = model_id
        self.options = options

    @property
    def spec(self) -> str:
        """The model spec as the user wrote it: ``plugin`` or ``plugin:model_id``."""
        return f"{self.plugin}:{self.model_id}" if self.model_id else self.plugin

    @abstractmethod
    async def classify(self, prompt: Prompt) -> Response:
        """Answer one prompt. Raise on failure; never return a failure as text."""

    def should_retry(self, error: BaseException) -> bool:
        """True when ``error`` is transient (rate limit, overload, 5xx, timeout, dropped connection)."""
        return False

    def is_rate_limited(self, error: BaseException) -> bool:
        """True when transient ``error`` says the server is rate limiting or overloaded (429, 503, 529): retried
        for up to ``rate_limit_budget_s`` instead of counting against ``max_attempts``."""
        return False

    def retry_after(self, error: BaseException) -> float | None:
        """Seconds the server asked to wait before retrying (a Retry-After header), if it said."""
        return None

    def is_fatal(self, error: BaseException) -> bool:
        """True when ``error`` says no request to this model can succeed as configured (by default: HTTP 401,
        403 or 404); a run whose first requests to a model all fail so stops early (harness/run/failfast.py)."""
        return failfast.http_status(error) in failfast.FATAL_STATUSES

    def is_timeout(self, error: BaseException) -> bool:
        """True when ``error`` means the request timed out (recorded as ``timeout``, not ``backend_error``)."""
        return isinstance(error, TimeoutError)

    def set_support(self, category: str, examples: list[SupportExample]) -> None:
        """Labelled examples for ``category`` from ``--shots``, given before its samples. Ignored by default."""

    def answer_options(self) -> dict[str, Any]:
        """The options that can change an answer (everything but dispatch settings); part of cache keys."""
        return self.options.model_dump(exclude=set(DISPATCH_OPTIONS))

    def endpoint(self) -> dict[str, Any]:
        """What answers this classifier's requests, beyond its options; part of cache keys and provenance.

        A hosted backend names the server it talks to after environment and defaults (``base_url``,
        without credentials) and any selector (an API version); a local model its resolved files
        (``checkpoint`` and a fingerprint). Never a secret; fixed when made. Default: ``{}``.
        """
        return {}

    def is_deterministic(self) -> bool:
        """True when the same request gets the same answer (no sampling), so caching it is honest."""
        return float(getattr(self.options, "temperature", 0.0) or 0.0) == 0.0

    def use_cache(self) -> bool:
        """Whether this model's answers are read from and written to the response cache."""
        return self.options.cache if self.options.cache is not None else self.is_deterministic()

    async def aclose(self) -> None:
        """Release clients, sessions, models."""

    def describe(self) -> dict[str, Any]:
        """Model and options for the run's provenance (never secrets)."""
        return {"spec": self.spec, "options": self.options.model_dump()}


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """Split ``PLUGIN:MODEL_ID`` at the first colon; a bare ``PLUGIN`` has no model id.

    >>> parse_model_spec("hf:Qwen/Qwen2-VL-2B-Instruct")
    ('hf', 'Qwen/Qwen2-VL-2B-Instruct')
    """
    spec = spec.strip()
    if not spec:
        raise HarnessError("empty model spec; expected PLUGIN or PLUGIN:MODEL_ID (e.g. openai:gpt-4o)")
    plugin, sep, model_id = spec.partition(":")
    if sep and not model_id:
        raise HarnessError(f"model spec {spec!r} names no model after the colon")
    return plugin, (model_id if sep else None)


def split_model_list(models: str) -> list[str]:
    """Split the ``--models`` value at commas, dropping blanks and duplicates (order kept)."""
    seen: dict[str, None] = {}
    for part in models.split(","):
        if part.strip():
            seen.setdefault(part.strip(), None)
    return list(seen)
