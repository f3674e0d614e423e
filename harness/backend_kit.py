"""Helpers hosted-API backends share around their own SDK client (none is imported here): image
encoding, the class-answer schema, the HTTP transport, client lanes, Retry-After, the endpoint's public URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import importlib.util
import io
import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from typing import Any, Callable, Iterator

from harness.run.redact import redact, strip_url_credentials
from harness.types import ImagePart, Prompt


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


def public_base_url(url: str) -> str:
    """``url`` as an endpoint names it: without ``user:password@``, secret-looking query values redacted,
    scheme and host in lower case, no trailing slash (``http://H/v1/`` and ``http://H/v1`` are one server)."""
    parts = urllib.parse.urlsplit(strip_url_credentials(url.strip()))
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), redact(parts.query), "")
    )
