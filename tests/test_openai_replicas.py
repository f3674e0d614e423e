"""Several OpenAI-compatible replicas as one model: the ``openai`` plugin's ``base_url`` listing servers.

The servers are loopback ones reached through the real ``openai`` SDK client; the choice of replica
(`harness_openai.replicas.ReplicaPool`) is also tested alone, on a fake clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("openai")

from harness import plugins
from harness.backend_kit import public_base_url
from harness.errors import HarnessError
from harness.options import validate_options
from harness.results import load_run
from harness.run.dispatch import Dispatcher
from harness.run.runner import Run, RunConfig
from harness.testing.loopback import Answer, Fault, LoopbackServer, Request
from harness.types import ClassInfo, Message, Prompt, TextPart
from harness_openai.classifier import OpenAIClassifier, OpenAIOptions
from harness_openai.replicas import ReplicaPool, split_base_urls

SPEC = "openai:vlm"
CANDIDATES = [ClassInfo("crack", "crack"), ClassInfo("stain", "stain")]


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # keyless local servers, as vLLM runs by default
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def prompt(i: int) -> Prompt:
    messages = [Message("user", [TextPart(f"request {i}: which class?")])]
    return Prompt("t", messages, list(CANDIDATES), hash="h", request_hash=f"r{i}")


def classifier(urls: list[str], **options) -> OpenAIClassifier:
    return OpenAIClassifier("vlm", OpenAIOptions(base_url=urls, **options))


def dispatch_all(clf: OpenAIClassifier, count: int):
    """``count`` distinct prompts through a `Dispatcher` at the classifier's concurrency, with a fast backoff."""
    async def go():
        dispatcher = Dispatcher(clf, wait_initial_s=0.01, wait_max_s=0.05)
        try:
            return await asyncio.gather(*(dispatcher.call(prompt(i)) for i in range(count)))
        finally:
            await clf.aclose()

    return asyncio.run(go())


def named(server: LoopbackServer) -> str:
    return public_base_url(server.openai_base_url)


def answered(server: LoopbackServer) -> int:
    return sum(1 for r in server.requests if r.outcome == "answer")


def run(tmp_path: Path, root: Path, run_id: str, options: dict):
    config = RunConfig(
        benchmark="folder", data_root=root, models=[SPEC], categories=["tile"], results_dir=tmp_path / "results",
        run_id=run_id, n_boot=20, model_options={SPEC: {"concurrency": 8, "temperature": 0, **options}},
        output_formats=["csv"],
    )
    result = Run(config, plugins.load_registry()).execute()
    return load_run(result.run_dir)


# -- the option --------------------------------------------------------------------------------------


def test_a_config_list_and_a_comma_separated_string_name_the_same_replicas():
    listed = validate_options(OpenAIOptions, {"base_url": ["http://a:1/v1", " http://b:2/v1 "]}, SPEC)
    assert listed.base_url == "http://a:1/v1,http://b:2/v1"
    assert split_base_urls(listed.base_url, "x") == ["http://a:1/v1", "http://b:2/v1"]
    assert split_base_urls("http://a:1/v1", "x") == ["http://a:1/v1"] and split_base_urls(None, "x") == []


def test_the_variable_may_list_replicas_too(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://b:2/v1, http://a:1/v1")
    clf = OpenAIClassifier("vlm", OpenAIOptions())
    assert [r.name for r in clf._pool.replicas] == ["http://b:2/v1", "http://a:1/v1"]
    assert clf.endpoint() == {"base_url": "http://a:1/v1,http://b:2/v1"}  # sorted: the order is no new model


@pytest.mark.parametrize("urls, problem", [
    ("http://a:1/v1,,http://b:2/v1", "an empty base URL"),
    ("http://a:1/v1,", "an empty base URL"),
    ("http://a:1/v1,http://A:1/v1/", "listed twice"),
])
def test_a_slip_in_the_list_is_an_error_naming_where_it_came_from(monkeypatch, urls, problem):
    with pytest.raises(HarnessError, match=f"the base_url option: .*{problem}"):
        classifier(urls)
    monkeypatch.setenv("OPENAI_BASE_URL", urls)
    with pytest.raises(HarnessError, match=f"OPENAI_BASE_URL: .*{problem}"):
        OpenAIClassifier("vlm", OpenAIOptions())


def test_one_base_url_is_no_pool_and_its_endpoint_is_unchanged():
    clf = classifier(["http://a:1/v1/"])
    assert clf._pool is None and clf.endpoint() == {"base_url": "http://a:1/v1"}


# -- the choice of replica, on a fake clock -------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_least_loaded_replica_is_chosen_and_ties_take_turns():
    pool = ReplicaPool(["http://a/v1", "http://b/v1", "http://c/v1"], clock=Clock())
    first = [pool.choose() for _ in range(3)]
    assert [t.replica.index for t in first] == [0, 1, 2]  # all idle: in turn
    pool.finished(first[1], ok=True)
    assert pool.choose().replica.index == 1  # the only one with nothing in flight
    assert [pool.choose().replica.index for _ in range(3)] == [2, 0, 1]  # all at one: in turn again


def test_a_transient_failure_cools_a_replica_down_for_a_growing_time_reset_by_a_success():
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], clock=clock, first_cooldown_s=1.0, max_cooldown_s=4.0)
    a, b = pool.replicas
    lengths = []
    for _ in range(4):
        ticket = pool.choose()
        while ticket.replica is not a:  # a healthy b takes its turn meanwhile
            pool.finished(ticket, ok=True)
            ticket = pool.choose()
        pool.finished(ticket, failed=True)
        lengths.append(a.cooldown_s)
        assert all(pool.choose().replica is b for _ in range(3))  # cooling: no new request for a
        for replica in (a, b):
            replica.in_flight = 0
        clock.now = a.cooling_until  # cooled down: a may be tried again
    assert lengths == [1.0, 2.0, 4.0, 4.0]  # doubling, up to the cap
    ticket = pool.choose()
    assert ticket.replica is a
    pool.finished(ticket, ok=True)
    assert a.cooldown_s == 0.0 and a.cooling_since is None


def test_requests_in_flight_when_a_replica_died_count_as_one_failure():
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], clock=clock)
    tickets = [pool.choose() for _ in range(8)]  # four on each
    clock.now += 0.01
    for ticket in tickets:
        if ticket.replica.index == 0:
            pool.finished(ticket, failed=True)
    assert pool.replicas[0].cooldown_s == 1.0  # not 8: the others were sent before it began cooling


def test_when_every_replica_cools_the_one_cooling_longest_is_tried_and_retry_after_is_honoured():
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], clock=clock)
    a, b = pool.replicas
    pool.finished(pool.choose(), failed=True, retry_after_s=10)  # a, asking for 10 s
    clock.now += 0.5
    pool.finished(pool.choose(), failed=True)  # b
    assert a.cooldown_s == 10.0 and b.cooldown_s == 1.0
    assert pool.choose().replica is a  # both cooling: a began first


# -- replicas as one model, through the SDK -----------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
def test_replicas_share_the_load_and_each_answer_names_its_replica(count):
    servers = [LoopbackServer(Answer(f"crack from {i}"), latency_s=0.05).start() for i in range(count)]
    try:
        results = dispatch_all(classifier([s.openai_base_url for s in servers], concurrency=8), 48)
    finally:
        for server in servers:
            server.stop()
    assert all(r.error is None and r.attempts == 1 for r in results)
    names = [named(s) for s in servers]
    for result in results:  # the replica named is the one whose answer came back
        assert result.response.replica == names[int(result.response.text.rsplit(" ", 1)[1])]
    shares = [answered(s) for s in servers]
    assert sum(shares) == 48
    assert min(shares) >= 0.75 * 48 / count, shares  # a fair share each: fewest in flight, ties in turn
    assert all(s.peak_connections <= 8 for s in servers)


@pytest.mark.parametrize("broken", ["500", "refused"])
def test_a_failing_replica_is_routed_around(broken):
    good = LoopbackServer(Answer("crack"), latency_s=0.02).start()
    bad = LoopbackServer(Fault.server_error(500)).start()
    if broken == "refused":
        bad.stop()  # nothing listens on its port any more: connections are refused
    try:
        results = dispatch_all(classifier([good.openai_base_url, bad.openai_base_url], concurrency=8), 40)
    finally:
        good.stop()
        bad.stop()
    assert all(r.error is None and r.response.text == "crack" for r in results)
    assert {r.response.replica for r in results} == {named(good)}
    assert answered(good) == 40 and good.count == 40  # every prompt answered once, by the healthy replica
    retried = [r for r in results if r.attempts > 1]
    assert retried  # the first wave met the broken replica, and the core's retry went elsewhere
    if broken == "500":
        # The first wave's failures cooled it down once: it was not asked for each of the 40 prompts.
        assert 1 <= bad.count <= 8, bad.count


def test_a_hung_replica_cools_down_once_the_core_times_its_request_out():
    good = LoopbackServer(Answer("crack"), latency_s=0.05).start()
    hung = LoopbackServer(Fault.hang(30)).start()
    try:  # about 0.8 s of work for the good replica alone: longer than the timeout, shorter than timeout + cooldown
        clf = classifier([good.openai_base_url, hung.openai_base_url], concurrency=4, timeout_s=0.5)
        results = dispatch_all(clf, 64)
    finally:
        good.stop()
        hung.stop()
    assert all(r.error is None and r.response.replica == named(good) for r in results)
    assert answered(good) == 64
    # The first wave's requests to it timed out together (one failure); it cooled down and got no more.
    assert 1 <= hung.count <= 2, hung.count


def test_a_run_records_the_replicas_and_a_cached_rerun_asks_none(tmp_path, small_tree, monkeypatch):
    # aiohttp refuses credentials in a URL next to the SDK's Authorization header; httpx sends them.
    monkeypatch.setenv("HARNESS_HTTP_BACKEND", "httpx")

    def answer(request: Request):
        return Answer("crack", model="served-vlm")

    a = LoopbackServer(answer, latency_s=0.02).start()
    b = LoopbackServer(answer, latency_s=0.02).start()
    try:
        # A credential in one replica's URL: sent to that server, recorded nowhere.
        secret_url = b.openai_base_url.replace("http://", "http://alice:hunter2pass@")
        run_json, records = run(tmp_path, small_tree, "first", {"base_url": [a.openai_base_url, secret_url]})
        asked = a.count + b.count
        again_json, again = run(tmp_path, small_tree, "again", {"base_url": f"{secret_url},{a.openai_base_url}"})
    finally:
        a.stop()
        b.stop()
    called = [r for r in records if r["called"]]
    assert called and len(called) == asked and a.count > 0 and b.count > 0  # both answered, each prompt once
    assert all(r["error"] is None and r["predicted_label"] == "crack" for r in called)
    assert {r["replica"] for r in called} == {named(a), named(b)}
    assert all(r["replica"] is None for r in records if not r["called"])
    endpoint = run_json["provenance"]["classifiers"][SPEC]["endpoint"]
    assert endpoint == {"base_url": ",".join(sorted([named(a), named(b)]))}
    # The re-run lists the replicas in another order: one model, one key, every answer from the cache.
    assert a.count + b.count == asked
    assert again_json["provenance"]["classifiers"][SPEC]["endpoint"] == endpoint
    again_called = [r for r in again if r["called"]]
    assert len(again_called) == len(called) and all(r["cached"] and r["attempts"] == 0 for r in again_called)
    by_sample = {r["sample_id"]: r["replica"] for r in called}
    assert all(r["replica"] == by_sample[r["sample_id"]] for r in again_called)  # the original call's, as latency
    folder = tmp_path / "results"
    for path in [*folder.rglob("*.json"), *folder.rglob("*.jsonl"), *folder.rglob("*.csv")]:
        text = path.read_text(encoding="utf-8")
        assert "hunter2pass" not in text and "alice" not in text, path
    header = (folder / "first" / "samples.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "replica" in header
    cache_files = list((tmp_path / "cache").glob("responses.sqlite*"))
    assert cache_files and all(b"hunter2pass" not in p.read_bytes() and b"alice" not in p.read_bytes() for p in cache_files)
