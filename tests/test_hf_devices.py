"""The ``hf`` plugin's placement options, shared-prompt option scoring, and memory release, on tiny VLMs.

The models are the tiny random LLaVA, Qwen2-VL and Idefics3 of tests/tiny_vlms.py,
saved and loaded back through the plugin. There is no GPU here: ``device_map``
is exercised with the cpu as its only device (one device map value, or an
explicit map of every top-level module), which runs transformers' and
accelerate's placement path but not a model split across GPUs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the hf plugin needs torch: pip install 'anomaly-harness[hf]'")
pytest.importorskip("transformers", reason="the hf plugin needs transformers: pip install 'anomaly-harness[hf]'")

from harness.errors import HarnessError  # noqa: E402
from harness.options import validate_options  # noqa: E402
from harness.types import ClassInfo  # noqa: E402

from harness_hf import HFClassifier, HFOptions, scoring  # noqa: E402
from harness_hf.checkpoint import Checkpoint  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_vlms  # noqa: E402
from test_hf import make_prompt  # noqa: E402

ARCHS = list(tiny_vlms.ARCHITECTURES)
needs_accelerate = pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers places a model by device_map only with accelerate (in the hf extra), not installed here",
)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return tiny_vlms.build_all(tmp_path_factory.mktemp("tiny-vlms"))


def load_vlm(model_dir: Path, **placement):
    from harness_hf import vlm

    return vlm.LocalVLM(Checkpoint(str(model_dir), model_dir), device="cpu", dtype="float32", **placement)


def varied_prompts():
    """Prompts of different lengths, image counts and candidate sets (multi-token names among them)."""
    prompts = [make_prompt(i, n_images=1 + i % 3, words=2 * i) for i in range(4)]
    prompts[1].candidates.append(ClassInfo("broken_large", "broken large"))
    del prompts[2].candidates[0]
    return prompts


# ------------------------------------------------------------------------ option scoring


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prompt_scoring_equals_scoring_every_candidate_in_full(arch, tiny_models):
    model = load_vlm(tiny_models[arch])
    prompts = varied_prompts()
    # The shared path really is taken for every prompt (no prompt falls back to the full one).
    assert all(scoring._plan(model, p).answers is not None for p in prompts)
    batched = model.score_batch(prompts)
    for prompt, shared in zip(prompts, batched):
        reference = scoring.score_unshared(model, prompt)
        assert set(shared.scores) == {c.key for c in prompt.candidates}
        assert shared.scores == pytest.approx(reference.scores, abs=1e-4, rel=1e-5)
        assert shared.tokens_in == reference.tokens_in
    # A prompt scored alone gets the same scores as inside the batch; per-token means agree too.
    assert model.score(prompts[1]).scores == pytest.approx(batched[1].scores, abs=1e-4)
    assert model.score(prompts[1], "mean").scores == pytest.approx(
        scoring.score_unshared(model, prompts[1], "mean").scores, abs=1e-4)
    model.close()


@pytest.mark.parametrize("arch", ARCHS)
def test_images_are_encoded_once_per_prompt_not_once_per_candidate(arch, tiny_models):
    model = load_vlm(tiny_models[arch])
    vision = next(module for name, module in model.model.model.named_children()
                  if name in ("vision_tower", "visual", "vision_model"))
    seen = []

    def count_inputs(module, args, kwargs, output):  # the pixels (or patches) the vision encoder is given
        pixels = next(v for v in [*args, *kwargs.values()] if isinstance(v, torch.Tensor) and v.is_floating_point())
        seen.append(pixels.shape[0])

    hook = vision.register_forward_hook(count_inputs, with_kwargs=True)
    prompt = make_prompt(0, n_images=2)
    model.score(prompt)
    shared = list(seen)
    seen.clear()
    scoring.score_unshared(model, prompt)
    hook.remove()
    assert len(shared) == 1 and seen == [shared[0] * len(prompt.candidates)]
    model.close()


# --------------------------------------------------------------------------- device_map


@needs_accelerate
@pytest.mark.parametrize("arch", ARCHS)
def test_device_maps_load_and_answer_as_before(arch, tiny_models):
    plain = load_vlm(tiny_models[arch])
    prompts = [make_prompt(i, words=i) for i in range(2)]
    expected_text = plain.generate(prompts, 6)
    expected_scores = [s.scores for s in plain.score_batch(prompts)]
    top = [f"model.{name}" for name, _ in plain.model.model.named_children()] + ["lm_head"]
    plain.close()
    for device_map in ("cpu", {module: "cpu" for module in top}):
        placed = load_vlm(tiny_models[arch], device_map=device_map, attn_implementation="eager")
        assert placed.device == "cpu" and placed.info()["attn_implementation"] == "eager"
        assert placed.generate(prompts, 6) == expected_text
        for scored, expected in zip(placed.score_batch(prompts), expected_scores):
            # eager and sdpa attention round differently
            assert scored.scores == pytest.approx(expected, abs=1e-4)
        placed.close()


@needs_accelerate
def test_provenance_records_placement_and_attention(tiny_models):
    classifier = HFClassifier(str(tiny_models["llava"]), HFOptions(device_map="cpu", attn_implementation="sdpa",
                                                                   mode="score"))
    before = classifier.describe()
    assert before["device"] == "set by device_map" and before["device_map"] == "cpu" and before["dtype"] == "float32"
    asyncio.run(_classify_then_describe(classifier))


async def _classify_then_describe(classifier):
    response = await classifier.classify(make_prompt(0))
    assert response.option_scores
    described = classifier.describe()
    assert described["input_device"] == "cpu" and described["devices"] == {"": "cpu"}
    assert described["attn_implementation"] == "sdpa" and described["loaded_dtype"] == "float32"
    await classifier.aclose()


@needs_accelerate
def test_an_explicit_map_that_does_not_fit_the_model_is_refused_before_loading(tiny_models):
    with pytest.raises(HarnessError, match=r"does not have: model\.nope .*model\.vision_tower"):
        load_vlm(tiny_models["llava"], device_map={"model.nope": "cpu", "": "cpu"})
    with pytest.raises(HarnessError, match=r"gives no device to lm_head\.weight"):
        load_vlm(tiny_models["llava"], device_map={"model": "cpu"})


def test_a_device_map_without_accelerate_says_what_to_install(tiny_models, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "accelerate" else real_find_spec(name, *a))
    with pytest.raises(HarnessError, match=r"device_map 'auto' needs the accelerate package.*anomaly-harness\[hf\]"):
        HFClassifier(str(tiny_models["llava"]), HFOptions(device_map="auto"))


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize("values, message", [
    ({"attn_implementation": "flash"}, r"attn_implementation: Input should be 'eager', 'sdpa', 'flex_attention', "
                                       r"'flash_attention_2' or 'flash_attention_3'"),
    ({"device_map": "gpu"}, r"device_map: Value error, device_map 'gpu' is not one of auto, balanced, "
                            r"balanced_low_0, sequential, a device \(cpu, mps, cuda, cuda:N or a GPU index N\)"),
    ({"device_map": {"lm_head": "disk"}}, r"device_map\['lm_head'\] = 'disk' is not a device.*disk offload"),
    ({"device_map": "{not json"}, r"device_map is not a valid JSON object"),
    ({"device_map": {}}, r"device_map is an empty map"),
    ({"max_memory": {"0": "20GiB"}}, r"max_memory only applies with device_map = one of auto"),
    ({"device_map": "auto", "max_memory": {"0": "lots"}}, r"max_memory\['0'\] = 'lots' is not a size"),
    ({"device_map": "auto", "max_memory": {"gpu0": "1GiB"}}, r"max_memory key 'gpu0' = 'gpu0' is not a device"),
    ({"device_map": "auto", "device": "cpu"}, r"set device \('cpu'\) or device_map \('auto'\), not both"),
])
def test_bad_placement_options_are_clear_errors(values, message):
    with pytest.raises(HarnessError, match=r"invalid options for model 'hf:x'.*" + message):
        validate_options(HFOptions, values, "model 'hf:x'")


def test_placement_options_are_normalised():
    options = HFOptions(device_map='{"model": 0, "lm_head": "cuda:1"}', max_memory=None)
    assert options.device_map == {"model": "cuda:0", "lm_head": "cuda:1"}
    options = HFOptions(device_map="balanced", max_memory={"cuda:1": "10GiB", "cpu": 2**30, 0: "5 GB"})
    assert options.max_memory == {"1": "10GiB", "cpu": 2**30, "0": "5 GB"}
    from harness_hf.placement import from_pretrained_kwargs

    assert from_pretrained_kwargs(options.device_map, options.max_memory, None) == {
        "device_map": "balanced", "max_memory": {1: "10GiB", "cpu": 2**30, 0: "5 GB"}}
    assert HFOptions().device_map is None and HFOptions().attn_implementation is None


def test_flash_attention_and_missing_gpus_fail_at_setup(tiny_models):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(HarnessError, match="attn_implementation 'flash_attention_2' runs only on CUDA GPUs"):
        HFClassifier(str(tiny_models["llava"]), HFOptions(attn_implementation="flash_attention_2", device="cpu"))
    if importlib.util.find_spec("accelerate") is not None:
        with pytest.raises(HarnessError, match="no CUDA device"):
            HFClassifier(str(tiny_models["llava"]), HFOptions(device_map={"": "cuda:1"}))


# ------------------------------------------------------------------------------ closing


def test_closing_lets_the_model_be_garbage_collected(tiny_models):
    classifier = HFClassifier(str(tiny_models["qwen2_vl"]), HFOptions(device="cpu", mode="score"))

    async def main():
        await classifier.classify(make_prompt(0))
        model = weakref.ref(classifier._vlm.model)
        processor = weakref.ref(classifier._vlm.processor)
        assert model() is not None
        await classifier.aclose()
        # Gone at once: close collects reference cycles itself (on a GPU, before emptying the cache).
        assert model() is None and processor() is None

    asyncio.run(main())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_closing_hands_the_gpu_memory_back(tiny_models):
    # What the allocator holds for tensors, before loading and after closing, with cuBLAS's per-stream
    # workspaces (which outlive any model) cleared both times: a model or cache left behind shows here.
    def settled() -> tuple[int, int]:
        torch.cuda.synchronize()
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()
        return torch.cuda.memory_allocated(), torch.cuda.memory_reserved()

    allocated_before, reserved_before = settled()
    classifier = HFClassifier(str(tiny_models["qwen2_vl"]), HFOptions(device="cuda", mode="score"))

    async def main():
        await classifier.classify(make_prompt(0))
        assert torch.cuda.memory_allocated() > allocated_before  # the model was on the GPU
        await classifier.aclose()

    asyncio.run(main())
    allocated_after, reserved_after = settled()
    assert allocated_after == allocated_before
    assert reserved_after <= reserved_before
