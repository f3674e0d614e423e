"""`HostedClassifier`: what every hosted-API backend (``openai``, ``anthropic``, a third party's) shares.

Such a backend differs only in how it builds a request and reads a reply. The rest lives here: the
options every one has and their checks, where the key comes from, the endpoint that answers (part
of response-cache keys), which SDK errors are transient, rate limits or timeouts, Retry-After and
`describe`. The SDK is imported by name at first use (``sdk_module``), so the core imports none.
A subclass sets the class attributes below and implements ``classify``.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from harness.backend_kit import KEYLESS_PLACEHOLDER, http_backend, parse_retry_after, public_base_url
from harness.classifiers import Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.run.redact import strip_url_credentials

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Headers that carry credentials: never accepted as options (options are written to run.json).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"})


class MalformedResponseError(Exception):
    """A 200 whose body is no reply of the API (not JSON, missing fields): transient (a proxy, a dropped stream)."""


class HostedOptions(ClassifierOptions):
    """Options of every hosted backend; a subclass gives ``api_key_env`` its own default."""

    base_url: str | None = Field(None, description="API base URL; None: the SDK's default (its environment variable, else the vendor's API)")
    api_key_env: str = Field("API_KEY", description=(
        "name of the environment variable holding the API key (the key itself is never an option); "
        "when it is unset and a base URL is given, a placeholder key is sent (keyless local servers)"))
    max_tokens: int = Field(64, ge=1, description="most tokens the model may generate")
    structured_output: bool = Field(False, description="constrain the answer to the candidate class names")
    extra_headers: dict[str, str] = Field(default_factory=dict, description=(
        "extra HTTP headers (not for credentials: options are recorded in run.json; use api_key_env)"))

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


#: Options the endpoint holds resolved (so they are left out of answer options and cache keys).
ENDPOINT_OPTIONS = ("base_url", "api_version")
#: Statuses that mean "too busy now, ask later": rate limited (429), unavailable (503), overloaded (529).
RATE_LIMIT_STATUSES = frozenset({429, 503, 529})


class HostedClassifier(Classifier):
    """A classifier behind a hosted API reached through its vendor's SDK.

    The openai and anthropic SDKs are generated from one template and share their exception
    classes (``APIStatusError``, ``APIConnectionError``, ``APITimeoutError``), which the error
    methods read.
    """

    #: The SDK's module name and the install hint shown when it is missing.
    sdk_module: ClassVar[str]
    pip_hint: ClassVar[str]
    #: The environment variable the SDK reads a base URL from, and the vendor's own URL.
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str]
    options: HostedOptions

    def __init__(self, model_id: str | None, options: HostedOptions):
        super().__init__(model_id, options)
        try:
            self._sdk = importlib.import_module(self.sdk_module)
        except ImportError as error:
            raise HarnessError(f"the {self.sdk_module} plugin needs the {self.sdk_module} SDK: {self.pip_hint} "
                               f"({error})") from None
        # Resolved once and given to the SDK client explicitly, so the URL in cache keys and run.json is
        # the one requests go to; None: default_base_url.
        self._base_url = (options.base_url or "").strip() or (os.environ.get(self.base_url_env) or "").strip() or None
        self._key = self._resolve_key()
        self._http_backend = http_backend()

    # -- configuration

    def endpoint(self) -> dict[str, Any]:
        """The server that answers: its public base URL after the environment and the default, and any selectors."""
        return {"base_url": public_base_url(self._base_url or self.default_base_url), **self.endpoint_selectors()}

    def endpoint_selectors(self) -> dict[str, Any]:
        """What besides the URL decides which model answers (an API version, say); none by default."""
        return {}

    def answer_options(self) -> dict[str, Any]:
        """Answer options without `ENDPOINT_OPTIONS`: the endpoint holds them resolved (a credential in a URL
        is then never key material)."""
        return {k: v for k, v in super().answer_options().items() if k not in ENDPOINT_OPTIONS}

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
        """Remove the API key from an SDK error's message, args and body, in place, whatever the key looks like."""
        secret = self._key
        if self.keyless or len(secret) < 4:
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

    def is_deterministic(self) -> bool:
        """Only an explicit temperature 0 is greedy; None leaves sampling to the server's default."""
        return getattr(self.options, "temperature", None) == 0.0

    # -- error semantics (retries belong to the core; the SDK's own are off)

    def extra_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exception classes of this SDK that are transient beyond the status-code rules."""
        return ()

    def should_retry(self, error: BaseException) -> bool:
        """Malformed replies, connection errors (timeouts included) and HTTP 408, 409, 429 and 5xx."""
        if isinstance(error, (MalformedResponseError, self._sdk.APIConnectionError, *self.extra_transient_errors())):
            return True
        if isinstance(error, self._sdk.APIStatusError):
            return error.status_code in (408, 409, 429) or error.status_code >= 500
        return False

    def is_rate_limited(self, error: BaseException) -> bool:
        return isinstance(error, self._sdk.APIStatusError) and error.status_code in RATE_LIMIT_STATUSES

    def retry_after(self, error: BaseException) -> float | None:
        response = getattr(error, "response", None)
        if not isinstance(error, self._sdk.APIStatusError) or response is None:
            return None
        return parse_retry_after(response.headers)

    def is_timeout(self, error: BaseException) -> bool:
        return isinstance(error, (self._sdk.APITimeoutError, TimeoutError))

    def describe(self) -> dict[str, Any]:
        """Options (a base URL without credentials), SDK version, transport and endpoint; never a secret."""
        options = self.options.model_dump()
        url = options.get("base_url")
        options["base_url"] = strip_url_credentials(url) if url else url  # credentials must not reach run.json
        return {
            "spec": self.spec,
            "options": options,
            "sdk": {self._sdk.__name__: getattr(self._sdk, "__version__", "unknown")},
            "http_backend": self._http_backend,
            "base_url": self.endpoint()["base_url"],
            "keyless": self.keyless,
        }
