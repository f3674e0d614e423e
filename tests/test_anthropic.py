"""The ``anthropic`` plugin, driven through the real ``anthropic`` SDK against a loopback server.

Nothing here patches the SDK: the client is pointed at `harness.testing.loopback` with
``base_url``, and faults are injected on the wire. Retry paths are tested
through `Dispatcher` with a fast backoff (the Retry-After waits are real);
answer and permanent-error paths also run end to end through `Run`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("anthropic")

import harness_anthropic

from harness import plugins
from harness.run.dispatch import CallResult, Dispatcher
from harness.errors import HarnessError
from harness.run.failfast import EARLY_STOP_AFTER, EarlyStop
from harness.options import validate_options
from harness.prompts import image_digest
from harness.results import load_run
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import Answer, Fault, LoopbackServer, Request, always, sequence
from harness.types import ClassInfo, ImagePart, Message, Prompt, TextPart
from harness.backend_kit import KEYLESS_PLACEHOLDER
from harness_anthropic.classifier import (
    TOOL_NAME,
    AnthropicClassifier,
    AnthropicOptions,
    MalformedResponseError,
)

KEY = "sk-ant-test-abcdefghijklmnop1234"
CANDIDATES = [ClassInfo("broken_large", "broken large"), ClassInfo("scratch", "scratch"), ClassInfo("crack", "crack")]
MODEL = "claude-loopback-test"  # a name the SDK has no deprecation notice for


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def make_prompt() -> Prompt:
    query = Image.new("RGB", (24, 16), (200, 30, 30))
    reference = Image.new("RGB", (24, 16), (30, 200, 30))
    parts = [TextPart("Reference:"), ImagePart("reference", reference, image_digest(reference)),
             TextPart("Query:"), ImagePart("query", query, image_digest(query)), TextPart("Which class?")]
    return Prompt(
        template="t", candidates=list(CANDIDATES), hash="h", request_hash="r",
        messages=[Message("system", [TextPart("You inspect parts.")]), Message("user", parts)],
    )


def classifier(server: LoopbackServer | None = None, **options) -> AnthropicClassifier:
    if server is not None:
        options.setdefault("base_url", server.anthropic_base_url)
    return AnthropicClassifier(MODEL, AnthropicOptions(**options))


def dispatch(clf: AnthropicClassifier, prompt: Prompt | None = None) -> CallResult:
    async def go():
        try:
            return await Dispatcher(clf, wait_initial_s=0.01, wait_max_s=0.05).call(prompt or make_prompt())
        finally:
            await clf.aclose()

    return asyncio.run(go())


def registry():
    return plugins.load_registry()


def run(tmp_path, root, server, *, categories=("tile",), use_cache=False, **options):
    options.setdefault("base_url", server.anthropic_base_url)
    options.setdefault("concurrency", 8)
    spec = f"anthropic:{MODEL}"
    config = RunConfig(
        benchmark="folder", data_root=root, models=[spec], categories=list(categories),
        model_options={spec: options}, results_dir=tmp_path / "results", n_boot=50, use_cache=use_cache,
    )
    return Run(config, registry()).execute()


# -- the request on the wire ---------------------------------------------------------------------


def test_request_shape_system_image_blocks_and_auth():
    with LoopbackServer(Answer("scratch", tokens_in=321, tokens_out=4)) as server:
        result = dispatch(classifier(server, max_tokens=20))
    assert result.error is None and result.attempts == 1
    assert (result.response.text, result.response.tokens_in, result.response.tokens_out) == ("scratch", 321, 4)
    assert result.response.cost_usd is None and result.response.refused is False

    [request] = server.requests
    body = request.body
    assert request.path == "/v1/messages"
    assert request.headers["authorization"] == f"Bearer {KEY}"  # anthropic 2.x sends the key as a bearer token
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert body["model"] == MODEL and body["max_tokens"] == 20
    assert body["system"] == "You inspect parts."
    assert "temperature" not in body and "tools" not in body  # the 2.x API version rejects sampling parameters
    [user] = body["messages"]
    assert user["role"] == "user"
    assert [b["type"] for b in user["content"]] == ["text", "image", "text", "image", "text"]
    images = [b["source"] for b in user["content"] if b["type"] == "image"]
    assert all(s["type"] == "base64" and s["media_type"] == "image/png" for s in images)
    reference, query = (Image.open(io.BytesIO(base64.b64decode(s["data"]))) for s in images)
    assert reference.size == query.size == (24, 16)
    assert query.convert("RGB").getpixel((0, 0)) == (200, 30, 30)
    assert reference.convert("RGB").getpixel((0, 0)) == (30, 200, 30)


def test_structured_output_forces_a_tool_enumerating_the_candidates():
    def answer(request: Request):
        return json.dumps({"class": request.schema_enum[1]})  # the loopback answers with a tool_use block

    with LoopbackServer(answer) as server:
        result = dispatch(classifier(server, structured_output=True))
    body = server.requests[0].body
    [tool] = body["tools"]
    assert tool["name"] == TOOL_NAME and body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert tool["input_schema"]["properties"]["class"]["enum"] == ["broken large", "scratch", "crack"]
    assert tool["input_schema"]["required"] == ["class"]
    assert json.loads(result.response.text) == {"class": "scratch"}


def test_temperature_needs_the_legacy_api_version_and_is_then_sent():
    with pytest.raises(HarnessError, match="api_version"):
        validate_options(AnthropicOptions, {"temperature": 0}, "model 'anthropic:x'")
    with LoopbackServer("crack") as server:
        result = dispatch(classifier(server, temperature=0, api_version="2023-06-01"))
    assert result.error is None
    assert server.requests[0].body["temperature"] == 0
    assert server.requests[0].headers["anthropic-version"] == "2023-06-01"


def test_keyless_server_gets_a_placeholder_key_and_a_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(HarnessError, match="ANTHROPIC_API_KEY"):
        classifier()
    with LoopbackServer("crack") as server:
        assert dispatch(classifier(server)).error is None
    assert server.requests[0].api_key == KEYLESS_PLACEHOLDER


def test_options_refuse_keys_and_credential_headers_without_echoing_them():
    with pytest.raises(HarnessError) as pasted:
        validate_options(AnthropicOptions, {"api_key_env": KEY}, "model 'anthropic:x'")
    assert KEY not in str(pasted.value)
    with pytest.raises(HarnessError, match="credentials"):
        validate_options(AnthropicOptions, {"extra_headers": {"x-api-key": "abc"}}, "m")


def test_extra_headers_reach_the_server():
    with LoopbackServer("crack") as server:
        dispatch(classifier(server, extra_headers={"anthropic-beta": "some-feature"}))
    assert server.requests[0].headers["anthropic-beta"] == "some-feature"


def test_describe_names_no_secret():
    described = json.dumps(classifier(base_url="http://u:hunter2pass@127.0.0.1:9").describe())
    assert KEY not in described and "hunter2pass" not in described and '"anthropic"' in described


def test_only_an_explicit_temperature_zero_is_deterministic():
    assert not classifier().is_deterministic()  # the API's default sampling
    assert classifier(temperature=0, api_version="2023-06-01").is_deterministic()


# -- answers -------------------------------------------------------------------------------------


def test_refusal_stop_reason_is_flagged():
    with LoopbackServer(Answer(refusal="I can't help with that.")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.refused is True


def test_answers_end_to_end_through_run(tmp_path, small_tree):
    def answer(request: Request):
        return Answer(json.dumps({"class": request.schema_enum[0]}), tokens_in=900, tokens_out=12)

    with LoopbackServer(answer) as server:
        result = run(tmp_path, small_tree, server, structured_output=True)
    run_json, records = load_run(result.run_dir)
    called = [r for r in records if r["called"]]
    assert len(records) == run_json["benchmark"]["n_samples"] == len({r["sample_id"] for r in records})
    assert len(called) == server.count > 0
    assert all(r["error"] is None and r["attempts"] == 1 for r in called)
    assert all(r["tokens_in"] == 900 and r["tokens_out"] == 12 for r in called)
    assert all(json.loads(r["response"])["class"] == r["predicted_label"].replace("_", " ") for r in called)
    assert all(req.body["tool_choice"]["name"] == TOOL_NAME and req.body["system"] for req in server.requests)
    assert run_json["provenance"]["classifiers"][f"anthropic:{MODEL}"]["sdk"]["anthropic"]


# -- transient faults: retried by the core -------------------------------------------------------


def test_429_with_retry_after_is_retried_after_the_asked_wait():
    with LoopbackServer(sequence(Fault.rate_limited(retry_after=0.3), "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack" and result.attempts == 2
    first, second = server.requests
    waited = second.received_at - first.finished_at
    assert 0.28 <= waited < 0.3 + 0.5, f"waited {waited:.3f}s for a Retry-After of 0.3s"


@pytest.mark.parametrize("fault", [Fault.server_error(500), Fault.overloaded(), Fault.server_error(503),
                                   Fault.reset(), Fault.malformed(),
                                   Fault.malformed(b"<html>bad gateway</html>", content_type="text/html")],
                         ids=["500", "529", "503", "reset", "malformed-json", "malformed-html"])
def test_transient_fault_then_success_takes_two_attempts(fault):
    with LoopbackServer(sequence(fault, "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack"
    assert result.attempts == 2 and server.count == 2


def test_overloaded_is_the_sdks_overloaded_error_and_transient():
    import anthropic

    async def go(clf):
        try:
            await clf.classify(make_prompt())
        except Exception as error:  # noqa: BLE001 - inspecting what the SDK raised
            return error
        finally:
            await clf.aclose()

    with LoopbackServer(Fault.overloaded()) as server:
        clf = classifier(server)
        error = asyncio.run(go(clf))
    assert isinstance(error, anthropic.OverloadedError) and clf.should_retry(error) and not clf.is_timeout(error)


def test_hang_becomes_timeout_after_max_attempts():
    with LoopbackServer(Fault.hang(30)) as server:
        started = time.monotonic()
        result = dispatch(classifier(server, timeout_s=0.3, max_attempts=2))
        elapsed = time.monotonic() - started
    assert result.error == "timeout" and result.attempts == 2 and server.count == 2
    assert elapsed < 20  # the 0.3 s timeout ended both attempts, not the 30 s hang (a generous bound: no speed claim)


def test_persistent_malformed_body_is_a_backend_error_after_max_attempts():
    with LoopbackServer(Fault.malformed()) as server:
        result = dispatch(classifier(server, max_attempts=2))
    assert result.error == "backend_error" and result.attempts == 2
    assert "MalformedResponseError" in result.detail


@pytest.mark.parametrize("body", [{}, {"content": None}])
def test_json_that_is_not_a_message_is_malformed_and_transient(body):
    with LoopbackServer(sequence(body, "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack" and result.attempts == 2


def test_error_classification():
    clf = classifier()
    assert clf.should_retry(MalformedResponseError("x"))
    assert not clf.should_retry(ValueError("images are not allowed in a system message"))
    assert clf.is_timeout(TimeoutError()) and not clf.is_timeout(MalformedResponseError("x"))


# -- permanent faults: one attempt, redacted, the run goes on ------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404])
def test_permanent_status_is_not_retried(status):
    with LoopbackServer(Fault.error(status, "no such thing")) as server:
        result = dispatch(classifier(server))
    assert result.error == "backend_error" and result.attempts == 1 and server.count == 1


@pytest.mark.parametrize("env_name,key", [("ANTHROPIC_API_KEY", KEY), ("CLAUDE_GATEWAY_CREDENTIAL", "gatewaysecret0123456789")],
                         ids=["sk-shaped", "any-shape"])
def test_401_is_one_attempt_and_the_key_reaches_no_file_or_log(tmp_path, small_tree, monkeypatch, caplog, capfd,
                                                                env_name, key):
    monkeypatch.setenv(env_name, key)
    caplog.set_level(logging.DEBUG)
    with LoopbackServer(Fault.unauthorized) as server:  # the 401 body echoes the key it received
        with pytest.raises(EarlyStop, match="401") as stopped:  # every request 401: the run stops early
            run(tmp_path, small_tree, server, api_key_env=env_name)
    assert all(r.api_key == key and r.outcome == "status:401" for r in server.requests)
    assert key not in str(stopped.value)
    (run_dir,) = (tmp_path / "results").iterdir()
    run_json, on_disk = load_run(run_dir)
    assert run_json["status"] == "failed" and run_json["stopped_early"]["requests"] == EARLY_STOP_AFTER
    records = [r for r in on_disk if r["called"]]
    assert EARLY_STOP_AFTER <= len(records) <= server.count
    assert all(r["error"] == "backend_error" and r["attempts"] == 1 for r in records)
    assert all("401" in r["error_detail"] and "[REDACTED]" in r["error_detail"] for r in records)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), f"key found in {path.name}"
    captured = capfd.readouterr()
    assert key not in captured.out and key not in captured.err and key not in caplog.text


# -- packaging ----------------------------------------------------------------------------------


def test_the_sdk_is_imported_at_first_use_not_with_the_plugin():
    plugin_dir = Path(harness_anthropic.__file__).resolve().parents[1]
    code = (f"import sys; sys.path.append({str(plugin_dir)!r}); import harness_anthropic; "
            "print('anthropic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_sdk_gives_a_pip_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(HarnessError, match=r"pip install 'anomaly-harness\[anthropic\]'"):
        classifier()


def test_registered_as_the_anthropic_plugin():
    entry = registry().get("classifiers", "anthropic")
    assert entry.obj is AnthropicClassifier and AnthropicClassifier.requires_model_id


def test_concurrent_requests_all_complete():
    async def go(clf):
        dispatcher = Dispatcher(clf, wait_initial_s=0.01, wait_max_s=0.05)
        try:
            return await asyncio.gather(*(dispatcher.call(make_prompt()) for _ in range(64)))
        finally:
            await clf.aclose()

    with LoopbackServer(always("crack"), latency_s=0.2) as server:
        started = time.monotonic()
        results = asyncio.run(go(classifier(server, concurrency=64)))
        elapsed = time.monotonic() - started
    assert [r.response.text for r in results] == ["crack"] * 64 and server.count == 64
    assert elapsed < 2.0, f"64 concurrent requests at 0.2 s took {elapsed:.2f}s"
