"""The response cache and the rate limiter, through the dispatcher that uses them."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.run.cache import ResponseCache
from harness.classifiers import ClassifierOptions
from harness.run.dispatch import Dispatcher
from harness.run.dispatch import RateLimiter
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


# -- re-runs: request keys remembered by file identity (harness.run.prompt_memo) ----------------------


def _memo_run(tree, results, run_id, registry, gate="none"):
    from harness.run.runner import Run, RunConfig

    config = RunConfig(benchmark="folder", data_root=tree, gate=gate, models=["scripted"], results_dir=results,
                       run_id=run_id, n_boot=50, model_options={"scripted": {"cache": True}})
    return Run(config, registry).execute()


def test_a_rerun_reads_no_image_and_a_changed_image_misses(tmp_path, monkeypatch):
    from PIL import Image

    import harness.run.stages
    from harness import plugins
    from harness_datasets import demo

    tree = tmp_path / "tree"
    demo.write_demo_tree(tree, seed=0, counts=demo.DemoCounts(train=2, good=1, per_defect=1))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # a cold cache of its own
    sent = []

    def script(p):
        assert p.messages, "a key-only prompt reached the classifier"
        sent.append(p.request_hash)
        return p.candidates[0].name

    _, plugin = scripted_classifier(script)
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    read = []
    real_load = harness.run.stages.load_rgb
    monkeypatch.setattr(harness.run.stages, "load_rgb", lambda path: read.append(path) or real_load(path))

    first = _memo_run(tree, tmp_path / "results", "first", registry)
    test_images = {tree / r["image"] for r in first.records}
    assert len(sent) == len(first.records) > 0 and not any(r["cached"] for r in first.records)
    assert test_images <= set(read)
    first_sent = set(sent)

    sent.clear(), read.clear()
    again = _memo_run(tree, tmp_path / "results", "again", registry)
    assert sent == [] and all(r["cached"] for r in again.records)
    assert not test_images & set(read), "a re-run decoded test images"
    by_id = {r["sample_id"]: r for r in first.records}
    for record in again.records:
        kept = by_id[record["sample_id"]]
        assert (record["prompt"], record["predicted_label"], record["class_order"]) == \
               (kept["prompt"], kept["predicted_label"], kept["class_order"])
    scores = [{k: v for k, v in run.run["metrics"]["scripted"].items() if k != "usage"} for run in (first, again)]
    assert scores[0] == scores[1]  # the same answers: the same scores (usage differs: no attempts)

    changed = first.records[0]
    path = tree / changed["image"]
    with Image.open(path) as image:
        image = image.convert("RGB")
    image.putpixel((0, 0), tuple(255 - v for v in image.getpixel((0, 0))))
    image.save(path)  # same name, same size on disk or not: the file's identity changes
    sent.clear()
    third = _memo_run(tree, tmp_path / "results", "third", registry)
    assert len(sent) == 1 and sent[0] not in first_sent  # new pixels, new request
    redone = [r for r in third.records if not r["cached"]]
    assert [r["sample_id"] for r in redone] == [changed["sample_id"]]
    assert path in read


def test_the_memo_is_not_used_for_gates_that_read_pixels(tmp_path):
    from harness.run.cache import ResponseCache
    from harness.gates import Gate, OracleGate, PassThroughGate

    assert Gate.reads_pixels and not PassThroughGate.reads_pixels and not OracleGate.reads_pixels
    registry_gate = type("PixelGate", (PassThroughGate,), {"name": "pixels", "reads_pixels": True})
    from harness.run.prompt_memo import PromptMemo
    from harness.types import Category

    gate = registry_gate()
    category = Category("c", [ClassInfo("crack", "crack")], [], [])
    memo = PromptMemo(ResponseCache(tmp_path / "r.sqlite"), [], gate, gate.fit(category), _template(), category,
                      [CANDIDATES], None, [], 1, set())
    assert not memo.enabled


def _template():
    from harness.prompts import template_from_text

    return template_from_text("t", "[[user]]\n{{ image(\"query\") }} which?")


@pytest.mark.parametrize("options", [{}, {"temperature": 0.0, "detail": "low", "nested": {"b": [1, 2], "a": None}}])
def test_the_prefixed_cache_key_equals_the_plain_one(options):
    from harness.run.cache import cache_key, cache_keyer

    for plugin, model, endpoint in (("openai", "gpt-4o", {"base_url": "http://h/v1"}), ("random", None, {})):
        keyer = cache_keyer(plugin, model, options, endpoint=endpoint)
        for request in ("r1", "0123abcd", 'with "quotes" \u00e9'):
            assert keyer(request) == cache_key(plugin, model, options, request, endpoint=endpoint)


def test_a_key_only_prompt_is_answered_from_the_cache_and_never_sent(tmp_path):
    from harness.errors import HarnessError
    from harness.types import KeyOnlyPrompt

    cache = ResponseCache(tmp_path / "responses.sqlite")
    calls, script = counting()
    dispatcher = Dispatcher(make(script, cache_option=True), cache=cache)
    asyncio.run(dispatcher.call(prompt("known")))
    known = KeyOnlyPrompt(template="t", messages=[], candidates=CANDIDATES, hash="h", request_hash="known")
    unknown = KeyOnlyPrompt(template="t", messages=[], candidates=CANDIDATES, hash="h", request_hash="gone")
    assert dispatcher.is_cached(known) and not dispatcher.is_cached(unknown)
    assert asyncio.run(dispatcher.call(known)).cached
    with pytest.raises(HarnessError, match="no longer holds"):
        asyncio.run(dispatcher.call(unknown))
    assert calls == ["known"]  # one real call; the key-only prompts never reached the classifier
