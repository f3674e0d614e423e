"""Dispatch: retries for transient errors only, timeouts, bounded concurrency, redacted details."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from harness.classifiers import ClassifierOptions
from harness.run.dispatch import MAX_DETAIL_CHARS, CallResult, Dispatcher
from harness.testing import scripted_classifier
from harness.types import ClassInfo, Message, Prompt, Response, TextPart


class Overloaded(Exception):
    """A transient backend error (HTTP 529, say)."""


class BadRequest(Exception):
    """A permanent backend error (HTTP 400)."""


def make_prompt(n: int = 0) -> Prompt:
    return Prompt(
        template="plain",
        messages=[Message("user", [TextPart(f"which defect? #{n}")])],
        candidates=[ClassInfo("scratch", "scratch"), ClassInfo("crack", "crack")],
        hash=f"h{n}",
        request_hash=f"r{n}",
    )


def dispatcher(script: Callable, transient=(Overloaded,), **options) -> tuple[Dispatcher, type]:
    Scripted, _ = scripted_classifier(script, transient=transient)
    options.setdefault("max_attempts", 4)
    classifier = Scripted(None, ClassifierOptions(**options))
    return Dispatcher(classifier, wait_initial_s=0.001, wait_max_s=0.01), Scripted


def run_one(d: Dispatcher, prompt: Prompt | None = None) -> CallResult:
    return asyncio.run(d.call(prompt or make_prompt()))


def sequence(*outcomes):
    """A script answering with ``outcomes`` in turn (an exception instance is raised)."""
    remaining = list(outcomes)

    def script(prompt):
        return remaining.pop(0)

    return script


# -- success ----------------------------------------------------------------------------------


def test_success_returns_the_response_after_one_attempt_with_its_latency():
    async def slow_answer(prompt):
        await asyncio.sleep(0.02)
        return Response(text="scratch", tokens_in=12, tokens_out=1, cost_usd=0.001)

    d, Scripted = dispatcher(slow_answer)
    prompt = make_prompt()
    result = run_one(d, prompt)
    assert result.error is None and result.detail is None
    assert result.response == Response(text="scratch", tokens_in=12, tokens_out=1, cost_usd=0.001)
    assert result.attempts == 1
    assert 0.015 <= result.latency_s < 1.0
    assert 0 <= result.queued_s < 0.5
    assert Scripted.prompts == [prompt]


def test_plain_text_answers_become_responses():
    d, _ = dispatcher(lambda prompt: "crack")
    result = run_one(d)
    assert result.response == Response(text="crack")
    assert result.attempts == 1


# -- retries ----------------------------------------------------------------------------------


def test_transient_errors_are_retried_until_success():
    d, Scripted = dispatcher(sequence(Overloaded("529 overloaded"), Overloaded("529 overloaded"), "scratch"))
    result = run_one(d)
    assert result.error is None
    assert result.response.text == "scratch"
    assert result.attempts == 3
    assert len(Scripted.prompts) == 3
    assert result.latency_s is not None and result.latency_s < 0.5  # of the successful attempt only


def test_a_permanent_error_is_not_retried():
    d, Scripted = dispatcher(sequence(BadRequest("400 image too large"), "scratch"))
    result = run_one(d)
    assert result.response is None
    assert result.error == "backend_error"
    assert result.detail == "BadRequest: 400 image too large"
    assert result.attempts == 1
    assert result.latency_s is None
    assert len(Scripted.prompts) == 1


def test_a_permanent_error_after_transient_ones_stops_the_retries():
    d, Scripted = dispatcher(sequence(Overloaded("busy"), BadRequest("400 bad"), "scratch"))
    result = run_one(d)
    assert result.error == "backend_error"
    assert result.detail == "BadRequest: 400 bad"
    assert result.attempts == 2


def test_exhausted_retries_are_a_backend_error_that_says_how_many_attempts():
    d, Scripted = dispatcher(lambda prompt: Overloaded("529 overloaded"), max_attempts=3)
    result = run_one(d)
    assert result.response is None
    assert result.error == "backend_error"
    assert result.attempts == 3
    assert len(Scripted.prompts) == 3
    assert "after 3 attempts" in result.detail
    assert "Overloaded: 529 overloaded" in result.detail


def test_max_attempts_one_means_no_retry():
    d, Scripted = dispatcher(lambda prompt: Overloaded("busy"), max_attempts=1)
    result = run_one(d)
    assert result.error == "backend_error"
    assert result.attempts == 1


def test_nothing_is_transient_unless_declared():
    d, Scripted = dispatcher(lambda prompt: Overloaded("busy"), transient=())
    result = run_one(d)
    assert result.error == "backend_error"
    assert result.attempts == 1


def test_retry_waits_stay_within_the_configured_bounds():
    d, _ = dispatcher(lambda prompt: Overloaded("busy"), max_attempts=5)
    started = time.perf_counter()
    result = run_one(d)
    assert result.attempts == 5
    assert time.perf_counter() - started < 0.5  # four waits of at most 10 ms each


# -- timeouts ---------------------------------------------------------------------------------


def test_a_slow_answer_times_out_and_timeouts_are_retried():
    calls = []

    async def never_in_time(prompt):
        calls.append(time.perf_counter())
        await asyncio.sleep(5)
        return "scratch"

    d, _ = dispatcher(never_in_time, timeout_s=0.05, max_attempts=2)
    started = time.perf_counter()
    result = run_one(d)
    assert time.perf_counter() - started < 1.0
    assert result.response is None
    assert result.error == "timeout"
    assert result.attempts == 2
    assert len(calls) == 2
    assert "no answer within 0.05 s" in result.detail
    assert "after 2 attempts" in result.detail


def test_a_timeout_then_an_answer_succeeds():
    delays = [5.0, 0.0]

    async def slow_then_fast(prompt):
        await asyncio.sleep(delays.pop(0))
        return "crack"

    d, _ = dispatcher(slow_then_fast, timeout_s=0.05)
    result = run_one(d)
    assert result.error is None
    assert result.response.text == "crack"
    assert result.attempts == 2
    assert result.latency_s < 0.05


def test_a_backend_timeout_exception_is_recorded_as_timeout():
    # Classifier.is_timeout: a TimeoutError raised by the backend itself is a timeout too
    d, _ = dispatcher(lambda prompt: TimeoutError("read timed out"), transient=(), max_attempts=3)
    result = run_one(d)
    assert result.error == "timeout"
    assert result.attempts == 3  # timeouts are transient whatever the backend declares


# -- concurrency ------------------------------------------------------------------------------


def test_concurrency_limit_is_respected():
    in_flight = 0
    peak = 0

    async def tracked(prompt):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "scratch"

    d, Scripted = dispatcher(tracked, concurrency=3)

    async def main():
        return await asyncio.gather(*(d.call(make_prompt(i)) for i in range(10)))

    results = asyncio.run(main())
    assert peak == 3
    assert in_flight == 0
    assert len(Scripted.prompts) == 10
    assert all(r.error is None and r.attempts == 1 for r in results)
    assert max(r.queued_s for r in results) > 0.005  # later calls waited for a slot


def test_a_retrying_call_keeps_its_slot_and_others_still_finish():
    in_flight = 0
    peak = 0
    failures = {"r0": 2}  # the first prompt fails twice, transiently

    async def flaky(prompt):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        if failures.get(prompt.request_hash, 0) > 0:
            failures[prompt.request_hash] -= 1
            return Overloaded("busy")
        return "crack"

    d, _ = dispatcher(flaky, concurrency=2)

    async def main():
        return await asyncio.gather(*(d.call(make_prompt(i)) for i in range(6)))

    results = asyncio.run(main())
    assert peak == 2
    assert [r.attempts for r in results] == [3, 1, 1, 1, 1, 1]
    assert all(r.response.text == "crack" for r in results)


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_never_reach_the_call_result(monkeypatch):
    env_secret = "zq-custom-vllm-key-8c1f0e77"  # a shape no pattern knows: only the env var gives it away
    monkeypatch.setenv("FOO_API_KEY", env_secret)
    openai_key = "sk-proj-AbCdEf0123456789xyzXYZ"

    def leaky(prompt):
        return BadRequest(
            f"401 Incorrect API key provided: {openai_key}. "
            f"headers={{'x-api-key': '{env_secret}', 'Authorization': 'Bearer {openai_key}'}}"
        )

    d, _ = dispatcher(leaky)
    result = run_one(d)
    assert result.error == "backend_error"
    assert openai_key not in result.detail
    assert env_secret not in result.detail
    assert "AbCdEf0123456789" not in result.detail
    assert "8c1f0e77" not in result.detail
    assert "[REDACTED]" in result.detail
    assert result.detail.startswith("BadRequest: 401 Incorrect API key provided")


def test_secrets_are_redacted_from_exhausted_retry_details_too(monkeypatch):
    monkeypatch.setenv("FOO_API_KEY", "zq-another-secret-value")
    d, _ = dispatcher(lambda prompt: Overloaded("overloaded for key zq-another-secret-value"), max_attempts=2)
    result = run_one(d)
    assert "zq-another-secret-value" not in result.detail
    assert "gave up after 2 attempts" in result.detail


def test_long_details_are_truncated_after_redaction(monkeypatch):
    secret = "qq-" + "k" * 40  # no known shape: only a whole-value match (env var) finds it
    monkeypatch.setenv("FOO_API_KEY", secret)

    def huge(prompt):
        # "BadRequest: " + filler puts the secret across the MAX_DETAIL_CHARS cut
        return BadRequest("x" * (MAX_DETAIL_CHARS - 30) + " " + secret + " " + "y" * 1000)

    d, _ = dispatcher(huge)
    result = run_one(d)
    assert len(result.detail) == MAX_DETAIL_CHARS
    assert "[REDACTED]" in result.detail
    assert "qq-kkk" not in result.detail  # cutting first would have left a piece nothing recognises


def test_cancellation_is_not_swallowed():
    async def forever(prompt):
        await asyncio.sleep(5)
        return "scratch"

    d, _ = dispatcher(forever)

    async def main():
        task = asyncio.create_task(d.call(make_prompt()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
