"""Helpers that hosted-API backend plugins share: image encoding, Retry-After, secret scrubbing.

No SDK is imported here; plugins call these around their own client. A third-party
plugin may use them too.
"""

from __future__ import annotations

import base64
import email.utils
import io
import threading
import time
from collections import OrderedDict
from typing import Any

from harness.redact import strip_url_credentials
from harness.types import ImagePart

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


# The openai and anthropic SDKs are generated from one template and share these exception
# classes, so one reading of their errors serves both plugins.


def is_transient_sdk_error(sdk: Any, error: BaseException) -> bool:
    """Connection errors (timeouts included) and HTTP 408, 409, 429 and 5xx (529 overloaded too)."""
    if isinstance(error, sdk.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, sdk.APIStatusError):
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return False


def sdk_retry_after(sdk: Any, error: BaseException) -> float | None:
    """The Retry-After an SDK status error's response carried, in seconds."""
    response = getattr(error, "response", None)
    if not isinstance(error, sdk.APIStatusError) or response is None:
        return None
    return parse_retry_after(response.headers)


def is_sdk_timeout(sdk: Any, error: BaseException) -> bool:
    return isinstance(error, (sdk.APITimeoutError, TimeoutError))
