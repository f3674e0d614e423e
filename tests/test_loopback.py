"""The loopback servers: wire formats, scripted faults, recording, concurrency, bounded life.

Driven with the standard library's HTTP client only: the server is core code
and must not need an SDK to be tested.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.testing.loopback import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    Answer,
    Fault,
    LoopbackServer,
    Request,
    always,
    estimate_prompt_tokens,
    sequence,
)

OPENAI_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": [
    {"type": "text", "text": "which defect is it"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
]}]}
ANTHROPIC_BODY = {"model": "claude-x", "max_tokens": 16, "system": "be brief", "messages": [{"role": "user", "content": [
    {"type": "text", "text": "which defect"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
]}]}


def post(server: LoopbackServer, path: str, body, headers=None, timeout: float = 5.0):
    """(status, headers, raw body) of one POST, on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=raw, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_listens_on_loopback_only_with_an_ephemeral_port():
    with LoopbackServer() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        assert server.openai_base_url == server.url + "/v1"
        assert server._server.server_address[0] == "127.0.0.1"


def test_openai_answer_is_a_chat_completion_with_usage_and_the_request_is_recorded():
    with LoopbackServer("scratch") as server:
        status, headers, raw = post(server, OPENAI_PATH, OPENAI_BODY, {"Authorization": "Bearer sk-test-1234567890"})
    body = json.loads(raw)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "scratch", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    # Estimated usage: 4 words + one image at TOKENS_PER_IMAGE; 1 word out.
    assert body["usage"] == {"prompt_tokens": 4 + 85, "completion_tokens": 1, "total_tokens": 90}
    [request] = server.requests
    assert request.protocol == "openai" and request.path == OPENAI_PATH and request.method == "POST"
    assert request.body == OPENAI_BODY and request.api_key == "sk-test-1234567890"
    assert request.outcome == "answer" and request.image_count() == 1 and request.model == "gpt-4o"


def test_anthropic_answer_is_a_message_with_usage():
    with LoopbackServer(Answer("crack", tokens_in=1234, tokens_out=2)) as server:
        status, _, raw = post(server, ANTHROPIC_PATH, ANTHROPIC_BODY, {"x-api-key": "sk-ant-xyz123456"})
    body = json.loads(raw)
    assert status == 200
    assert body["type"] == "message" and body["role"] == "assistant" and body["stop_reason"] == "end_turn"
    assert body["content"] == [{"type": "text", "text": "crack"}]
    assert body["usage"] == {"input_tokens": 1234, "output_tokens": 2}
    assert server.requests[0].texts() == ["be brief", "which defect"]
    assert server.requests[0].api_key == "sk-ant-xyz123456"


def test_anthropic_forced_tool_gets_a_tool_use_block_and_the_schema_enum_is_readable():
    body = dict(ANTHROPIC_BODY, tools=[{"name": "pick", "input_schema": {
        "type": "object", "properties": {"class": {"type": "string", "enum": ["crack", "scratch"]}}}}],
        tool_choice={"type": "tool", "name": "pick"})
    seen: list[list[str] | None] = []

    def responder(request: Request):
        seen.append(request.schema_enum)
        return json.dumps({"class": request.schema_enum[-1]})

    with LoopbackServer(responder) as server:
        _, _, raw = post(server, ANTHROPIC_PATH, body)
    reply = json.loads(raw)
    assert seen == [["crack", "scratch"]]
    assert reply["stop_reason"] == "tool_use"
    assert reply["content"][0]["type"] == "tool_use" and reply["content"][0]["name"] == "pick"
    assert reply["content"][0]["input"] == {"class": "scratch"}


def test_refusals_in_both_protocols():
    with LoopbackServer(Answer(refusal="I can't help with that")) as server:
        openai_reply = json.loads(post(server, OPENAI_PATH, OPENAI_BODY)[2])
        anthropic_reply = json.loads(post(server, ANTHROPIC_PATH, ANTHROPIC_BODY)[2])
    assert openai_reply["choices"][0]["message"]["content"] is None
    assert openai_reply["choices"][0]["message"]["refusal"] == "I can't help with that"
    assert anthropic_reply["stop_reason"] == "refusal"
    assert [r.outcome for r in server.requests] == ["refused", "refused"]


def test_a_dict_is_sent_verbatim():
    with LoopbackServer({"anything": [1, 2]}) as server:
        assert json.loads(post(server, OPENAI_PATH, OPENAI_BODY)[2]) == {"anything": [1, 2]}


def test_status_faults_carry_protocol_error_bodies_and_headers():
    script = sequence(Fault.rate_limited(retry_after=0.25), Fault.overloaded(), Fault.server_error(503),
                      Fault.error(400, "bad image", headers={"x-extra": "1"}))
    with LoopbackServer(script) as server:
        s429, h429, b429 = post(server, OPENAI_PATH, OPENAI_BODY)
        s529, _, b529 = post(server, ANTHROPIC_PATH, ANTHROPIC_BODY)
        s503, _, _ = post(server, OPENAI_PATH, OPENAI_BODY)
        s400, h400, b400 = post(server, OPENAI_PATH, OPENAI_BODY)
    assert (s429, h429["Retry-After"]) == (429, "0.25")
    assert json.loads(b429)["error"]["type"] == "rate_limit_exceeded"
    assert s529 == 529 and json.loads(b529) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert s503 == 503
    assert (s400, h400["x-extra"], json.loads(b400)["error"]["message"]) == (400, "1", "bad image")
    assert [r.outcome for r in server.requests] == ["status:429", "status:529", "status:503", "status:400"]


def test_unauthorized_echoes_the_key_it_was_sent():
    with LoopbackServer(sequence(Fault.unauthorized)) as server:  # a callable outcome gets the request
        status, _, raw = post(server, OPENAI_PATH, OPENAI_BODY, {"Authorization": "Bearer sk-test-echo-me-123456"})
    assert status == 401 and "sk-test-echo-me-123456" in json.loads(raw)["error"]["message"]


def test_malformed_body_is_200_and_not_json():
    with LoopbackServer(Fault.malformed()) as server:
        status, headers, raw = post(server, OPENAI_PATH, OPENAI_BODY)
    assert status == 200 and headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(raw)


def test_reset_closes_the_connection_without_a_response():
    with LoopbackServer(Fault.reset()) as server:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
            post(server, OPENAI_PATH, OPENAI_BODY)
    assert server.requests[0].outcome == "reset"


def test_hang_outlasts_the_client_timeout_and_stop_wakes_it():
    server = LoopbackServer(Fault.hang(60)).start()
    try:
        started = time.monotonic()
        with pytest.raises(socket.timeout):
            post(server, OPENAI_PATH, OPENAI_BODY, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 2, "stop() must not wait for the 60 s hang"
    assert server.requests[0].outcome == "hang"


def test_invalid_requests_and_unknown_paths_are_rejected_like_the_real_apis():
    with LoopbackServer("x") as server:
        assert post(server, ANTHROPIC_PATH, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})[0] == 400
        assert post(server, OPENAI_PATH, b"not json")[0] == 400
        assert post(server, "/v1/embeddings", OPENAI_BODY)[0] == 404
        # Anthropic API versions after 2023-06-01 reject sampling parameters.
        with_temperature = dict(ANTHROPIC_BODY, temperature=0)
        status, _, raw = post(server, ANTHROPIC_PATH, with_temperature, {"anthropic-version": "2026-10-21"})
        assert status == 400 and "temperature" in json.loads(raw)["error"]["message"]
        assert post(server, ANTHROPIC_PATH, with_temperature, {"anthropic-version": "2023-06-01"})[0] == 200


def test_a_failing_responder_answers_500_and_is_kept_in_errors():
    def broken(request):
        raise RuntimeError("bug in the script")

    with LoopbackServer(broken) as server:
        assert post(server, OPENAI_PATH, OPENAI_BODY)[0] == 500
    assert len(server.errors) == 1 and "bug in the script" in str(server.errors[0])


def test_sequence_hands_each_outcome_out_exactly_once_under_concurrency():
    respond = sequence(*[f"answer-{i}" for i in range(50)], then="rest")
    fake = Request(0, "openai", "POST", OPENAI_PATH, {}, OPENAI_BODY, 0.0)
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda _: respond(fake), range(60)))
    assert sorted(g for g in got if g != "rest") == sorted(f"answer-{i}" for i in range(50))
    assert got.count("rest") == 10


def test_64_concurrent_requests_are_served_in_parallel_at_the_fixed_latency():
    latency = 0.2
    with LoopbackServer(always("ok"), latency_s=latency) as server:
        started = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            statuses = list(pool.map(lambda _: post(server, OPENAI_PATH, OPENAI_BODY)[0], range(64)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 64 and server.count == 64
    # In series they would take 64 * latency = 12.8 s.
    assert latency <= elapsed < 10 * latency, f"64 requests at {latency}s latency took {elapsed:.2f}s"
    assert all(r.finished_at - r.received_at >= latency * 0.95 for r in server.requests)


def test_keep_alive_connections_are_reused_and_closed_at_stop():
    server = LoopbackServer("ok").start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("POST", OPENAI_PATH, body=json.dumps(OPENAI_BODY), headers={"Content-Type": "application/json"})
            assert conn.getresponse().read()
        assert len(server._connections) == 1
    finally:
        started = time.monotonic()
        server.stop()
        conn.close()
    assert time.monotonic() - started < 2 and not server._connections


def test_stops_by_itself_after_max_requests():
    with LoopbackServer("ok", max_requests=2) as server:
        assert post(server, OPENAI_PATH, OPENAI_BODY)[0] == 200
        assert post(server, OPENAI_PATH, OPENAI_BODY)[0] == 200
        assert server.stopped.wait(2), "the server should stop after its last allowed request"
        with pytest.raises(OSError):
            post(server, OPENAI_PATH, OPENAI_BODY, timeout=1)


def test_stops_by_itself_after_max_seconds():
    server = LoopbackServer("ok", max_seconds=0.2).start()
    try:
        assert server.stopped.wait(3)
        with pytest.raises(OSError):
            post(server, OPENAI_PATH, OPENAI_BODY, timeout=1)
    finally:
        server.stop()


def test_stop_is_idempotent_and_safe_from_two_threads():
    server = LoopbackServer("ok").start()
    threads = [threading.Thread(target=server.stop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    server.stop()
    assert server.stopped.is_set() and not any(t.is_alive() for t in threads)


def test_estimate_counts_words_and_images():
    request = Request(0, "anthropic", "POST", ANTHROPIC_PATH, {}, ANTHROPIC_BODY, 0.0)
    assert estimate_prompt_tokens(request) == len("be brief which defect".split()) + 85


def test_runs_as_a_separate_process_for_benchmarks():
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.testing.loopback", "--answer", "crack", "--max-seconds", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=5)
        conn.request("POST", OPENAI_PATH, body=json.dumps(OPENAI_BODY), headers={"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["choices"][0]["message"]["content"] == "crack"
        conn.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "served 1 requests" in err
