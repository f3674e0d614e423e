"""Retry policy: rate limiting within a time budget, other transient errors within a count, nothing lost to a burst.

Waits are shortened (backoff of milliseconds, Retry-After of 0 or 10 ms); no test asserts a duration.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from harness import plugins
from harness.classifiers import ClassifierOptions
from harness.run.dispatch import CallResult, Dispatcher
from harness.run.dispatch import RetryBook, loss_probability
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier, tiny_prompt, write_tiny_benchmark
from harness.testing.conformance import error_from_wire
from harness.testing.loopback import Fault, LoopbackServer
from harness.testing.loopback_faults import fault_mix, first_listed_class
from harness.types import Response

OPENAI_KEY = "sk-retry-policy-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-retry-policy-0123456789"
FAST_FAULTS = (  # the default mix with the Retry-After of 1 s shortened
    Fault.rate_limited(retry_after=0.01), Fault.rate_limited(), Fault.server_error(500),
    Fault.server_error(503, "Service unavailable"), Fault.overloaded(), Fault.reset(),
)


class Busy(Exception):
    """A rate-limit answer (429) of a scripted backend."""


class Broken(Exception):
    """Another transient error (500) of a scripted backend."""


def scripted_dispatcher(outcomes: list, **options) -> Dispatcher:
    """A dispatcher over a scripted backend answering ``outcomes`` in turn; Busy is rate limiting, Broken not."""
    Scripted, _ = scripted_classifier(lambda prompt: outcomes.pop(0), transient=(Busy, Broken))
    Scripted.is_rate_limited = lambda self, error: isinstance(error, Busy)
    return Dispatcher(Scripted(None, ClassifierOptions(**options)), wait_initial_s=0.001, wait_max_s=0.002)


def call(dispatcher: Dispatcher, prompt) -> CallResult:
    return asyncio.run(dispatcher.call(prompt))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_benchmark(tmp_path_factory.mktemp("tiny"))


# -- the policy -------------------------------------------------------------------------------------


def test_the_default_count_loses_one_request_in_a_million_at_a_quarter_failing():
    assert ClassifierOptions().max_attempts == 10 and ClassifierOptions().rate_limit_budget_s == 600
    assert loss_probability(0.25, 4) == pytest.approx(1 / 256)  # the old default: about one in 300
    assert loss_probability(0.25, ClassifierOptions().max_attempts) < 1e-6


def test_rate_limited_failures_do_not_count_against_max_attempts():
    book = RetryBook(max_attempts=2, rate_limit_budget_s=10.0)
    assert not any(book.should_stop(True, elapsed_s=1.0, next_wait_s=1.0) for _ in range(100))
    assert not book.should_stop(False, elapsed_s=1.0, next_wait_s=1.0)
    assert book.should_stop(False, elapsed_s=1.0, next_wait_s=1.0)  # the second other failure
    assert book.give_up_message(102) == "gave up after 102 attempts"


def test_a_rate_limited_request_stops_when_the_next_wait_would_pass_the_budget():
    book = RetryBook(max_attempts=2, rate_limit_budget_s=10.0)
    assert not book.should_stop(True, elapsed_s=8.0, next_wait_s=2.0)
    assert book.should_stop(True, elapsed_s=8.5, next_wait_s=2.0)
    assert "rate limited or overloaded for 8.5 s (2 such answers)" in book.give_up_message(3)
    assert "rate_limit_budget_s=10" in book.give_up_message(3)


def test_many_rate_limits_then_an_answer_succeed_despite_a_small_max_attempts(tiny):
    d = scripted_dispatcher([Busy("429")] * 6 + [Broken("500"), "scratch"], max_attempts=2)
    result = call(d, tiny_prompt(tiny))
    assert result.error is None and result.response.text == "scratch" and result.attempts == 8


def test_other_transient_errors_stop_at_max_attempts_and_are_marked_transient(tiny):
    d = scripted_dispatcher([Busy("429"), Broken("500"), Busy("429"), Broken("500"), "never reached"], max_attempts=2)
    result = call(d, tiny_prompt(tiny))
    assert result.error == "backend_error" and result.transient is True and result.attempts == 4
    assert result.detail.startswith("gave up after 4 attempts; last: Broken: 500")


def test_a_permanent_error_is_not_transient(tiny):
    result = call(scripted_dispatcher([ValueError("401 unauthorized")]), tiny_prompt(tiny))
    assert result.error == "backend_error" and result.transient is False and result.attempts == 1


def test_a_timeout_is_transient_even_when_not_retried(tiny):
    async def slow(prompt):
        await asyncio.sleep(5)
        return Response(text="late")

    Scripted, _ = scripted_classifier(slow)
    d = Dispatcher(Scripted(None, ClassifierOptions(timeout_s=0.01, max_attempts=1)), wait_initial_s=0.001)
    result = call(d, tiny_prompt(tiny))
    assert result.error == "timeout" and result.transient is True


# -- the real SDKs against a loopback server ----------------------------------------------------------


def sdk_classifier(backend: str, server: LoopbackServer, monkeypatch, **options):
    if backend == "openai":
        pytest.importorskip("openai")
        from harness_openai import OpenAIClassifier, OpenAIOptions

        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        return OpenAIClassifier("gpt-4o", OpenAIOptions(base_url=server.openai_base_url, **options))
    pytest.importorskip("anthropic")
    from harness_anthropic.classifier import AnthropicClassifier, AnthropicOptions

    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    return AnthropicClassifier("claude-test", AnthropicOptions(base_url=server.anthropic_base_url, **options))


def dispatch(classifier, prompt) -> CallResult:
    async def go():
        try:
            return await Dispatcher(classifier, wait_initial_s=0.001, wait_max_s=0.01).call(prompt)
        finally:
            await classifier.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", [Fault.rate_limited(retry_after=0), Fault.rate_limited(), Fault.server_error(503),
                                   Fault.overloaded()], ids=["429-retry-after", "429", "503", "529"])
def test_rate_limiting_forever_ends_when_the_budget_is_spent(backend, fault, tiny, monkeypatch):
    with LoopbackServer(fault, max_seconds=30) as server:
        classifier = sdk_classifier(backend, server, monkeypatch, max_attempts=1, rate_limit_budget_s=0.1)
        assert classifier.is_rate_limited(error_from_wire(classifier, server, fault, tiny_prompt(tiny))) is True
        result = dispatch(classifier, tiny_prompt(tiny))
    assert result.error == "backend_error" and result.transient is True and result.response is None
    assert "rate_limit_budget_s=0.1" in result.detail and result.detail.startswith("gave up after")
    assert result.attempts == server.count - 1  # one request went to error_from_wire
    assert OPENAI_KEY not in result.detail and ANTHROPIC_KEY not in result.detail


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", [Fault.server_error(500), Fault.reset(), Fault.malformed(), Fault.unauthorized],
                         ids=["500", "reset", "malformed", "401"])
def test_other_faults_are_not_rate_limiting(backend, fault, tiny, monkeypatch):
    with LoopbackServer(fault, max_seconds=30) as server:
        classifier = sdk_classifier(backend, server, monkeypatch)
        error = error_from_wire(classifier, server, fault, tiny_prompt(tiny))
    assert classifier.is_rate_limited(error) is False


def test_a_two_backend_run_against_a_half_faulty_server_answers_every_sample(tiny, tmp_path, monkeypatch):
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    from harness.testing import TINY_TEMPLATE, TinyBenchmark, plugin_of

    registry = plugins.load_registry(extra_plugins=[("tiny", plugin_of(benchmarks=[TinyBenchmark()], templates=[TINY_TEMPLATE]))])
    with LoopbackServer(fault_mix(first_listed_class, share=0.5, seed=12, faults=FAST_FAULTS), max_seconds=120) as server:
        models = ["openai:gpt-4o", "anthropic:claude-test"]
        config = RunConfig(
            benchmark="tiny", data_root=tiny, gate="none", prompt=TINY_TEMPLATE.name, models=models,
            model_options={"openai:gpt-4o": {"base_url": server.openai_base_url},
                           "anthropic:claude-test": {"base_url": server.anthropic_base_url}},
            results_dir=tmp_path, run_id="faulty", use_cache=False, n_boot=20,
            retry_initial_s=0.001, retry_max_s=0.01,  # everything else at its default
        )
        result = Run(config, registry).execute()
        outcomes = Counter(r.outcome for r in server.requests)
    assert server.errors == []
    failed = sum(n for outcome, n in outcomes.items() if outcome != "answer")
    assert 0.35 < failed / server.count < 0.65, outcomes  # about half of all requests failed
    assert {"status:429", "status:500", "status:503", "status:529", "reset"} <= set(outcomes)
    assert {r.protocol for r in server.requests} == {"openai", "anthropic"}
    assert len(result.records) == 24 and {r["model"] for r in result.records} == set(models)
    assert [r for r in result.records if r["error"] is not None] == []
    assert all(r["error_transient"] is None and r["attempts_total"] == r["attempts"] for r in result.records)
    assert sum(r["attempts"] for r in result.records) == server.count
    assert max(r["attempts"] for r in result.records) > 2  # some needed several retries
