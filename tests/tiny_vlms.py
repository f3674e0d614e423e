"""Tiny randomly initialised vision-language models, built offline, for testing the ``hf`` plugin.

No real VLM weights are reachable from our machines, so the ``hf`` plugin is
tested on models that are real in every respect but size: a real architecture
(LLaVA, Qwen2-VL, Idefics3/SmolVLM) built from a config with tiny hidden sizes
and one or two layers, a byte-level BPE tokenizer trained here with the
``tokenizers`` library (on a small corpus, with the special and image tokens the
architecture's processor needs), wrapped in the tokenizer class transformers
loads for that architecture, a chat template, and a processor assembled from
the architecture's PIL image processor and that tokenizer. Everything is saved
with ``save_pretrained`` and is then loaded back through exactly the path a
downloaded checkpoint takes (``AutoProcessor`` + ``AutoModelForImageTextToText``
with ``local_files_only``).

The weights are random, so generated text is gibberish; that is fine for
testing plumbing (batching, padding, token counts, option scoring, errors).

    python tests/tiny_vlms.py OUT_DIR     # build all of them into OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

#: The architectures `build` knows, in a stable order.
ARCHITECTURES = ("llava", "qwen2_vl", "idefics3")

# A small corpus in the domain of the prompts, so common words get their own tokens
# and prompts stay short. Any text still tokenizes: the tokenizer is byte-level.
_CORPUS = [
    "You are an expert in industrial visual inspection. You examine images of manufactured parts "
    "and classify their defects precisely, following the answer format you are given.",
    "This is a normal reference with no defect. This is the query image. An anomaly detector flagged "
    "this part as possibly defective. This is the same query image with the region the detector found "
    "anomalous outlined in red. The red line is drawn by the detector and is not part of the object.",
    "Category: tile, bottle, cable, capsule, carpet, grid, hazelnut, leather, metal nut, pill, screw, "
    "toothbrush, transistor, wood, zipper.",
    "Candidate classes: crack, glue strip, gray stroke, oil, rough, scratch, hole, cut, color, "
    "contamination, broken large, broken small, fabric interior, missing part, bent, flip, print.",
    "Compare the query with the normal reference, paying attention to the outlined region, and decide "
    "which candidate class describes the query image best. Answer with exactly one class name from the "
    "list above, written as it appears there, and nothing else.",
    "USER: ASSISTANT: User: Assistant: system user assistant 0 1 2 3 4 5 6 7 8 9",
]

_TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False)


def _train_bpe(special_tokens: list[str], vocab_size: int = 700):
    """A byte-level BPE trained on `_CORPUS`, with ``special_tokens`` first in the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


def _vocab_and_merges(tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _padded_vocab(tokenizer) -> int:
    return (len(tokenizer) + 63) // 64 * 64


def _save(out: Path, model, processor) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------- LLaVA

# LLaVA-1.5's conversation format. Like several real templates it has no system role: it
# raises on one, so the plugin must fold the system text into the first user turn.
_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}</s>{% endif %}{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_llava(out: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import processors
    from transformers import (
        CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    bpe = _train_bpe(["<unk>", "<s>", "</s>", "<pad>", "<image>"])
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bpe.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_size, patch = 32, 8
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": image_size},
                                             crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=_LLAVA_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=patch),
        text_config=LlamaConfig(vocab_size=_padded_vocab(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                **_TINY_TEXT),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    _set_generation_tokens(model, tokenizer, [tokenizer.eos_token_id])
    return _save(out, model, processor)


# -------------------------------------------------------------------------------- Qwen2-VL

_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]


def build_qwen2_vl(out: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import AddedToken
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab, merges = _vocab_and_merges(_train_bpe(_QWEN_SPECIALS))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>")
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in _QWEN_SPECIALS])
    # 28 x 28 pixels make one image token (14-pixel patches, merged 2 x 2): at most 16 tokens an image.
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28, "longest_edge": 16 * 28 * 28})
    processor = _qwen_processor(image_processor, tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=_padded_vocab(tokenizer), rope_parameters={
            "rope_type": "default", "mrope_section": [4, 2, 2], "rope_theta": 10000.0},
            bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), **_TINY_TEXT),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=_TINY_TEXT["hidden_size"], num_heads=2,
                           mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    _set_generation_tokens(model, tokenizer, [ids("<|im_end|>"), ids("<|endoftext|>")])
    _save(out, model, processor)
    _write_video_config(out)
    return out


def _qwen_processor(image_processor, tokenizer):
    """Qwen2-VL's processor, with its video processor when this install has torchvision.

    transformers' video processors need torchvision. Without it the processor is
    built without one (a subclass that declares no video attribute, under the
    original class name) and the video processor's config is written by hand in
    `_write_video_config`, so the saved model loads the ordinary way wherever
    torchvision is installed, and through the ``hf`` plugin's image-only
    fallback where it is not.
    """
    from transformers import Qwen2VLProcessor

    try:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    except ImportError:
        attributes = [a for a in Qwen2VLProcessor.get_attributes() if a != "video_processor"]
        image_only = type("Qwen2VLProcessor", (Qwen2VLProcessor,),
                          {"get_attributes": classmethod(lambda cls: list(attributes))})
        return image_only(image_processor=image_processor, tokenizer=tokenizer, chat_template=_CHATML_TEMPLATE)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                            video_processor=Qwen2VLVideoProcessor(), chat_template=_CHATML_TEMPLATE)


def _write_video_config(out: Path) -> None:
    path = out / "video_preprocessor_config.json"
    if not path.exists():
        path.write_text(json.dumps({
            "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor",
            "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "size": {"shortest_edge": 28 * 28, "longest_edge": 16 * 28 * 28},
        }, indent=2))


# ---------------------------------------------------------------------- Idefics3 / SmolVLM

_SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_idefics3(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.gpt2.tokenization_gpt2 import GPT2Tokenizer
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    vocab, merges = _vocab_and_merges(_train_bpe(specials))
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                              eos_token="<end_of_utterance>", pad_token="<|endoftext|>")
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tile, patch, scale = 32, 8, 2
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile})
    image_seq_len = (tile // patch) ** 2 // scale**2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len,
                                  chat_template=_SMOLVLM_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=tile, patch_size=patch),
        text_config=dict(model_type="llama", vocab_size=_padded_vocab(tokenizer), bos_token_id=ids("<|im_start|>"),
                         eos_token_id=ids("<end_of_utterance>"), pad_token_id=ids("<|endoftext|>"), **_TINY_TEXT),
        image_token_id=ids("<image>"), scale_factor=scale, pad_token_id=ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    _set_generation_tokens(model, tokenizer, [ids("<end_of_utterance>")])
    return _save(out, model, processor)


def _set_generation_tokens(model, tokenizer, eos_ids: list[int]) -> None:
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id


BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "llava": build_llava,
    "qwen2_vl": build_qwen2_vl,
    "idefics3": build_idefics3,
}


def build(arch: str, out: Path, seed: int = 0) -> Path:
    """Build the tiny ``arch`` model into ``out`` (a directory) and return it."""
    return BUILDERS[arch](Path(out), seed)


def build_all(root: Path, seed: int = 0) -> dict[str, Path]:
    """Build every architecture into ``root/<arch>``."""
    return {arch: build(arch, Path(root) / arch, seed) for arch in ARCHITECTURES}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/tiny_vlms.py OUT_DIR")
    for arch, path in build_all(Path(sys.argv[1])).items():
        print(f"{arch}: {path}")
