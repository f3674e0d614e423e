"""Keep secrets out of errors, logs and result files.

Anything that leaves a backend (an exception message, a response body) passes
through `redact` before it is logged or recorded.
"""

from __future__ import annotations

import os
import re

# Key shapes of common providers and bearer headers. Deliberately broad: a false
# positive costs a few characters of an error message, a miss leaks a secret.
_PATTERNS = [
    # Not inside a word ("task-management-system" is not a key), but after an escape (repr's "\nsk-...").
    re.compile(r"(?:(?<![A-Za-z0-9])|(?<=\\[nrt]))sk-[A-Za-z0-9_\-]{8,}"),
    # RFC 6750 b64token: base64 keys contain + / = and must not leak past them.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"),
    # key: value, key=value, "key": "value", also JSON escaped inside a string (\"key\": \"value\")
    # and an auth scheme before the value (Authorization: Basic dXNl...).
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|authorization|token)(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?"
        r"(?:(?:basic|bearer|digest|token)\s+)?)[^\s\"'\\,}]{6,}"
    ),
    re.compile(r"hf_[A-Za-z0-9]{10,}"),
]
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_ACCESS_KEY")
_SECRET_ENV_NAMES = tuple(suffix.lstrip("_") for suffix in _SECRET_ENV_SUFFIXES)  # API_KEY, TOKEN, ...
REDACTED = "[REDACTED]"


def redact(text: str, extra_secrets: list[str] | None = None) -> str:
    """Replace API keys (known shapes, secret-looking env values, ``extra_secrets``) with a marker."""
    from_env = [value for name, value in os.environ.items() if len(value) >= 6 and (
        name.upper().endswith(_SECRET_ENV_SUFFIXES) or name.upper() in _SECRET_ENV_NAMES)]
    # Longest first, all together: a secret that contains another must not leave its tail behind.
    for secret in sorted({*(extra_secrets or []), *from_env}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s:]*(?::[^/@\s]*)?@")


def strip_url_credentials(text: str) -> str:
    """Drop ``user:password@`` from any URL in ``text``."""
    return _URL_CREDENTIALS.sub(r"\1", text)


def redact_value(value):
    """Redact every string inside a JSON-like value (dicts, lists), e.g. options bound for run.json."""
    if isinstance(value, str):
        return redact(strip_url_credentials(value))
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value
