"""`HostedClassifier`: what every hosted-API backend shares, once.

A hosted backend (the ``openai`` and ``anthropic`` plugins, or a third party's) differs in how it
builds a request and reads a reply. Everything else is the same and lives here: the options every
such backend has (``base_url``, ``api_key_env``, ``max_tokens``, ``structured_output``,
``extra_headers``) and their checks, where the key comes from, the endpoint that answers (part of
response-cache keys), which SDK errors are transient, rate limits or timeouts, Retry-After, and
`describe`. The SDK module is imported by name at first use (``sdk_module``), so the core imports
no SDK; the helpers underneath are `harness.backend_kit`'s.

A subclass sets the class attributes below and implements ``classify``; it may add endpoint
selectors (`endpoint_selectors`) and transient error classes (`extra_transient_errors`).
"""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from harness.backend_kit import (
    KEYLESS_PLACEHOLDER, configured_base_url, describe_hosted, hosted_endpoint, http_backend, import_sdk,
    is_rate_limited_sdk_error, is_sdk_timeout, is_transient_sdk_error, scrub_secret, sdk_retry_after,
    without_endpoint_options,
)
from harness.classifiers import Classifier, ClassifierOptions
from harness.errors import HarnessError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Headers that carry credentials: never accepted as options (options are written to run.json).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"})


class MalformedResponseError(Exception):
    """The server answered 200 with a body that is not a reply of its API (not JSON, or missing fields).

    Transient: a proxy or a dropped stream produces it, and a retry is cheap and bounded.
    """


class HostedOptions(ClassifierOptions):
    """Options of every hosted backend; a subclass gives ``api_key_env`` its own default."""

    base_url: str | None = Field(None, description="API base URL; None: the SDK's default (its environment variable, else the vendor's API)")
    api_key_env: str = Field(
        "API_KEY",
        description=(
            "name of the environment variable holding the API key (the key itself is never an option); "
            "when it is unset and a base URL is given, a placeholder key is sent (keyless local servers)"
        ),
    )
    max_tokens: int = Field(64, ge=1, description="most tokens the model may generate")
    structured_output: bool = Field(False, description="constrain the answer to the candidate class names")
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra HTTP headers (not for credentials: options are recorded in run.json; use api_key_env)",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        # Never echo the value: it may be a key pasted in by mistake.
        if not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, '_'), not the key itself")
        return value

    @field_validator("extra_headers")
    @classmethod
    def _no_credentials(cls, value: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in value if name.lower() in SECRET_HEADERS)
        if secret:
            raise ValueError(f"header(s) {', '.join(secret)} carry credentials; set the key through api_key_env")
        return value


class HostedClassifier(Classifier):
    """A classifier behind a hosted API reached through its vendor's SDK."""

    #: The SDK's module name and the install hint shown when it is missing.
    sdk_module: ClassVar[str]
    pip_hint: ClassVar[str]
    #: The environment variable the SDK reads a base URL from, and the vendor's own URL.
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str]
    options: HostedOptions

    def __init__(self, model_id: str | None, options: HostedOptions):
        super().__init__(model_id, options)
        self._sdk = import_sdk(self.sdk_module, self.pip_hint)
        self._base_url = configured_base_url(options.base_url, self.base_url_env)  # None: default_base_url
        self._key = self._resolve_key()
        self._http_backend = http_backend()

    # -- configuration

    def endpoint(self) -> dict[str, Any]:
        """The server that answers: its base URL after the environment and the default, no credentials."""
        return hosted_endpoint(self._base_url, self.default_base_url, **self.endpoint_selectors())

    def endpoint_selectors(self) -> dict[str, Any]:
        """What besides the URL decides which model answers (an API version, say); none by default."""
        return {}

    def answer_options(self) -> dict[str, Any]:
        """Answer options without what the endpoint holds, resolved (``base_url``, ``api_version``)."""
        return without_endpoint_options(super().answer_options())

    def _resolve_key(self) -> str:
        key = os.environ.get(self.options.api_key_env)
        if key:
            return key
        if self._base_url:
            return KEYLESS_PLACEHOLDER
        raise HarnessError(
            f"model {self.spec!r}: no API key; set the {self.options.api_key_env} environment variable "
            "(or the option api_key_env to the variable that holds it, or base_url for a keyless local server)"
        )

    @property
    def keyless(self) -> bool:
        return self._key == KEYLESS_PLACEHOLDER

    def scrub(self, error: BaseException) -> None:
        """Remove the API key from an SDK error's message and body, whatever the key looks like."""
        scrub_secret(error, self._key)

    def is_deterministic(self) -> bool:
        """Only an explicit temperature 0 is greedy; None leaves sampling to the server's default."""
        return getattr(self.options, "temperature", None) == 0.0

    # -- error semantics (retries belong to the core; the SDK's own are off)

    def extra_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception classes of this SDK that are transient beyond the status-code rules."""
        return ()

    def should_retry(self, error: BaseException) -> bool:
        if isinstance(error, (MalformedResponseError, *self.extra_transient_errors())):
            return True
        return is_transient_sdk_error(self._sdk, error)

    def is_rate_limited(self, error: BaseException) -> bool:
        return is_rate_limited_sdk_error(self._sdk, error)

    def retry_after(self, error: BaseException) -> float | None:
        return sdk_retry_after(self._sdk, error)

    def is_timeout(self, error: BaseException) -> bool:
        return is_sdk_timeout(self._sdk, error)

    def describe(self) -> dict[str, Any]:
        return describe_hosted(self, self._sdk, self._http_backend, keyless=self.keyless)
