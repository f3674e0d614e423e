"""The ``openai`` plugin, driven through the real ``openai`` SDK against a loopback server.

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
from email.utils import formatdate
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("openai")

import harness_openai

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
from harness_openai.classifier import (
    MalformedResponseError,
    OpenAIClassifier,
    OpenAIOptions,
)
from harness.backend_kit import LANE_SIZE, ClientLanes, parse_retry_after

KEY = "sk-test-abcdefghijklmnop1234"
CANDIDATES = [ClassInfo("broken_large", "broken large"), ClassInfo("scratch", "scratch"), ClassInfo("crack", "crack")]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    monkeypatch.delenv("OPENAI_PROJECT_ID", raising=False)


def make_prompt() -> Prompt:
    query = Image.new("RGB", (24, 16), (200, 30, 30))
    reference = Image.new("RGB", (24, 16), (30, 200, 30))
    parts = [TextPart("Reference:"), ImagePart("reference", reference, image_digest(reference)),
             TextPart("Query:"), ImagePart("query", query, image_digest(query)), TextPart("Which class?")]
    return Prompt(
        template="t", candidates=list(CANDIDATES), hash="h", request_hash="r",
        messages=[Message("system", [TextPart("You inspect parts.")]), Message("user", parts)],
    )


def classifier(server: LoopbackServer | None = None, **options) -> OpenAIClassifier:
    if server is not None:
        options.setdefault("base_url", server.openai_base_url)
    return OpenAIClassifier("gpt-4o", OpenAIOptions(**options))


def dispatch(clf: OpenAIClassifier, prompt: Prompt | None = None) -> CallResult:
    async def go():
        try:
            return await Dispatcher(clf, wait_initial_s=0.01, wait_max_s=0.05).call(prompt or make_prompt())
        finally:
            await clf.aclose()

    return asyncio.run(go())


def registry():
    return plugins.load_registry()


def run(tmp_path, root, server, *, categories=("tile",), use_cache=False, **options):
    options.setdefault("base_url", server.openai_base_url)
    options.setdefault("concurrency", 8)
    config = RunConfig(
        benchmark="folder", data_root=root, models=["openai:gpt-4o"], categories=list(categories),
        model_options={"openai:gpt-4o": options}, results_dir=tmp_path / "results", n_boot=50, use_cache=use_cache,
    )
    return Run(config, registry()).execute()


def decode_png(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


# -- the request on the wire ---------------------------------------------------------------------


def test_request_shape_messages_images_sampling_and_auth():
    with LoopbackServer(Answer("scratch", tokens_in=321, tokens_out=4)) as server:
        result = dispatch(classifier(server, seed=7, image_detail="low", max_tokens=20))
    assert result.error is None and result.attempts == 1
    assert (result.response.text, result.response.tokens_in, result.response.tokens_out) == ("scratch", 321, 4)
    assert result.response.cost_usd is None  # the core prices tokens

    [request] = server.requests
    body = request.body
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o"
    assert body["temperature"] == 0 and body["seed"] == 7
    assert body["max_tokens"] == 20 and "max_completion_tokens" not in body  # a base_url: a compatible server
    assert "response_format" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You inspect parts."}
    assert user["role"] == "user"
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["text", "image_url", "text", "image_url", "text"]
    assert [p["text"] for p in user["content"] if p["type"] == "text"] == ["Reference:", "Query:", "Which class?"]
    images = [p["image_url"] for p in user["content"] if p["type"] == "image_url"]
    assert all(i["detail"] == "low" for i in images)
    reference, query = (decode_png(i["url"]) for i in images)
    assert reference.size == query.size == (24, 16)
    assert query.convert("RGB").getpixel((0, 0)) == (200, 30, 30)  # lossless, in prompt order
    assert reference.convert("RGB").getpixel((0, 0)) == (30, 200, 30)


def test_structured_output_asks_for_a_json_schema_enumerating_the_candidates():
    def answer(request: Request):
        return json.dumps({"class": request.schema_enum[0]})

    with LoopbackServer(answer) as server:
        result = dispatch(classifier(server, structured_output=True))
    schema_format = server.requests[0].body["response_format"]
    assert schema_format["type"] == "json_schema" and schema_format["json_schema"]["strict"] is True
    schema = schema_format["json_schema"]["schema"]
    assert schema["properties"]["class"]["enum"] == ["broken large", "scratch", "crack"]
    assert schema["required"] == ["class"] and schema["additionalProperties"] is False
    assert json.loads(result.response.text) == {"class": "broken large"}


def test_official_api_gets_max_completion_tokens_and_the_field_can_be_chosen():
    prompt = make_prompt()
    assert "max_completion_tokens" in classifier().build_request(prompt)  # no base_url: api.openai.com
    assert "max_tokens" in classifier(base_url="http://127.0.0.1:1/v1").build_request(prompt)
    chosen = classifier(base_url="http://127.0.0.1:1/v1", token_limit_field="max_completion_tokens")
    assert chosen.build_request(prompt)["max_completion_tokens"] == 64
    assert "temperature" not in classifier(temperature=None).build_request(prompt)


def test_openai_base_url_environment_variable_is_honoured(monkeypatch):
    with LoopbackServer("crack") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        result = dispatch(classifier())  # no base_url option
    assert result.response.text == "crack" and server.count == 1


def test_keyless_local_server_gets_a_placeholder_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with LoopbackServer("crack") as server:
        result = dispatch(classifier(server))
    assert result.error is None
    assert server.requests[0].headers["authorization"] == f"Bearer {KEYLESS_PLACEHOLDER}"


def test_missing_key_without_a_base_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(HarnessError, match="OPENAI_API_KEY"):
        classifier()


def test_the_key_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_CREDENTIAL", "gateway-secret-0123456789")
    with LoopbackServer("crack") as server:
        dispatch(classifier(server, api_key_env="MY_GATEWAY_CREDENTIAL"))
    assert server.requests[0].api_key == "gateway-secret-0123456789"


def test_options_refuse_keys_and_credential_headers_without_echoing_them():
    with pytest.raises(HarnessError) as pasted:
        validate_options(OpenAIOptions, {"api_key_env": KEY}, "model 'openai:gpt-4o'")
    assert "api_key_env" in str(pasted.value) and KEY not in str(pasted.value)
    with pytest.raises(HarnessError, match="credentials"):
        validate_options(OpenAIOptions, {"extra_headers": {"Authorization": "Bearer x"}}, "m")
    with pytest.raises(HarnessError, match="image_detail"):
        validate_options(OpenAIOptions, {"image_detail": "ultra"}, "m")


@pytest.mark.parametrize("options", [{}, {"structured_output": True, "seed": 3, "image_detail": "high",
                                          "extra_body": {"top_k": 1}, "temperature": None}], ids=["plain", "all"])
def test_the_wire_request_is_what_chat_completions_create_sends(options):
    """The plugin skips create()'s parameter transform (CPU per request); the bytes sent must not change."""
    prompt = make_prompt()

    async def both(server):
        import openai

        clf = classifier(server, **options)
        sdk = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
        try:
            await sdk.chat.completions.create(**clf.build_request(prompt))
        finally:
            await sdk.close()
        try:
            await clf.classify(prompt)
        finally:
            await clf.aclose()

    with LoopbackServer(always('{"class": "crack"}')) as server:
        asyncio.run(both(server))
    by_sdk, by_plugin = server.requests
    assert by_plugin.body == by_sdk.body and by_plugin.body["messages"][1]["content"][1]["type"] == "image_url"
    assert by_plugin.headers["authorization"] == by_sdk.headers["authorization"] == f"Bearer {KEY}"
    assert by_plugin.headers["content-type"] == by_sdk.headers["content-type"]


def test_client_lanes_take_the_least_busy_client_and_count_per_lane_size():
    made = []

    async def go():
        lanes = ClientLanes(lambda: made.append(object()) or made[-1], concurrency=20, lane_size=8)
        with lanes.lane() as a, lanes.lane() as b, lanes.lane() as c:
            assert len({id(a), id(b), id(c)}) == 3  # each on an idle client
            with lanes.lane() as d:
                assert d is a  # all busy once: back to the first
        with lanes.lane() as e:
            assert e is a  # all idle again
        return lanes

    lanes = asyncio.run(go())
    assert len(made) == len(lanes.clients) == 3  # ceil(20 / 8), all made at once


def test_extra_headers_and_body_reach_the_server():
    with LoopbackServer("crack") as server:
        dispatch(classifier(server, extra_headers={"X-Title": "harness"}, extra_body={"top_k": 1}))
    assert server.requests[0].headers["x-title"] == "harness" and server.requests[0].body["top_k"] == 1


def test_describe_names_no_secret(monkeypatch):
    clf = classifier(base_url="http://user:hunter2pass@127.0.0.1:9/v1")
    described = json.dumps(clf.describe())
    assert KEY not in described and "hunter2pass" not in described
    assert '"api_key_env": "OPENAI_API_KEY"' in described and '"openai"' in described


# -- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [Answer(refusal="I can't help with that."),
                                    Answer("partial", finish_reason="content_filter")])
def test_refusals_are_flagged(answer):
    with LoopbackServer(answer) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.refused is True


def test_temperature_zero_is_deterministic_and_none_is_not():
    assert classifier().is_deterministic() and classifier().use_cache()
    assert not classifier(temperature=None).is_deterministic()
    assert not classifier(temperature=0.7).use_cache()


def test_answers_end_to_end_through_run(tmp_path, small_tree):
    def answer(request: Request):
        return Answer(json.dumps({"class": request.schema_enum[-1]}), tokens_in=500, tokens_out=7)

    with LoopbackServer(answer) as server:
        result = run(tmp_path, small_tree, server, structured_output=True)
    run_json, records = load_run(result.run_dir)
    called = [r for r in records if r["called"]]
    assert len(records) == run_json["benchmark"]["n_samples"]
    assert len({r["sample_id"] for r in records}) == len(records)  # exactly one record per sample
    assert len(called) == server.count > 0  # one request per flagged sample, no more
    assert all(r["error"] is None and r["attempts"] == 1 for r in called)
    assert all(r["tokens_in"] == 500 and r["tokens_out"] == 7 for r in called)
    assert all(json.loads(r["response"])["class"] == r["predicted_label"].replace("_", " ") for r in called)
    enums = {tuple(req.schema_enum) for req in server.requests}
    assert len(enums) == 1 and "good" not in next(iter(enums))  # the oracle gate: defect classes only
    assert all(len([p for p in req.body["messages"][-1]["content"] if p["type"] == "image_url"]) >= 2
               for req in server.requests)
    assert run_json["provenance"]["classifiers"]["openai:gpt-4o"]["sdk"]["openai"]


def test_finished_run_is_answered_from_the_cache(tmp_path, small_tree):
    with LoopbackServer("crack") as server:
        run(tmp_path / "first", small_tree, server, use_cache=True, temperature=0)
        first = server.count
        second = run(tmp_path / "second", small_tree, server, use_cache=True, temperature=0)
    assert first > 0 and server.count == first  # nothing sent the second time
    assert all(r["predicted_label"] == "crack" for r in second.records if r["called"])


# -- transient faults: retried by the core -------------------------------------------------------


def test_429_with_retry_after_is_retried_after_the_asked_wait():
    with LoopbackServer(sequence(Fault.rate_limited(retry_after=0.3), "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack" and result.attempts == 2
    first, second = server.requests
    assert first.outcome == "status:429" and second.outcome == "answer"
    waited = second.received_at - first.finished_at
    assert 0.28 <= waited < 0.3 + 0.5, f"waited {waited:.3f}s for a Retry-After of 0.3s"


@pytest.mark.parametrize("fault", [Fault.server_error(500), Fault.server_error(503), Fault.overloaded(),
                                   Fault.reset(), Fault.malformed(),
                                   Fault.malformed(b"<html>bad gateway</html>", content_type="text/html")],
                         ids=["500", "503", "529", "reset", "malformed-json", "malformed-html"])
def test_transient_fault_then_success_takes_two_attempts(fault):
    with LoopbackServer(sequence(fault, "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack"
    assert result.attempts == 2 and server.count == 2


def test_hang_becomes_timeout_after_max_attempts():
    with LoopbackServer(Fault.hang(30)) as server:
        started = time.monotonic()
        result = dispatch(classifier(server, timeout_s=0.3, max_attempts=2))
        elapsed = time.monotonic() - started
    assert result.error == "timeout" and result.attempts == 2 and result.response is None
    assert server.count == 2 and all(r.outcome == "hang" for r in server.requests)
    assert elapsed < 2.5


def test_persistent_malformed_body_is_a_backend_error_after_max_attempts():
    with LoopbackServer(Fault.malformed()) as server:
        result = dispatch(classifier(server, max_attempts=3))
    assert result.error == "backend_error" and result.attempts == 3 and server.count == 3
    assert "MalformedResponseError" in result.detail and "gave up after 3 attempts" in result.detail


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"message": None}]}])
def test_json_that_is_not_a_chat_completion_is_malformed_and_transient(body):
    with LoopbackServer(sequence(body, "crack")) as server:
        result = dispatch(classifier(server))
    assert result.error is None and result.response.text == "crack" and result.attempts == 2


def test_retry_after_header_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    in_ten = parse_retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert 8 <= in_ten <= 10.5
    assert parse_retry_after({"retry-after": formatdate(time.time() - 100, usegmt=True)}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_error_classification():
    import openai

    clf = classifier()
    assert clf.should_retry(MalformedResponseError("x"))
    assert not clf.should_retry(ValueError("images are only allowed in user messages"))
    assert not clf.is_timeout(MalformedResponseError("x"))
    assert clf.is_timeout(TimeoutError())
    assert issubclass(openai.APITimeoutError, openai.APIConnectionError)  # both transient; only one a timeout


# -- permanent faults: one attempt, redacted, the run goes on ------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404])
def test_permanent_status_is_not_retried(status):
    with LoopbackServer(Fault.error(status, "no such thing")) as server:
        result = dispatch(classifier(server))
    assert result.error == "backend_error" and result.attempts == 1 and server.count == 1
    assert str(status) in result.detail


@pytest.mark.parametrize("env_name,key", [("OPENAI_API_KEY", KEY), ("MY_GATEWAY_CREDENTIAL", "gatewaysecret0123456789")],
                         ids=["sk-shaped", "any-shape"])
def test_401_is_one_attempt_and_the_key_reaches_no_file_or_log(tmp_path, small_tree, monkeypatch, caplog, capfd,
                                                                env_name, key):
    monkeypatch.setenv(env_name, key)
    caplog.set_level(logging.DEBUG)
    with LoopbackServer(Fault.unauthorized) as server:  # the 401 body echoes the key it received
        with pytest.raises(EarlyStop) as stopped:  # every request 401: the run stops early (harness/run/failfast.py)
            run(tmp_path, small_tree, server, api_key_env=env_name)
    assert all(r.api_key == key and r.outcome == "status:401" for r in server.requests)
    assert "openai:gpt-4o" in str(stopped.value) and "401" in str(stopped.value) and key not in str(stopped.value)
    (run_dir,) = (tmp_path / "results").iterdir()
    run_json, on_disk = load_run(run_dir)
    assert run_json["status"] == "failed" and run_json["stopped_early"]["model"] == "openai:gpt-4o"
    records = [r for r in on_disk if r["called"]]
    assert len(records) >= EARLY_STOP_AFTER and len(records) <= server.count  # one attempt each, none sent twice
    assert all(r["error"] == "backend_error" and r["attempts"] == 1 and r["predicted_label"] is None for r in records)
    assert all("401" in r["error_detail"] and "[REDACTED]" in r["error_detail"] for r in records)
    assert len(on_disk) == len({r["sample_id"] for r in on_disk})
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), f"key found in {path.name}"
    captured = capfd.readouterr()
    assert key not in captured.out and key not in captured.err
    assert key not in caplog.text


# -- packaging ----------------------------------------------------------------------------------


def test_the_sdk_is_imported_at_first_use_not_with_the_plugin():
    plugin_dir = Path(harness_openai.__file__).resolve().parents[1]
    code = (f"import sys; sys.path.append({str(plugin_dir)!r}); import harness_openai; "
            "print('openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_sdk_gives_a_pip_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    with pytest.raises(HarnessError, match=r"pip install 'anomaly-harness\[openai\]'"):
        classifier()


def test_registered_as_the_openai_plugin():
    entry = registry().get("classifiers", "openai")
    assert entry.obj is OpenAIClassifier and OpenAIClassifier.requires_model_id


def test_concurrent_requests_spread_over_a_few_clients_and_all_complete():
    lanes = []

    async def go(clf):
        dispatcher = Dispatcher(clf, wait_initial_s=0.01, wait_max_s=0.05)
        try:
            return await asyncio.gather(*(dispatcher.call(make_prompt()) for _ in range(64)))
        finally:
            lanes.append(len(clf._lanes[0].clients))
            await clf.aclose()

    with LoopbackServer(always("crack"), latency_s=0.2) as server:
        results = asyncio.run(go(classifier(server, concurrency=64)))
    assert [r.response.text for r in results] == ["crack"] * 64 and server.count == 64
    assert lanes == [64 // LANE_SIZE]  # one connection pool per LANE_SIZE requests in flight
    # Requests of several pools were in flight together (not one pool's worth at a time); a count, not a clock.
    assert server.peak_connections > 2 * LANE_SIZE, server.peak_connections
