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
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
    re.compile(r"hf_[A-Za-z0-9]{10,}"),
]
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_ACCESS_KEY")
REDACTED = "[REDACTED]"


def _secret_env_values() -> list[str]:
    values = []
    for name, value in os.environ.items():
        if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 6:
            values.append(value)
    return sorted(values, key=len, reverse=True)


def redact(text: str, extra_secrets: list[str] | None = None) -> str:
    """Replace API keys (known shapes, secret-looking env values, ``extra_secrets``) with a marker."""
    for secret in (extra_secrets or []) + _secret_env_values():
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text
