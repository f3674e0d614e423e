"""Redaction: key shapes, secret env values, extra secrets, and ordinary text left alone."""

from __future__ import annotations

import json
import os

import pytest

from harness.run.redact import REDACTED, redact

OPENAI_KEY = "sk-proj-Ab3dEfGh1JkLmN0pQrStUvWx_yz-0123456789"
OPENAI_LEGACY_KEY = "sk-" + "A1b2C3d4E5f6G7h8I9j0" * 2 + "kL"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9_Yw8-Vu7Ts6Rq5Po4" * 4 + "AA"
HF_TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"


@pytest.fixture(autouse=True)
def no_secret_env(monkeypatch):
    """Tests see no secret-looking variables of the machine they run on."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.endswith(("_API_KEY", "_TOKEN", "_SECRET", "_ACCESS_KEY")) or upper in ("API_KEY", "TOKEN", "SECRET"):
            monkeypatch.delenv(name)


# -- key shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [OPENAI_KEY, OPENAI_LEGACY_KEY, ANTHROPIC_KEY, HF_TOKEN], ids=["openai-proj", "openai", "anthropic", "hf"])
def test_known_key_shapes_are_redacted_anywhere(key):
    text = f"Error code: 401 - Incorrect API key provided: {key}. You can find your key at https://example"
    out = redact(text)
    assert key not in out
    assert key[6:16] not in out  # not even a piece of it
    assert out == text.replace(key, REDACTED)


def test_a_key_at_the_start_at_the_end_and_in_quotes():
    assert redact(OPENAI_KEY) == REDACTED
    assert redact(f"key {ANTHROPIC_KEY}") == f"key {REDACTED}"
    assert redact(f"'{HF_TOKEN}'") == f"'{REDACTED}'"


def test_a_key_after_punctuation_or_an_escape_is_redacted():
    for before in ("=", ":", "_", "(", "/", "\n", "\t", "\\n"):
        out = redact(f"bad key{before}{OPENAI_KEY} end")
        assert OPENAI_KEY not in out and "Ab3dEfGh" not in out, before
    assert redact(repr(f"line one\n{OPENAI_KEY}")) == repr(f"line one\n{REDACTED}")


@pytest.mark.parametrize(
    "header",
    [
        "Authorization: Bearer abcDEF123.ghi-JKL_456",
        "authorization: bearer abcDEF123.ghi-JKL_456",
        "AUTHORIZATION:Bearer   abcDEF123.ghi-JKL_456",
    ],
)
def test_bearer_tokens_are_redacted(header):
    out = redact(header)
    assert "abcDEF123" not in out and "JKL_456" not in out
    assert REDACTED in out


def test_base64_bearer_tokens_do_not_leak_past_slash_plus_or_equals():
    token = "AbCdEfGh/IjKlMn+OpQrStUv/WxYz0123=="
    out = redact(f"Bearer {token} rejected")
    assert out == f"Bearer {REDACTED} rejected"


def test_basic_auth_credentials_are_redacted():
    out = redact("Authorization: Basic dXNlcjpzM2NyZXQ=")
    assert "dXNlcjpzM2NyZXQ" not in out
    assert out.startswith("Authorization: Basic ")


@pytest.mark.parametrize(
    "text, secret",
    [
        ("api_key=zz9secretvalue", "zz9secretvalue"),
        ("api-key: zz9secretvalue", "zz9secretvalue"),
        ("apikey = 'zz9secretvalue'", "zz9secretvalue"),
        ("https://host/v1/models?api_key=zz9secretvalue&x=1", "zz9secretvalue"),
        ("API_KEY=zz9secretvalue", "zz9secretvalue"),
        ("token=zz9secretvalue", "zz9secretvalue"),
        ('"access_token": "ya29.zz9secretvalue"', "zz9secretvalue"),
    ],
)
def test_key_value_pairs_are_redacted(text, secret):
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_x_api_key_header_in_a_json_ish_string():
    headers = {"content-type": "application/json", "x-api-key": "zz9-anthropic-ish-value", "anthropic-version": "2023-06-01"}
    for text in (json.dumps(headers), repr(headers), f"request failed: headers={headers}"):
        out = redact(text)
        assert "zz9-anthropic-ish-value" not in out
        assert "application/json" in out and "2023-06-01" in out  # the rest is intact
    assert json.loads(redact(json.dumps(headers)))["x-api-key"] == REDACTED  # still valid JSON


def test_a_key_inside_json_escaped_inside_a_string():
    body = json.dumps({"error": json.dumps({"api_key": "zz9secretvalue", "status": 401})})
    out = redact(body)
    assert "zz9secretvalue" not in out
    assert "401" in out


def test_redaction_is_idempotent():
    text = f"Authorization: Bearer {OPENAI_KEY}; x-api-key: {ANTHROPIC_KEY}"
    once = redact(text)
    assert redact(once) == once


# -- env values and extra secrets ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["FOO_API_KEY", "MY_TOKEN", "CLIENT_SECRET", "AWS_SECRET_ACCESS_KEY", "foo_api_key", "API_KEY", "TOKEN"])
def test_values_of_secret_env_vars_are_redacted(monkeypatch, name):
    value = "qq-unshaped-7d1e9c"  # no known key shape: only the env var reveals it
    monkeypatch.setenv(name, value)
    assert redact(f"connect failed for {value}!") == f"connect failed for {REDACTED}!"


def test_other_env_vars_and_short_values_are_left_alone(monkeypatch):
    monkeypatch.setenv("FOO_MODEL", "qq-unshaped-7d1e9c")
    monkeypatch.setenv("SHORT_TOKEN", "abc")
    assert redact("model qq-unshaped-7d1e9c, abc") == "model qq-unshaped-7d1e9c, abc"


def test_extra_secrets_are_redacted():
    assert redact("server said: my-local-secret is wrong", extra_secrets=["my-local-secret"]) == f"server said: {REDACTED} is wrong"
    assert redact("nothing here", extra_secrets=[""]) == "nothing here"
    assert redact("nothing here", extra_secrets=None) == "nothing here"


def test_a_secret_containing_another_leaves_no_tail(monkeypatch):
    monkeypatch.setenv("LONG_API_KEY", "qq-shared-prefix-and-a-long-tail")
    out = redact("key qq-shared-prefix-and-a-long-tail", extra_secrets=["qq-shared-prefix"])
    assert out == f"key {REDACTED}"
    out = redact("key qq-shared-prefix-and-a-long-tail", extra_secrets=["qq-shared-prefix-and-a-long-tail", "qq-shared"])
    assert out == f"key {REDACTED}"


# -- ordinary text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"tokens_in": 123, "tokens_out": 4, "cost_usd": 0.0012}',
        '{"max_tokens": 1024, "token_count": 77}',
        "the token budget of 4096 tokens was exceeded",
        "Token limit reached; retry later",
        "the bearer of bad news",
        "scikit-learn, task-management-system, disk-usage, risk-assessment-matrix",
        "an api key is required; set OPENAI_API_KEY",
        "sk-short",
        "predicted class: scratch_head (confidence 0.93)",
        "hf_hub_download failed: 404 for Qwen/Qwen2-VL-2B-Instruct",
        "Authorization failed",
        "",
    ],
)
def test_ordinary_text_is_not_mangled(text):
    assert redact(text) == text


def test_a_record_with_usage_survives_while_its_key_does_not():
    record = {"model": "openai:gpt-4o", "tokens_in": 1234, "tokens_out": 5, "error": f"401: bad key {OPENAI_KEY}"}
    out = json.loads(redact(json.dumps(record)))
    assert out["tokens_in"] == 1234 and out["tokens_out"] == 5 and out["model"] == "openai:gpt-4o"
    assert out["error"] == f"401: bad key {REDACTED}"
