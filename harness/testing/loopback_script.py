"""What a loopback server's test writes: the `Request` it receives, and the `Answer` or `Fault` it gives.

A responder is a callable taking the parsed `Request` and returning an
`Outcome`: answer text (``str``), an `Answer`, a complete JSON body (``dict``),
a `Fault`, or a callable of the request giving one of those. `always` and
`sequence` build the common responders. The server that calls them is
`harness.testing.loopback_server`; the wire formats are
`harness.testing.loopback_openai` and `harness.testing.loopback_anthropic`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Union

#: Prompt tokens counted per image when a responder does not say (OpenAI's low-detail cost).
TOKENS_PER_IMAGE = 85

Protocol = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class Answer:
    """A successful reply with explicit details; a bare ``str`` is ``Answer(text)``.

    ``tokens_in`` / ``tokens_out`` default to an estimate (words of the request's
    text plus `TOKENS_PER_IMAGE` per image; words of the answer, at least 1).
    ``refusal`` makes it a refusal: OpenAI's ``message.refusal`` (content null),
    Anthropic's ``stop_reason: "refusal"`` with the refusal as text.
    ``finish_reason`` overrides OpenAI's ``finish_reason`` / Anthropic's ``stop_reason``.
    ``model`` is the model name the reply reports (a server may serve another model
    than the one asked for); None: the request's.
    """

    text: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None


FaultKind = Literal["status", "hang", "reset", "malformed", "expired"]


@dataclass(frozen=True)
class Fault:
    """A scripted failure. Build one with the class methods below."""

    kind: FaultKind
    status: int = 500
    #: JSON-able body (dict or list), or str/bytes sent verbatim; None: the protocol's error body.
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    #: hang: how long to hold the request before closing the connection without an answer.
    seconds: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def error(cls, status: int, message: str = "", *, body: Any = None,
              headers: Mapping[str, str] | None = None, retry_after: float | str | None = None) -> Fault:
        """An HTTP error status. ``body`` None builds the protocol's own error object around ``message``."""
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}" if isinstance(retry_after, (int, float)) else retry_after
        return cls("status", status=status, body=body, headers=headers, message=message or f"loopback error {status}")

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None, message: str = "Rate limit reached") -> Fault:
        """429 Too Many Requests, optionally with a Retry-After header (seconds or an HTTP date)."""
        return cls.error(429, message, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500, message: str = "The server had an error") -> Fault:
        return cls.error(status, message)

    @classmethod
    def overloaded(cls, message: str = "Overloaded") -> Fault:
        """529, Anthropic's "overloaded" status."""
        return cls.error(529, message)

    @classmethod
    def unauthorized(cls, request: Request | None = None) -> Fault:
        """401. Given the request, the message echoes the key it carried, so a test can check redaction."""
        key = request.api_key if request is not None else None
        return cls.error(401, f"Incorrect API key provided: {key}" if key else "Missing API key")

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Hold the request without answering for ``seconds`` (longer than the client's timeout), then close."""
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection abruptly (TCP RST) without any response."""
        return cls("reset")

    @classmethod
    def expired(cls) -> Fault:
        """In a provider batch: the request expired unanswered (a live request gets a 500)."""
        return cls("expired", status=500, message="loopback: expired")

    @classmethod
    def malformed(cls, body: bytes | str = b'{"id": "truncated", "choices": [{"message": ',
                  content_type: str = "application/json") -> Fault:
        """Status 200 with a body that is not valid JSON (by default a truncated JSON object)."""
        return cls("malformed", status=200, body=body, content_type=content_type)


@dataclass
class Request:
    """One request as the server received it; what a responder decides on."""

    index: int  # 0-based arrival order across the server's life
    protocol: Protocol | None  # None: an unknown path
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when the body was not JSON
    received_at: float  # time.monotonic()
    outcome: str = ""  # "answer", "body", "status:429", "hang", "reset", "malformed", "refused:...", ...
    finished_at: float | None = None

    @property
    def api_key(self) -> str | None:
        """The key the client sent (``Authorization: Bearer`` or ``x-api-key``)."""
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("x-api-key")

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def schema_enum(self) -> list[str] | None:
        """The enum of the ``class`` property of the request's output schema, if it asked for one.

        OpenAI: ``response_format.json_schema.schema``; Anthropic: the forced tool's ``input_schema``.
        """
        body = self.body if isinstance(self.body, dict) else {}
        schema = None
        if self.protocol == "openai":
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        elif self.protocol == "anthropic":
            forced = forced_tool(body)
            for tool in body.get("tools") or []:
                if tool.get("name") == forced:
                    schema = tool.get("input_schema")
        try:
            return list(schema["properties"]["class"]["enum"])
        except (TypeError, KeyError):
            return None

    def texts(self) -> list[str]:
        """Every text the request carries (system prompt and message text parts), in order."""
        body = self.body if isinstance(self.body, dict) else {}
        found: list[str] = []
        system = body.get("system")
        if isinstance(system, str):
            found.append(system)
        elif isinstance(system, list):
            found += [b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text"]
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
            elif isinstance(content, list):
                found += [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return found

    def image_count(self) -> int:
        count = 0
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):
                count += sum(1 for b in content if isinstance(b, dict) and b.get("type") in ("image", "image_url"))
        return count


Outcome = Union[str, Answer, dict, Fault, Callable[["Request"], Any]]
Responder = Callable[[Request], Outcome]


def always(outcome: Outcome) -> Responder:
    """A responder giving the same outcome to every request."""
    return lambda request: outcome


def sequence(*outcomes: Outcome, then: Outcome | None = None) -> Responder:
    """A responder giving ``outcomes`` in arrival order, then ``then`` (default: the last one) forever.

    Thread-safe: concurrent requests each take the next outcome exactly once.
    """
    if not outcomes:
        raise ValueError("sequence() needs at least one outcome")
    remaining = list(outcomes)
    final = then if then is not None else outcomes[-1]
    lock = threading.Lock()

    def respond(request: Request) -> Outcome:
        with lock:
            return remaining.pop(0) if remaining else final

    return respond


def forced_tool(body: dict) -> str | None:
    """The tool an Anthropic request forces (``tool_choice`` of type ``tool``), or None."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        return choice.get("name")
    return None


def estimate_prompt_tokens(request: Request) -> int:
    """Whitespace-separated words of all request text, plus `TOKENS_PER_IMAGE` per image."""
    return sum(len(t.split()) for t in request.texts()) + TOKENS_PER_IMAGE * request.image_count()
