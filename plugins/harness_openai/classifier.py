"""The ``openai`` classifier: one Chat Completions request per prompt.

How a prompt goes on the wire:

- system messages -> ``{"role": "system", "content": TEXT}`` (text only);
- user messages -> a list of ``text`` and ``image_url`` parts, each image a
  base64 PNG data URL with the ``image_detail`` option;
- with ``structured_output``, ``response_format`` is a strict JSON schema whose
  ``class`` property is an enum of the candidate class names; the reply's JSON
  text is then the answer, which the core's answer parser reads.

Speed (what limits a run at high concurrency is the client's CPU per request,
see benchmarks/dispatch.py): the body is posted with the SDK client's own
``post`` (its headers, auth, base URL, timeouts and errors), skipping
``chat.completions.create``'s typed-parameter transform, which is the identity
for these parameters but walks their annotations at ~0.8 ms per request; the
reply is parsed from its JSON bytes. Requests are spread over a few SDK clients
(`ClientLanes`), and the SDK's aiohttp transport is used when aiohttp is
installed (`http_backend`).

Errors. Retries belong to the core (the SDK's own are off: ``max_retries=0``);
this class only classifies the SDK's exceptions:

==================================================  =========  ====================
exception                                           transient  recorded as
==================================================  =========  ====================
RateLimitError (429)                                yes        backend_error
InternalServerError (any status >= 500, incl. 529)  yes        backend_error
APIStatusError with 408 or 409                      yes        backend_error
APITimeoutError (client-side timeout)               yes        timeout
APIConnectionError (refused, reset, dropped)        yes        backend_error
MalformedResponseError (200 with a non-JSON body)   yes        backend_error
BadRequestError, AuthenticationError, Permission-   no         backend_error
DeniedError, NotFoundError, other 4xx
==================================================  =========  ====================

429, 503 and 529 are rate limiting or overload (``is_rate_limited``): the core
retries them for up to ``rate_limit_budget_s`` seconds instead of counting
them against ``max_attempts``.

"Recorded as" applies once the core gives up (``max_attempts`` or the budget). A malformed
200 body is treated as transient: it is what a proxy or a dropped stream
produces, and a retry is cheap and bounded. Before an SDK error leaves this
class, the API key is scrubbed from its message and body, whatever the key
looks like (the core's redaction catches known key shapes only).

The endpoint (`endpoint`, part of response-cache keys and of run.json): the
base URL requests go to, resolved once when the classifier is made (the
``base_url`` option, else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``)
and given to the SDK explicitly, so the key names the server that answered.
``OPENAI_ORG_ID`` and ``OPENAI_PROJECT_ID`` are not part of it: they choose who
is billed and what may be called, not which model answers a given name.
Each response keeps the model name the server reported (``served_model``).

Replicas (`harness_openai.replicas`): a ``base_url`` listing several servers of
one model (comma-separated, or a list in a config file) gets one set of SDK
clients per replica, and each request goes to the least loaded replica that is
not cooling down after a transient failure. The endpoint is then the set of
replicas (sorted), so keys and the cache stay one model's whichever replica
answered; each response names its replica (`Response.replica`, the record's
``replica``). With one base URL nothing of this applies and ``replica`` is None.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.backend_kit import ClientLanes, class_answer_schema, is_encoded, png_base64
from harness.classifiers import Capabilities
from harness.hosted import HostedClassifier, HostedOptions, MalformedResponseError
from harness.types import ImagePart, Prompt, Response, TextPart
from harness_openai.batches import OpenAIBatches
from harness_openai.replicas import ReplicaPool, Ticket, replica_set_name, split_base_urls

__all__ = ["MalformedResponseError", "OpenAIClassifier", "OpenAIOptions"]

PIP_HINT = "pip install 'anomaly-harness[openai]'"
#: Where the SDK sends requests when neither the base_url option nor OPENAI_BASE_URL says.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Name of the function/schema the structured answer is asked for under.
SCHEMA_NAME = "defect_class"
#: A replica's request cancelled after this share of ``timeout_s`` in flight counts as timed out (the replica cools down).
TIMEOUT_SHARE = 0.9
#: Request options of ``chat.completions.create``: the API key as a bearer token (not the admin key).
_REQUEST_OPTIONS = {"security": {"bearer_auth": True}}


class OpenAIOptions(HostedOptions):
    base_url: str | None = Field(
        None,
        description=(
            "API base URL, e.g. http://localhost:8000/v1 for vLLM or http://localhost:11434/v1 for Ollama; "
            "several replicas of one model: their URLs comma-separated (or a list in a config file), each request "
            "going to the least loaded; None: the SDK's default (OPENAI_BASE_URL, else api.openai.com)"
        ),
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description=(
            "name of the environment variable holding the API key (the key itself is never an option); "
            "when it is unset and a base URL is given, a placeholder key is sent (keyless local servers)"
        ),
    )
    temperature: float | None = Field(0.0, ge=0.0, le=2.0, description="sampling temperature; None: the server's default")
    token_limit_field: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto",
        description=(
            "request field carrying max_tokens: auto sends max_completion_tokens to api.openai.com "
            "(required by its reasoning models) and max_tokens to any other server"
        ),
    )
    seed: int | None = Field(None, description="sampling seed, for servers that support it")
    image_detail: Literal["auto", "low", "high"] = Field("auto", description="image_url detail level")
    structured_output: bool = Field(
        False, description="ask for JSON {\"class\": ...} constrained to the candidate class names (response_format json_schema)"
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="extra JSON fields merged into each request (server-specific, e.g. vLLM's top_k)"
    )
    batch: bool = Field(
        False, description="send this model's requests through the Batch API (harness run --batch for every model)"
    )

    @field_validator("base_url", mode="before")
    @classmethod
    def _replicas_as_one_string(cls, value: Any) -> Any:
        """A list of replicas' URLs (a config file's) becomes the comma-separated form the variable takes."""
        if isinstance(value, (list, tuple)):
            if not value or not all(isinstance(url, str) for url in value):
                raise ValueError("a list of base URLs must hold one or more strings")
            return ",".join(url.strip() for url in value)
        return value


class OpenAIClassifier(OpenAIBatches, HostedClassifier):
    """Chat Completions with image parts; works with any OpenAI-compatible server."""

    plugin = "openai"
    description = "OpenAI Chat Completions API and OpenAI-compatible servers (vLLM, SGLang, Ollama, LM Studio, llama.cpp)"
    Options = OpenAIOptions
    requires_model_id = True
    capabilities = Capabilities(max_images=None)
    options: OpenAIOptions
    sdk_module = "openai"
    pip_hint = PIP_HINT
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, model_id: str | None, options: OpenAIOptions):
        super().__init__(model_id, options)
        source = "the base_url option" if (options.base_url or "").strip() else self.base_url_env
        urls = split_base_urls(self._base_url, f"model {self.spec!r}: {source}")
        #: The replicas requests are spread over; None with a single server (or the default), which is used as before.
        self._pool = ReplicaPool(urls) if len(urls) > 1 else None
        #: SDK clients for the current event loop: one `ClientLanes` per replica (one in all without replicas).
        self._lanes: list[ClientLanes] | None = None

    # -- configuration

    def _token_field(self) -> str:
        if self.options.token_limit_field != "auto":
            return self.options.token_limit_field
        return "max_completion_tokens" if self._base_url is None else "max_tokens"

    def endpoint(self) -> dict[str, Any]:
        """The server that answers; with replicas, all of them (sorted): one model, one key, whichever answered."""
        if self._pool is None:
            return super().endpoint()
        return {"base_url": replica_set_name([r.url for r in self._pool.replicas])}

    def _lanes_for_loop(self) -> list[ClientLanes]:
        # Clients per event loop: an httpx connection pool belongs to the loop that opened it.
        loop = asyncio.get_running_loop()
        if self._lanes is None or self._lanes[0].loop is not loop:
            urls = [r.url for r in self._pool.replicas] if self._pool is not None else [self._base_url or DEFAULT_BASE_URL]
            # Each replica may have to take every request in flight (while the others cool down).
            self._lanes = [ClientLanes(functools.partial(self._new_client, url), self.options.concurrency) for url in urls]
        return self._lanes

    def _new_client(self, base_url: str) -> Any:
        return self._sdk.AsyncOpenAI(
            http_client=self._sdk.DefaultAioHttpClient() if self._http_backend == "aiohttp" else None,
            api_key=self._key,
            base_url=base_url,  # explicit: the SDK reads no environment variable for it
            timeout=self.options.timeout_s,
            max_retries=0,  # the core retries
            default_headers=self.options.extra_headers or None,
        )

    # -- the request

    def build_request(self, prompt: Prompt) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``prompt`` (encodes the images)."""
        messages = []
        for message in prompt.messages:
            if message.role == "user":
                content: Any = [self._part(p) for p in message.parts]
            else:
                if any(isinstance(p, ImagePart) for p in message.parts):
                    raise ValueError(f"openai: images are only allowed in user messages, not in a {message.role} message")
                content = "\n\n".join(p.text for p in message.parts if isinstance(p, TextPart))
            messages.append({"role": message.role, "content": content})
        request: dict[str, Any] = {"model": self.model_id, "messages": messages, self._token_field(): self.options.max_tokens}
        if self.options.temperature is not None:
            request["temperature"] = self.options.temperature
        if self.options.seed is not None:
            request["seed"] = self.options.seed
        if self.options.structured_output:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": class_answer_schema(prompt, closed=True)},
            }
        if self.options.extra_body:
            request["extra_body"] = dict(self.options.extra_body)
        return request

    def request_body(self, prompt: Prompt) -> dict[str, Any]:
        """The JSON body sent to ``/chat/completions``: `build_request` with ``extra_body`` merged in, as the SDK merges it."""
        body = self.build_request(prompt)
        body.update(body.pop("extra_body", None) or {})
        return body

    def _part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        url = "data:image/png;base64," + png_base64(part)
        return {"type": "image_url", "image_url": {"url": url, "detail": self.options.image_detail}}

    async def classify(self, prompt: Prompt) -> Response:
        lanes = self._lanes_for_loop()
        if all(is_encoded(p) for p in prompt.images):
            body = self.request_body(prompt)
        else:  # PNG encoding takes milliseconds: keep it off the event loop
            body = await asyncio.to_thread(self.request_body, prompt)
        if self._pool is None:
            return self.parse_completion(await self._post(lanes[0], body))
        ticket = self._pool.choose()  # chosen now, with the body ready: the in-flight counts are the wire's
        try:
            response = self.parse_completion(await self._post(lanes[ticket.replica.index], body))
        except BaseException as error:
            self._replica_finished(ticket, error)
            raise
        self._pool.finished(ticket, ok=True)
        response.replica = ticket.replica.name
        return response

    async def _post(self, lanes: ClientLanes, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``/chat/completions`` through one of ``lanes``' clients; the raw reply bytes."""
        try:
            with lanes.lane() as client:
                # What chat.completions.create sends, minus its parameter transform: that walk of the
                # typed-dict annotations cost ~0.8 ms of CPU per request (more with images) and is the
                # identity for these parameters (tests/test_openai.py compares the bytes on the wire).
                return await client.post("/chat/completions", body=body, cast_to=bytes, options=_REQUEST_OPTIONS)
        except self._sdk.OpenAIError as error:
            self.scrub(error)
            raise

    def _replica_finished(self, ticket: Ticket, error: BaseException) -> None:
        """Tell the pool how a replica's request failed: a transient error cools the replica down, and so does a
        cancellation once the request was in flight for about ``timeout_s`` (the core's timeout: a hung replica);
        a permanent error (a bad request) or an earlier cancellation (a stopping run) says nothing about it."""
        if isinstance(error, asyncio.CancelledError):
            # The core's timeout cancels this coroutine: nothing else tells it from a stopping run but the time.
            # Its clock started before the body was built, hence the margin.
            timed_out = self._pool.elapsed(ticket) >= TIMEOUT_SHARE * self.options.timeout_s
            self._pool.finished(ticket, failed=timed_out)
        elif isinstance(error, Exception) and self.should_retry(error):
            self._pool.finished(ticket, failed=True, retry_after_s=self.retry_after(error))
        else:
            self._pool.finished(ticket)

    def parse_completion(self, completion: Any) -> Response:
        """A `Response` from a chat completion (the JSON body, as bytes or parsed); raises `MalformedResponseError` when it is not one."""
        if isinstance(completion, (bytes, str)):
            try:
                completion = json.loads(completion)
            except ValueError:
                raise MalformedResponseError(f"the server's 200 response is not JSON: {_excerpt(completion)!r}") from None
        try:
            choice = completion["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            refusal = message.get("refusal")
            finish_reason = choice.get("finish_reason")
            usage = completion.get("usage") or {}
            served = completion.get("model")
            tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        except (AttributeError, IndexError, KeyError, TypeError) as error:
            raise MalformedResponseError(f"the server's response is not a chat completion ({type(error).__name__}: {error})") from None
        if not isinstance(content, str):
            raise MalformedResponseError(f"the server's message content is not text: {_excerpt(json.dumps(content))!r}")
        served_model = served if isinstance(served, str) and served else None
        if refusal:
            return Response(text=refusal, tokens_in=tokens_in, tokens_out=tokens_out, refused=True, served_model=served_model)
        return Response(text=content, tokens_in=tokens_in, tokens_out=tokens_out, refused=finish_reason == "content_filter",
                        structured=self.options.structured_output, served_model=served_model)

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, None
        if lanes is not None and lanes[0].loop is asyncio.get_running_loop():
            for one in lanes:
                await one.aclose()

# ----------------------------------------------------------------------------- helpers



def _excerpt(text: str | bytes, limit: int = 100) -> str:
    return (text.decode("utf-8", "replace") if isinstance(text, bytes) else text)[:limit]


