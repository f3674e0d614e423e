"""The ``anthropic`` classifier: one Messages API request per prompt.

How a prompt goes on the wire:

- system messages -> the ``system`` parameter (their text, joined);
- user and assistant messages -> content blocks: ``text`` blocks and base64
  PNG ``image`` blocks (images in user messages only);
- with ``structured_output``, one tool (`TOOL_NAME`) whose input schema has a
  ``class`` property enumerating the candidate class names, forced with
  ``tool_choice``; the tool input is returned as JSON text (``{"class": ...}``),
  which the core's answer parser reads.

A reply with ``stop_reason: "refusal"`` is a refusal (recorded ``refused``).

Sampling: the 2.x SDK sends API version 2026-10-21, which rejects
``temperature`` (and top_p, top_k) with a 400 even at default values, so no
temperature is sent unless asked for, and asking for one requires
``api_version = "2023-06-01"`` (checked when the options are read). Without
it the model samples at the API's default: requests are not deterministic.

Errors. Retries belong to the core (the SDK's own are off: ``max_retries=0``);
this class only classifies the SDK's exceptions:

=====================================================  =========  =============
exception                                              transient  recorded as
=====================================================  =========  =============
RateLimitError (429)                                   yes        backend_error
InternalServerError and subclasses (>= 500), including
OverloadedError (529), ServiceUnavailableError (503)   yes        backend_error
RequestTimeoutError (408), ConflictError (409)         yes        backend_error
APITimeoutError (client-side timeout)                  yes        timeout
APIConnectionError (refused, reset, dropped)           yes        backend_error
RetryableError (raised by SDK middleware)              yes        backend_error
MalformedResponseError (200 with a non-JSON body)      yes        backend_error
BadRequestError, AuthenticationError, Permission-      no         backend_error
DeniedError, NotFoundError, other 4xx
=====================================================  =========  =============

429, 503 and 529 are rate limiting or overload (``is_rate_limited``): the core
retries them for up to ``rate_limit_budget_s`` seconds instead of counting
them against ``max_attempts``.

"Recorded as" applies once the core gives up (``max_attempts`` or the budget). A malformed
200 body is treated as transient (a proxy or dropped stream produces it; a
retry is cheap and bounded). Before an SDK error leaves this class, the API
key is scrubbed from its message and body, whatever the key looks like.

The endpoint (`endpoint`, part of response-cache keys and of run.json), resolved
once when the classifier is made and sent explicitly, so the SDK adds nothing
of its own: the base URL (the ``base_url`` option, else ``ANTHROPIC_BASE_URL``,
else ``https://api.anthropic.com``), the API version (the ``api_version``
option, else the SDK's default, sent as the ``anthropic-version`` header), and
the ``anthropic-*`` headers the SDK takes from ``ANTHROPIC_CUSTOM_HEADERS``
(``anthropic-beta`` changes behaviour; other headers there are a proxy's, and
may be credentials, so they are left out). Each response keeps the model name
the server reported (``served_model``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pydantic import Field, field_validator, model_validator

from harness.backend_kit import class_answer_schema, is_encoded, png_base64
from harness.classifiers import Capabilities
from harness.hosted import HostedClassifier, HostedOptions, MalformedResponseError
from harness.types import ImagePart, Prompt, Response, TextPart
from harness_anthropic.batches import AnthropicBatches

__all__ = ["AnthropicClassifier", "AnthropicOptions", "MalformedResponseError"]

PIP_HINT = "pip install 'anomaly-harness[anthropic]'"
#: Where the SDK sends requests when neither the base_url option nor ANTHROPIC_BASE_URL says.
DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The last Messages API version that accepts sampling parameters (temperature, top_p, top_k).
LEGACY_API_VERSION = "2023-06-01"
#: The tool a structured answer is asked for through.
TOOL_NAME = "report_defect_class"


class AnthropicOptions(HostedOptions):
    base_url: str | None = Field(
        None, description="API base URL; None: the SDK's default (ANTHROPIC_BASE_URL, else api.anthropic.com)"
    )
    api_key_env: str = Field(
        "ANTHROPIC_API_KEY",
        description=(
            "name of the environment variable holding the API key (the key itself is never an option); "
            "when it is unset and a base URL is given, a placeholder key is sent"
        ),
    )
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "sampling temperature; None: not sent. API version 2026-10-21 (the anthropic 2.x SDK's default) "
            "rejects it with 400, so it needs api_version='2023-06-01'"
        ),
    )
    api_version: str | None = Field(
        None, description="the anthropic-version header; None: the SDK's default (2026-10-21 for anthropic 2.x)"
    )
    structured_output: bool = Field(
        False, description=f"answer through a forced tool ({TOOL_NAME}) whose input schema enumerates the candidate class names"
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra HTTP headers, e.g. anthropic-beta (not for credentials: options are recorded in run.json)",
    )
    batch: bool = Field(
        False, description="send this model's requests through Message Batches (harness run --batch for every model)"
    )

    @field_validator("extra_headers")
    @classmethod
    def _no_version_header(cls, value: dict[str, str]) -> dict[str, str]:
        # (Credential headers are refused by HostedOptions.)
        if any(name.lower() == "anthropic-version" for name in value):
            raise ValueError("set the API version with the api_version option, not a header")
        return value

    @model_validator(mode="after")
    def _sampling_needs_old_api(self) -> AnthropicOptions:
        # Fail before the run, not with a 400 on every sample.
        if self.temperature is not None and self.api_version != LEGACY_API_VERSION:
            raise ValueError(
                f"temperature is rejected by Messages API versions after {LEGACY_API_VERSION}; "
                f"set api_version = '{LEGACY_API_VERSION}' to use it, or leave temperature unset"
            )
        return self


class AnthropicClassifier(AnthropicBatches, HostedClassifier):
    """Messages API with base64 image blocks."""

    plugin = "anthropic"
    description = "Anthropic Messages API (Claude models)"
    Options = AnthropicOptions
    requires_model_id = True
    capabilities = Capabilities(max_images=None)
    options: AnthropicOptions
    sdk_module = "anthropic"
    pip_hint = PIP_HINT
    base_url_env = "ANTHROPIC_BASE_URL"
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, model_id: str | None, options: AnthropicOptions):
        super().__init__(model_id, options)
        self._api_version = options.api_version or _sdk_api_version(self._sdk)
        self._env_api_headers = _env_api_headers()
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- configuration

    def endpoint_selectors(self) -> dict[str, Any]:
        """The API version and the ``anthropic-*`` environment headers (see the module docstring)."""
        selectors: dict[str, Any] = {"api_version": self._api_version or f"default of anthropic {self._sdk.__version__}"}
        if self._env_api_headers:
            selectors["env_headers"] = dict(self._env_api_headers)
        return selectors

    def _get_client(self) -> Any:
        # One client per event loop: an httpx connection pool belongs to the loop that opened it.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._sdk.AsyncAnthropic(
                # The SDK's aiohttp transport when installed: less client CPU per request (harness.backend_kit).
                http_client=self._sdk.DefaultAioHttpClient() if self._http_backend == "aiohttp" else None,
                api_key=self._key,  # explicit: the SDK then consults no other credential source
                base_url=self._base_url or DEFAULT_BASE_URL,  # explicit: the SDK reads no environment variable for it
                timeout=self.options.timeout_s,
                max_retries=0,  # the core retries
                default_headers=self._headers() or None,
            )
            self._client_loop = loop
        return self._client

    def _headers(self) -> dict[str, str]:
        headers = dict(self.options.extra_headers)
        if self._api_version:  # always sent when known, so the version keyed is the version used
            headers["anthropic-version"] = self._api_version
        return headers

    # -- the request

    def build_request(self, prompt: Prompt) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for ``prompt`` (encodes the images)."""
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for message in prompt.messages:
            if message.role == "system":
                if any(isinstance(p, ImagePart) for p in message.parts):
                    raise ValueError("anthropic: images are not allowed in a system message")
                system += [p.text for p in message.parts if isinstance(p, TextPart) and p.text.strip()]
                continue
            if message.role != "user" and any(isinstance(p, ImagePart) for p in message.parts):
                raise ValueError(f"anthropic: images are only allowed in user messages, not in a {message.role} message")
            blocks = [_block(p) for p in message.parts if not (isinstance(p, TextPart) and not p.text.strip())]
            if blocks:
                messages.append({"role": message.role, "content": blocks})
        request: dict[str, Any] = {"model": self.model_id, "max_tokens": self.options.max_tokens, "messages": messages}
        if system:
            request["system"] = "\n\n".join(system)
        if self.options.temperature is not None:
            # The 2.x SDK has no temperature parameter (its default API version rejects it).
            request["extra_body"] = {"temperature": self.options.temperature}
        if self.options.structured_output:
            request["tools"] = [{
                "name": TOOL_NAME,
                "description": "Report the defect class of the query image, chosen from the candidate classes.",
                "input_schema": class_answer_schema(prompt),
            }]
            request["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return request

    async def classify(self, prompt: Prompt) -> Response:
        client = self._get_client()
        if all(is_encoded(p) for p in prompt.images):
            request = self.build_request(prompt)
        else:  # PNG encoding takes milliseconds: keep it off the event loop
            request = await asyncio.to_thread(self.build_request, prompt)
        try:
            message = await client.messages.create(**request)
        except json.JSONDecodeError as error:
            raise MalformedResponseError(f"the server's 200 response is not valid JSON ({error})") from None
        except self._sdk.AnthropicError as error:
            self.scrub(error)
            raise
        return self.parse_message(message)

    def parse_message(self, message: Any) -> Response:
        """A `Response` from a ``Message``; raises `MalformedResponseError` when it is not one."""
        if isinstance(message, (str, bytes)):  # the SDK returns the text of a non-JSON content type
            raise MalformedResponseError(f"the server's 200 response is not JSON: {str(message)[:100]!r}")
        try:
            blocks = list(message.content)
            stop_reason = message.stop_reason
            usage = message.usage
        except (AttributeError, TypeError) as error:
            raise MalformedResponseError(f"the server's response is not a message ({type(error).__name__}: {error})") from None
        tokens_in = getattr(usage, "input_tokens", None) if usage is not None else None
        tokens_out = getattr(usage, "output_tokens", None) if usage is not None else None
        text = ""
        tool_input = next(
            (getattr(b, "input", None) for b in blocks if getattr(b, "type", None) == "tool_use" and getattr(b, "name", None) == TOOL_NAME),
            None,
        )
        if tool_input is not None:
            text = json.dumps(tool_input, ensure_ascii=False)
        else:
            text = "".join(getattr(b, "text", "") or "" for b in blocks if getattr(b, "type", None) == "text")
        served = getattr(message, "model", None)
        return Response(text=text, tokens_in=tokens_in, tokens_out=tokens_out, refused=stop_reason == "refusal",
                        structured=tool_input is not None,
                        served_model=served if isinstance(served, str) and served else None)

    # -- error semantics

    def extra_transient_errors(self) -> tuple[type[BaseException], ...]:
        retryable = getattr(self._sdk, "RetryableError", None)  # raised by the SDK's middleware
        return (retryable,) if retryable is not None else ()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.close()
        self._client_loop = None

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["api_version"] = self.endpoint()["api_version"]
        return described


# ----------------------------------------------------------------------------- helpers


def _sdk_api_version(sdk: Any) -> str | None:
    """The anthropic-version the SDK sends by default (None if this SDK keeps it elsewhere)."""
    version = getattr(getattr(sdk, "_constants", None), "ANTHROPIC_API_VERSION", None)
    return version if isinstance(version, str) else None


def _env_api_headers() -> dict[str, str]:
    """The ``anthropic-*`` headers (but the version, which is sent explicitly) the SDK adds from ANTHROPIC_CUSTOM_HEADERS."""
    found = {}
    for line in os.environ.get("ANTHROPIC_CUSTOM_HEADERS", "").split("\n"):
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if colon and name.startswith("anthropic-") and name != "anthropic-version":
            found[name] = value.strip()
    return found



def _block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64(part)}}


