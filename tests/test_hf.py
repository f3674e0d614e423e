"""The ``hf`` plugin on tiny randomly initialised VLMs (LLaVA, Qwen2-VL, Idefics3), offline.

The models are built once per session (tests/tiny_vlms.py), saved with
save_pretrained and loaded back through the plugin's own path. Their weights are
random, so generated answers are gibberish: these tests check the plumbing
(loading, chat templates, batching and padding, token counts, option scoring,
errors), not accuracy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the hf plugin needs torch: pip install 'anomaly-harness[hf]'")
pytest.importorskip("transformers", reason="the hf plugin needs transformers: pip install 'anomaly-harness[hf]'")

from PIL import Image  # noqa: E402

from harness import plugins  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.results import load_run
from harness.run.runner import Run, RunConfig  # noqa: E402
from harness.types import GOOD, ClassInfo, ImagePart, Message, Prompt, TextPart  # noqa: E402

import harness_hf

from harness_hf import HFClassifier, HFOptions  # noqa: E402
from harness_hf.batching import MicroBatcher  # noqa: E402
from harness_hf.checkpoint import Checkpoint  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_vlms  # noqa: E402

ARCHS = list(tiny_vlms.ARCHITECTURES)
MAX_NEW_TOKENS = 6


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return tiny_vlms.build_all(tmp_path_factory.mktemp("tiny-vlms"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test here is offline: an attempt to open a connection fails, and fails the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


def hf_run(tmp_path, small_tree, model_dir: Path, limit: int = 6, use_cache: bool = False, run_id=None, **options):
    """Run the tiny model through harness.run.runner on the small tree's ``tile`` category."""
    spec = f"hf:{model_dir}"
    registry = plugins.load_registry()
    config = RunConfig(
        benchmark="folder", data_root=small_tree, categories=["tile"], limit=limit, models=[spec],
        model_options={spec: {"max_new_tokens": MAX_NEW_TOKENS, **options}},
        results_dir=tmp_path / "results", n_boot=50, use_cache=use_cache, run_id=run_id,
    )
    run = Run(config, registry)
    (classifier,) = run.classifiers
    seen: list[tuple[Prompt, object]] = []
    classify = classifier.classify

    async def recording(prompt):
        response = await classify(prompt)
        seen.append((prompt, response))
        return response

    classifier.classify = recording
    return run.execute(), spec, seen, classifier


def make_prompt(seed: int, n_images: int = 2, words: int = 0) -> Prompt:
    """A VELM-shaped prompt with random images and a text length that varies with ``words``."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 255, (48 + 8 * seed, 64, 3), dtype=np.uint8)) for _ in range(n_images)]
    parts = []
    for name, image in zip(("reference", "query", "outlined"), images):
        parts += [TextPart(f"This is the {name} image:"), ImagePart(name, image, f"{seed}-{name}")]
    parts.append(TextPart("Candidate classes: 1. crack 2. glue strip 3. oil." + " Look closely." * words
                          + " Answer with exactly one class name."))
    return Prompt(
        template="test",
        messages=[Message("system", [TextPart("You are an expert in industrial visual inspection.")]),
                  Message("user", parts)],
        candidates=[ClassInfo("crack", "crack"), ClassInfo("glue_strip", "glue strip"), ClassInfo("oil", "oil")],
        hash=f"h{seed}", request_hash=f"r{seed}",
    )


async def classify_all(classifier: HFClassifier, prompts: list[Prompt]):
    try:
        return await asyncio.gather(*(classifier.classify(p) for p in prompts))
    finally:
        await classifier.aclose()


def new_classifier(model_dir: Path, **options) -> HFClassifier:
    return HFClassifier(str(model_dir), HFOptions(**options))


def load_vlm(model_dir: Path):
    """The plugin's model wrapper on its own, on the cpu in float32."""
    from harness_hf import vlm

    return vlm.LocalVLM(Checkpoint(str(model_dir), model_dir), device="cpu", dtype="float32")


# ------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_runs_end_to_end_with_honest_records(arch, tiny_models, tmp_path, small_tree):
    result, spec, seen, _ = hf_run(tmp_path, small_tree, tiny_models[arch], batch_size=4)
    records = result.records
    assert len(records) == result.run["benchmark"]["n_samples"] > 0
    called = [r for r in records if r["called"]]
    assert called and len(called) == len(seen) == sum(r["true_label"] != GOOD for r in records)
    for r in called:
        # Gibberish from random weights is an error kind, never an answer; a backend failure would be a bug.
        assert r["error"] in (None, "unparseable", "refused"), r["error_detail"]
        assert r["correct"] == (r["error"] is None and r["predicted_label"] == r["true_label"])
        if r["error"] is not None:
            assert r["predicted_label"] is None and not r["correct"]
        assert isinstance(r["response"], str)
        assert r["tokens_in"] > 0 and 1 <= r["tokens_out"] <= MAX_NEW_TOKENS
        assert r["cost_usd"] in (None, 0.0) and r["attempts"] == 1 and r["latency_s"] > 0
        assert r["option_scores"] is None  # generated, not scored
    described = result.run["provenance"]["classifiers"][spec]
    assert described["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert described["checkpoint"] == str(tiny_models[arch].resolve())


def test_max_images_limits_what_the_model_is_shown(tiny_models, tmp_path, small_tree):
    result, _, seen, _ = hf_run(tmp_path, small_tree, tiny_models["qwen2_vl"], limit=3, max_images=1)
    assert seen and all([i.name for i in prompt.images] == ["query"] for prompt, _ in seen)
    assert all(r["error"] != "backend_error" for r in result.records)


@pytest.mark.parametrize("arch", ARCHS)
def test_option_scoring_runs_end_to_end_inside_the_class_set(arch, tiny_models, tmp_path, small_tree):
    result, spec, seen, _ = hf_run(tmp_path, small_tree, tiny_models[arch], mode="score", batch_size=2)
    called = [r for r in result.records if r["called"]]
    assert called and len(seen) == len(called)
    labels = set(result.run["benchmark"]["categories"]["tile"]["labels"]) - {GOOD}
    for r in called:
        assert r["error"] is None, r["error_detail"]
        assert r["predicted_label"] in labels
        assert r["tokens_in"] > 0 and r["tokens_out"] == 0
    for prompt, response in seen:
        keys = [c.key for c in prompt.candidates]
        assert set(response.option_scores) == set(keys)
        assert all(np.isfinite(s) and s < 0 for s in response.option_scores.values())  # log-probabilities
        best = max(keys, key=response.option_scores.get)
        assert response.text == prompt.candidates[keys.index(best)].name
    # Each record carries the scores it was decided from, on disk too.
    _, on_disk = load_run(result.run_dir)
    for r in [x for x in on_disk if x["called"]]:
        assert set(r["option_scores"]) == set(r["class_order"])
        assert r["predicted_label"] == max(r["option_scores"], key=r["option_scores"].get)
    assert sorted(sorted(r["option_scores"].items()) for r in on_disk if r["called"]) == \
           sorted(sorted(response.option_scores.items()) for _, response in seen)
    # A fresh model scores the same prompts identically.
    again = asyncio.run(classify_all(new_classifier(tiny_models[arch], mode="score"), [p for p, _ in seen]))
    for (_, first), second in zip(seen, again):
        assert second.option_scores == pytest.approx(first.option_scores, rel=1e-5, abs=1e-5)
        assert second.text == first.text


def test_a_finished_run_is_answered_from_the_cache_without_loading_the_model(tiny_models, tmp_path, small_tree):
    model = tiny_models["idefics3"]
    first, _, seen, _ = hf_run(tmp_path, small_tree, model, limit=4, use_cache=True, run_id="first", batch_size=3)
    again, _, seen_again, classifier = hf_run(tmp_path, small_tree, model, limit=4, use_cache=True, run_id="again",
                                              batch_size=1)  # batching is not part of the cache key
    assert seen and not seen_again and classifier.batch_sizes == []
    called = [r for r in again.records if r["called"]]
    assert called and all(r["cached"] for r in called)
    answers = {r["sample_id"]: (r["response"], r["predicted_label"], r["tokens_in"], r["tokens_out"]) for r in first.records}
    assert {r["sample_id"]: (r["response"], r["predicted_label"], r["tokens_in"], r["tokens_out"])
            for r in again.records} == answers


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_are_the_log_likelihood_of_the_answer(arch, tiny_models):
    """Check the sliced, batched computation against a plain full forward pass per candidate."""
    model = load_vlm(tiny_models[arch])
    prompt = make_prompt(1)
    summed = model.score(prompt, "sum").scores
    mean = model.score(prompt, "mean").scores
    messages, images = model.conversation(prompt)
    prompt_text = model.render(messages, add_generation_prompt=True)
    n_prompt = model._encode([prompt_text], [images], "right")["input_ids"].shape[1]
    for candidate in prompt.candidates:
        full = model.render(messages + [{"role": "assistant", "content": [{"type": "text", "text": candidate.name}]}],
                            add_generation_prompt=False)
        inputs = model._encode([full], [images], "right")
        ids = inputs["input_ids"][0].tolist()
        answer = list(range(n_prompt, len(ids)))
        stop = next(i for i in answer if ids[i] in model.stop_ids)  # the end-of-turn token ends the answer
        answer = answer[: answer.index(stop) + 1]
        with torch.no_grad():
            log_probs = torch.log_softmax(model.model(**inputs).logits[0].float(), dim=-1)
        expected = sum(float(log_probs[p - 1, ids[p]]) for p in answer)
        assert summed[candidate.key] == pytest.approx(expected, abs=1e-3)
        assert mean[candidate.key] == pytest.approx(expected / len(answer), abs=1e-3)
    model.close()


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_generation_equals_one_at_a_time(arch, tiny_models):
    # Prompts of different lengths and image counts, so the batch really is left-padded.
    prompts = [make_prompt(i, n_images=2 + i % 2, words=3 * i) for i in range(4)]
    # float32 on any device: half precision rounds differently per batch shape, which can flip a greedy token.
    batched_classifier = new_classifier(tiny_models[arch], batch_size=4, max_new_tokens=8, batch_wait_ms=200,
                                        dtype="float32")
    batched = asyncio.run(classify_all(batched_classifier, prompts))
    single_classifier = new_classifier(tiny_models[arch], batch_size=1, max_new_tokens=8, dtype="float32")
    single = asyncio.run(classify_all(single_classifier, prompts))
    assert batched_classifier.batch_sizes == [4] and single_classifier.batch_sizes == [1, 1, 1, 1]
    assert len({r.tokens_in for r in batched}) == len(prompts)  # padding was needed
    assert [(r.text, r.tokens_in, r.tokens_out) for r in batched] == [(r.text, r.tokens_in, r.tokens_out) for r in single]


def test_an_answer_ends_at_its_first_stop_token_also_inside_a_batch(tiny_models):
    model = load_vlm(tiny_models["llava"])
    prompts = [make_prompt(i, words=2 * i) for i in range(3)]
    conversations = [model.conversation(p) for p in prompts]
    inputs = model._encode([model.render(m, add_generation_prompt=True) for m, _ in conversations],
                           [images for _, images in conversations], "left")
    free = model.model.generate(**inputs, generation_config=model._generation_config(6))
    row = free[0, inputs["input_ids"].shape[1]:].tolist()
    # Declare the first prompt's third generated token a stop token: its answer must end there,
    # while the other prompts of the batch go on (their rows are padded after it stops).
    model.stop_ids = model.stop_ids | {row[2]}
    batched = model.generate(prompts, 6)
    n_out = row.index(row[2]) + 1
    assert batched[0].tokens_out == n_out <= 3
    assert batched[0].text == model.tokenizer.decode(row[: n_out - 1], skip_special_tokens=True).strip()
    assert batched == [model.generate([p], 6)[0] for p in prompts]


# ------------------------------------------------------------------------ errors


def test_missing_checkpoint_directory_is_a_clear_error_without_network(tmp_path, small_tree, no_network):
    missing = tmp_path / "no-such-model"
    spec = f"hf:{missing}"
    registry = plugins.load_registry()
    config = RunConfig(benchmark="folder", data_root=small_tree, categories=["tile"], models=[spec],
                       results_dir=tmp_path / "results")
    with pytest.raises(HarnessError, match=str(missing)):
        Run(config, registry)
    assert not no_network and not (tmp_path / "results").exists()


def test_hub_model_not_in_cache_says_how_to_download(tmp_path, monkeypatch, no_network):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HarnessError) as error:
        new_classifier(Path("acme/never-downloaded-vlm"))
    assert "acme/never-downloaded-vlm" in str(error.value) and "huggingface-cli download" in str(error.value)
    # Loading it directly (past that check) fails just as clearly, still without the network.
    from harness_hf import vlm

    with pytest.raises(HarnessError, match="acme/never-downloaded-vlm"):
        vlm.LocalVLM(Checkpoint("acme/never-downloaded-vlm", tmp_path))
    assert not no_network


def test_directory_without_weights_fails_every_request_with_the_path(tiny_models, tmp_path, no_network):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["llava"], broken, ignore=shutil.ignore_patterns("*.safetensors"))
    classifier = new_classifier(broken)
    outcomes = asyncio.run(_gather_errors(classifier, [make_prompt(0), make_prompt(1)]))
    assert all(isinstance(o, HarnessError) and str(broken) in str(o) for o in outcomes)
    assert not no_network


async def _gather_errors(classifier, prompts):
    try:
        return await asyncio.gather(*(classifier.classify(p) for p in prompts), return_exceptions=True)
    finally:
        await classifier.aclose()


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no config.json"):
        new_classifier(tmp_path / "empty")


def test_missing_torch_gives_a_pip_hint(monkeypatch, tiny_models):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    with pytest.raises(HarnessError, match=r"pip install 'anomaly-harness\[hf\]'"):
        new_classifier(tiny_models["llava"])


# ------------------------------------------------------------------------ options and parts


def test_device_and_dtype_auto_resolve(tiny_models):
    described = new_classifier(tiny_models["llava"]).describe()
    if torch.cuda.is_available():
        assert described["device"] == "cuda" and described["dtype"] in ("bfloat16", "float16")
    else:
        assert described["device"] == "cpu" and described["dtype"] == "float32"


def test_options_defaults_and_validation():
    options = HFOptions()
    assert (options.device, options.dtype, options.mode) == ("auto", "auto", "generate")
    assert (options.max_new_tokens, options.batch_size, options.max_image_side) == (16, 4, 448)
    assert options.concurrency == 2 * options.batch_size and options.trust_remote_code is False
    assert HFOptions(batch_size=16).concurrency == 32  # the dispatcher keeps batches full by default
    assert HFOptions(batch_size=16, concurrency=3).concurrency == 3
    for bad in ({"device": "gpu"}, {"mode": "sample"}, {"batch_size": 0}, {"dtype": "int8"}, {"temperature": 1}):
        with pytest.raises(ValueError):
            HFOptions(**bad)


def test_system_message_is_merged_when_the_template_has_no_system_role(tiny_models):
    llava, qwen = load_vlm(tiny_models["llava"]), load_vlm(tiny_models["qwen2_vl"])
    assert llava.system_role is False and qwen.system_role is True
    messages, images = llava.conversation(make_prompt(0))
    assert [m["role"] for m in messages] == ["user"] and len(images) == 2
    text = llava.render(messages, add_generation_prompt=True)
    assert text.startswith("USER: You are an expert in industrial visual inspection.\n\nThis is the reference image:")
    assert text.count("<image>") == 2 and text.endswith("ASSISTANT:")
    qwen_text = qwen.render(qwen.conversation(make_prompt(0))[0], add_generation_prompt=True)
    assert qwen_text.startswith("<|im_start|>system\nYou are an expert")


def test_merge_system_messages_keeps_order():
    from harness_hf.vlm import merge_system_messages

    merged = merge_system_messages([
        {"role": "system", "content": [{"type": "text", "text": "Be precise. "}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "crack"}]},
    ])
    assert merged == [
        {"role": "user", "content": [{"type": "text", "text": "Be precise.\n\n"}, {"type": "image"},
                                     {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "crack"}]},
    ]


# ------------------------------------------------------------------------ batching


def test_micro_batcher_fills_batches_and_isolates_failures():
    def run_batch(items):
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    batcher = MicroBatcher(run_batch, max_batch=4, max_wait_s=0.05)

    async def main():
        results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
        await batcher.aclose()
        return results

    results = asyncio.run(main())
    assert results[:3] == [0, 10, 20] and isinstance(results[3], ValueError) and results[4:] == [40, 50]
    assert batcher.batch_sizes == [4, 2]


def test_micro_batcher_skips_requests_whose_caller_gave_up():
    ran = []

    def run_batch(items):
        ran.extend(items)
        return items

    batcher = MicroBatcher(run_batch, max_batch=8, max_wait_s=0.05)

    async def main():
        doomed = asyncio.create_task(batcher.submit("doomed"))
        kept = asyncio.create_task(batcher.submit("kept"))
        await asyncio.sleep(0)
        doomed.cancel()
        result = await kept
        await batcher.aclose()
        return result

    assert asyncio.run(main()) == "kept" and ran == ["kept"]


def test_a_device_that_is_not_there_fails_at_setup(tiny_models):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(HarnessError, match="no CUDA device"):
        new_classifier(tiny_models["llava"], device="cuda")
