"""The response cache and the rate limiter, through the dispatcher that uses them."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.cache import ResponseCache
from harness.classifiers import ClassifierOptions
from harness.dispatch import Dispatcher
from harness.ratelimit import RateLimiter
from harness.testing import scripted_classifier
from harness.types import ClassInfo, Prompt, Response

CANDIDATES = [ClassInfo("crack", "crack"), ClassInfo("hole", "hole")]


def prompt(request_hash: str = "r1") -> Prompt:
    return Prompt(template="t", messages=[], candidates=CANDIDATES, hash="h", request_hash=request_hash)


def counting(answer="crack", fail=False):
    calls = []

    def script(p):
        calls.append(p.request_hash)
        return RuntimeError("permanent") if fail else Response(text=answer, tokens_in=10, tokens_out=2)

    return calls, script


def make(script, cache_option=None, **options):
    classifier_class, _ = scripted_classifier(script)
    return classifier_class(None, ClassifierOptions(cache=cache_option, **options))


def test_a_cached_answer_is_reused_with_the_original_usage(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    calls, script = counting()
    classifier = make(script, cache_option=True)

    async def twice():
        first = await Dispatcher(classifier, cache=cache).call(prompt())
        second = await Dispatcher(classifier, cache=cache).call(prompt())
        return first, second

    first, second = asyncio.run(twice())
    assert calls == ["r1"]
    assert not first.cached and first.attempts == 1
    assert second.cached and second.attempts == 0
    assert second.response.text == "crack" and second.response.tokens_in == 10
    assert second.latency_s == pytest.approx(first.latency_s)
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_keys_depend_on_request_and_answer_options(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    calls, script = counting()

    async def go():
        await Dispatcher(make(script, cache_option=True), cache=cache).call(prompt("r1"))
        await Dispatcher(make(script, cache_option=True), cache=cache).call(prompt("r2"))  # other images
        # Dispatch settings do not change answers, so they share the cache entry.
        await Dispatcher(make(script, cache_option=True, concurrency=9), cache=cache).call(prompt("r1"))

    asyncio.run(go())
    assert calls == ["r1", "r2"]


def test_failures_and_nondeterministic_requests_are_not_cached(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    fail_calls, failing = counting(fail=True)
    calls, script = counting()

    async def go():
        for _ in range(2):
            await Dispatcher(make(failing, cache_option=True), cache=cache).call(prompt("f"))
            # A scripted classifier is not deterministic: by default it is never cached.
            await Dispatcher(make(script), cache=cache).call(prompt("n"))

    asyncio.run(go())
    assert fail_calls == ["f", "f"]
    assert calls == ["n", "n"]


def test_the_cache_survives_reopening(tmp_path):
    path = tmp_path / "responses.sqlite"
    calls, script = counting()
    asyncio.run(Dispatcher(make(script, cache_option=True), cache=ResponseCache(path)).call(prompt()))
    result = asyncio.run(Dispatcher(make(script, cache_option=True), cache=ResponseCache(path)).call(prompt()))
    assert result.cached and calls == ["r1"]


def test_requests_per_minute_never_exceeded_in_any_window():
    limiter = RateLimiter(requests_per_minute=3, window_s=0.4)
    starts = []

    async def go():
        async def one():
            await limiter.acquire()
            starts.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(9)))

    began = time.monotonic()
    asyncio.run(go())
    elapsed = time.monotonic() - began
    assert len(starts) == 9
    assert elapsed >= 0.8 - 0.02  # 9 requests at 3 per window need two full waits
    assert elapsed < 2.0  # and it does not dawdle
    starts.sort()
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s - start < 0.4 - 0.01) <= 3


def test_tokens_per_minute_waits_for_room():
    limiter = RateLimiter(tokens_per_minute=100, window_s=0.3)

    async def go():
        charge = await limiter.acquire()
        limiter.settle(charge, 80)  # the first call used 80 tokens; the next is estimated at 80 too
        began = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - began

    assert asyncio.run(go()) >= 0.25


def test_the_dispatcher_applies_the_rate_limit():
    calls, script = counting()
    classifier = make(script, concurrency=8, requests_per_minute=2)
    dispatcher = Dispatcher(classifier)
    dispatcher.limiter.window_s = 0.3

    async def go():
        return await asyncio.gather(*(dispatcher.call(prompt(str(i))) for i in range(4)))

    began = time.monotonic()
    results = asyncio.run(go())
    assert time.monotonic() - began >= 0.3 - 0.02
    assert all(r.response is not None for r in results)
    assert max(r.queued_s for r in results) >= 0.25  # waiting for the limit counts as queued time
