"""Helpers that hosted-API backend plugins share: SDK import, image encoding, the class-answer
schema, transient and rate-limit errors, Retry-After, secret scrubbing, the endpoint that answers
(for cache keys and provenance).

No SDK is imported here; plugins call these around their own client. A third-party
plugin may use them too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import importlib
import io
import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from typing import Any, Callable, Iterator

from harness.run.redact import redact, strip_url_credentials
from harness.errors import HarnessError
from harness.types import ImagePart, Prompt

def import_sdk(module: str, pip_hint: str) -> Any:
    """Import a backend SDK at first use; a missing one is a `HarnessError` with the pip hint."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise HarnessError(f"the {module} plugin needs the {module} SDK: {pip_hint} ({error})") from None


def class_answer_schema(prompt: Prompt, closed: bool = False) -> dict[str, Any]:
    """JSON schema of ``{"class": NAME}``, NAME one of the candidates' display names (deduplicated, in order).

    ``closed`` adds ``additionalProperties: false``, which strict structured-output modes require.
    """
    names = list(dict.fromkeys(c.name for c in prompt.candidates))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"class": {"type": "string", "enum": names, "description": "the defect class of the query image"}},
        "required": ["class"],
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


#: The key sent to keyless local servers (vLLM, Ollama, llama.cpp) when no key is configured.
KEYLESS_PLACEHOLDER = "EMPTY"

_PNG_CACHE: OrderedDict[str, str] = OrderedDict()
_PNG_CACHE_SIZE = 64
_PNG_LOCK = threading.Lock()


def is_encoded(part: ImagePart) -> bool:
    with _PNG_LOCK:
        return part.digest in _PNG_CACHE


def png_base64(part: ImagePart) -> str:
    """Base64 PNG of an image part, cached by content digest (a reference image recurs across samples)."""
    with _PNG_LOCK:
        cached = _PNG_CACHE.get(part.digest)
        if cached is not None:
            _PNG_CACHE.move_to_end(part.digest)
            return cached
    image = part.image
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    with _PNG_LOCK:
        _PNG_CACHE[part.digest] = encoded
        while len(_PNG_CACHE) > _PNG_CACHE_SIZE:
            _PNG_CACHE.popitem(last=False)
    return encoded


def http_backend() -> str:
    """``aiohttp`` when it is installed, else ``httpx``: the HTTP layer the openai and anthropic SDKs are given.

    Both SDKs ship an aiohttp transport (``DefaultAioHttpClient``, their ``[aiohttp]``
    extra) for high concurrency. It costs a fraction of httpx's client CPU per request
    (benchmarks/dispatch.py), which is what limits a run at concurrency 64 and more.
    The environment variable ``HARNESS_HTTP_BACKEND=httpx`` keeps the SDKs' default.
    """
    import importlib.util
    import os

    if os.environ.get("HARNESS_HTTP_BACKEND", "").strip().lower() == "httpx":
        return "httpx"
    return "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpx"


#: Requests in flight per SDK client (and so per connection pool) in `ClientLanes`.
LANE_SIZE = 8


class ClientLanes:
    """A few SDK clients for one event loop, each with its own connection pool; a request takes the least busy.

    Why not one client: httpx's connection pool (httpcore) re-examines every pooled
    connection, probing each idle socket with a system call, whenever a request
    starts or ends. With 64 connections in one pool those scans cost more client
    CPU than the request itself (benchmarks/dispatch.py at concurrency 64). Pools of
    at most `LANE_SIZE` connections keep each scan short. The number of connections
    is unchanged: one per request in flight. All clients are made at once, on the
    first request, so their setup (an SSL context each) is not paid mid-run.
    """

    def __init__(self, make_client: Callable[[], Any], concurrency: int, lane_size: int = LANE_SIZE):
        self.loop = asyncio.get_running_loop()  # an httpx pool belongs to the loop that opened it
        count = max(1, -(-concurrency // max(1, lane_size)))
        self.clients = [make_client() for _ in range(count)]
        self._busy = [0] * count

    @contextlib.contextmanager
    def lane(self) -> Iterator[Any]:
        """The least busy client, counted as busy until the block ends."""
        index = self._busy.index(min(self._busy))
        self._busy[index] += 1
        try:
            yield self.clients[index]
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every client (only from the loop they belong to)."""
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent or invalid."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def scrub_secret(error: BaseException, secret: str | None) -> None:
    """Replace ``secret`` in an exception's message, args and body, in place (it keeps its type)."""
    if not secret or secret == KEYLESS_PLACEHOLDER or len(secret) < 4:
        return

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(secret, "[REDACTED]")
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        return value

    error.args = clean(error.args)
    for attr in ("message", "body", "api_message"):  # api_message: anthropic errors
        if hasattr(error, attr):
            try:
                setattr(error, attr, clean(getattr(error, attr)))
            except AttributeError:
                pass


def strip_userinfo(url: str | None) -> str | None:
    """A URL without ``user:password@`` (credentials in a base URL must not reach run.json)."""
    return strip_url_credentials(url) if url else url


# -- the endpoint that answers (Classifier.endpoint)

#: Options that `hosted_endpoint` accounts for: in the key as part of the endpoint, resolved, not as written.
ENDPOINT_OPTIONS = ("base_url", "api_version")


def configured_base_url(option: str | None, env_var: str) -> str | None:
    """The base URL a user configured: the option, else ``$env_var`` when set and not blank; None: the SDK's default.

    Plugins resolve it once, when the classifier is made, and give the SDK client the
    result explicitly, so the URL in cache keys and run.json is the one requests go to.
    """
    return (option or "").strip() or (os.environ.get(env_var) or "").strip() or None


def public_base_url(url: str) -> str:
    """``url`` as an endpoint names it: without ``user:password@``, secret-looking query values redacted,
    scheme and host in lower case, no trailing slash (``http://H/v1/`` and ``http://H/v1`` are one server)."""
    parts = urllib.parse.urlsplit(strip_url_credentials(url.strip()))
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), redact(parts.query), "")
    )


def hosted_endpoint(base_url: str | None, default_url: str, **selectors: Any) -> dict[str, Any]:
    """`Classifier.endpoint` of a hosted backend: the public form of the base URL requests go to
    (``base_url``, else ``default_url``) and whatever else selects what answers (an API version)."""
    return {"base_url": public_base_url(base_url or default_url), **selectors}


def without_endpoint_options(options: dict[str, Any]) -> dict[str, Any]:
    """Answer options minus `ENDPOINT_OPTIONS`: the endpoint holds them resolved (a base URL given by
    option or by environment variable is then one key, and a credential in it is never key material)."""
    return {name: value for name, value in options.items() if name not in ENDPOINT_OPTIONS}


def describe_hosted(classifier: Any, sdk: Any, http_backend_name: str, keyless: bool) -> dict[str, Any]:
    """`Classifier.describe` of a hosted backend (never a secret): options, SDK version, transport, endpoint."""
    options = classifier.options.model_dump()
    options["base_url"] = strip_userinfo(options.get("base_url"))
    return {
        "spec": classifier.spec,
        "options": options,
        "sdk": {sdk.__name__: getattr(sdk, "__version__", "unknown")},
        "http_backend": http_backend_name,
        "base_url": classifier.endpoint()["base_url"],
        "keyless": keyless,
    }


# The openai and anthropic SDKs are generated from one template and share these exception
# classes, so one reading of their errors serves both plugins.


def is_transient_sdk_error(sdk: Any, error: BaseException) -> bool:
    """Connection errors (timeouts included) and HTTP 408, 409, 429 and 5xx (529 overloaded too)."""
    if isinstance(error, sdk.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, sdk.APIStatusError):
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return False


#: Statuses that mean "too busy now, ask later": rate limited (429), unavailable (503), overloaded (529).
RATE_LIMIT_STATUSES = frozenset({429, 503, 529})


def is_rate_limited_sdk_error(sdk: Any, error: BaseException) -> bool:
    """HTTP 429, 503 or 529, with or without Retry-After: retried within the request's time budget, not a count."""
    return isinstance(error, sdk.APIStatusError) and error.status_code in RATE_LIMIT_STATUSES


def sdk_retry_after(sdk: Any, error: BaseException) -> float | None:
    """The Retry-After an SDK status error's response carried, in seconds."""
    response = getattr(error, "response", None)
    if not isinstance(error, sdk.APIStatusError) or response is None:
        return None
    return parse_retry_after(response.headers)


def is_sdk_timeout(sdk: Any, error: BaseException) -> bool:
    return isinstance(error, (sdk.APITimeoutError, TimeoutError))
