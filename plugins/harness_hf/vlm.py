"""A local vision-language model: loading, chat templates, batched greedy generation, option scoring.

This module imports torch and transformers; `harness_hf.classifier` imports it
only when an ``hf`` model is first used. Every method here is synchronous and
is called from one worker thread at a time (see `harness_hf.batching`).

Two ways to answer a prompt:

- `LocalVLM.generate`: greedy decoding for a batch of prompts, left-padded so
  every prompt's last token sits at the same position and generation continues
  all of them in step. Padding is masked, so a prompt's answer does not depend
  on what it was batched with (up to floating-point rounding).
- `LocalVLM.score`: the log-likelihood of each candidate class name as the
  assistant's answer, for all candidates of a prompt in one right-padded forward
  pass. See `LocalVLM.score` for what exactly is scored and why it is summed.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from harness.errors import HarnessError
from harness.types import ImagePart, Prompt
from harness.visual import resize_for_prompt

from harness_hf.checkpoint import Checkpoint

# Text used to test whether a chat template renders a system message.
_SYSTEM_PROBE = "SYSTEM-PROBE-7f3a"


@dataclass
class Generation:
    """One generated answer: the text up to the end-of-sequence token, and token counts."""

    text: str
    tokens_in: int  # prompt tokens, image tokens included, padding excluded
    tokens_out: int  # generated tokens, up to and including the end-of-sequence token


@dataclass
class OptionScores:
    """One scored prompt: candidate key -> log-likelihood score (higher is better)."""

    scores: dict[str, float]
    tokens_in: int


class LocalVLM:
    """A processor and a model loaded from a checkpoint on disk, never from the network."""

    def __init__(self, checkpoint: Checkpoint, *, device: str = "cpu", dtype: str = "float32",
                 max_image_side: int | None = None, trust_remote_code: bool = False):
        """Load ``checkpoint`` onto ``device`` (resolved: cpu, cuda, cuda:N, mps) in ``dtype`` (a torch dtype name)."""
        self.checkpoint = checkpoint
        self.device = device
        self.dtype = getattr(torch, dtype)
        self.max_image_side = max_image_side
        with hub_offline():
            self.processor = _load_processor(checkpoint, trust_remote_code)
            self.model = _load_model(checkpoint, self.dtype, trust_remote_code).to(device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise HarnessError(f"the processor of {checkpoint.source} has no tokenizer; the hf plugin needs one")
        self._chat_template = _chat_template(self.processor, self.tokenizer, checkpoint)
        self.stop_ids = _stop_ids(self.model, self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            # Batches need a pad token; padding is masked out, so which token it is does not matter.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.convert_ids_to_tokens(min(self.stop_ids))
        self.system_role = self._renders_system_messages()

    def info(self) -> dict[str, Any]:
        """What was loaded, for the run's provenance."""
        return {
            "model_class": type(self.model).__name__,
            "loaded_dtype": str(self.model.dtype).removeprefix("torch."),
            "processor_class": type(self.processor).__name__,
            "system_role": "native" if self.system_role else "merged into the first user turn",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # --------------------------------------------------------------------------- prompts

    def conversation(self, prompt: Prompt) -> tuple[list[dict[str, Any]], list[Any]]:
        """The prompt as chat-template messages (text and image entries in order), and its images in order."""
        messages, images = [], []
        for message in prompt.messages:
            content = []
            for part in message.parts:
                if isinstance(part, ImagePart):
                    content.append({"type": "image"})
                    images.append(self._image(part.image))
                else:
                    content.append({"type": "text", "text": part.text})
            messages.append({"role": message.role, "content": content})
        if not self.system_role:
            messages = merge_system_messages(messages)
        return messages, images

    def _image(self, image):
        if not isinstance(image, Image.Image):
            image = Image.fromarray(image)
        image = image.convert("RGB") if image.mode != "RGB" else image
        return resize_for_prompt(image, self.max_image_side) if self.max_image_side else image

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(
            messages, chat_template=self._chat_template, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def _renders_system_messages(self) -> bool:
        """True when the chat template renders a system message (many raise on one, or drop it silently)."""
        probe = [
            {"role": "system", "content": [{"type": "text", "text": _SYSTEM_PROBE}]},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ]
        try:
            return _SYSTEM_PROBE in self.render(probe, add_generation_prompt=True)
        except Exception:
            return False

    def _encode(self, texts: list[str], images: list[list[Any]], padding_side: str):
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "padding_side": padding_side, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        # A template that writes the BOS token itself must not get a second one from the tokenizer
        # (what processor.apply_chat_template(tokenize=True) does too).
        bos = self.tokenizer.bos_token
        if bos and texts[0].startswith(bos):
            kwargs["add_special_tokens"] = False
        return self.processor(**kwargs).to(self.device, self.dtype)

    # ------------------------------------------------------------------------ generation

    def generate(self, prompts: list[Prompt], max_new_tokens: int) -> list[Generation]:
        """Greedy answers for ``prompts``, decoded together in one left-padded batch."""
        conversations = [self.conversation(p) for p in prompts]
        texts = [self.render(messages, add_generation_prompt=True) for messages, _ in conversations]
        inputs = self._encode(texts, [images for _, images in conversations], padding_side="left")
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=self._generation_config(max_new_tokens))
        new_tokens = output[:, inputs["input_ids"].shape[1]:].tolist()
        results = []
        for row, n_in in zip(new_tokens, prompt_tokens):
            stop = next((i for i, token in enumerate(row) if token in self.stop_ids), None)
            answer = row if stop is None else row[:stop]
            # After a row's end-of-sequence token, generate only pads it while the others finish.
            n_out = len(row) if stop is None else stop + 1
            text = self.tokenizer.decode(answer, skip_special_tokens=True).strip()
            results.append(Generation(text, int(n_in), n_out))
        return results

    def _generation_config(self, max_new_tokens: int):
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample = False
        config.num_beams = 1
        # Sampling settings a checkpoint ships are meaningless for greedy decoding (and warn).
        config.temperature = config.top_p = config.top_k = None
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        config.eos_token_id = sorted(self.stop_ids)
        config.pad_token_id = self.tokenizer.pad_token_id
        return config

    # --------------------------------------------------------------------------- scoring

    def score(self, prompt: Prompt, normalization: str = "sum") -> OptionScores:
        """Log-likelihood of each candidate's display name as the whole assistant answer.

        For each candidate, the conversation is rendered with the name as the
        assistant's reply, so the scored continuation is exactly what the chat
        template writes after the generation prompt: the name and the
        template's end-of-turn token (anything after the first stop token, such
        as a newline, is not scored). Including the end-of-turn token makes the
        score the log-probability of answering exactly this name and stopping,
        so a name that is a prefix of another ("crack" / "crack edge") is not
        favoured for being short, nor the longer one for continuing it.

        ``normalization="sum"`` (the default) is that total log-probability,
        log P(answer = name): choosing the highest is the exact maximum-likelihood
        choice among the candidates. It is not unfair to longer names here,
        because every name is listed in the prompt: once a name's first token is
        chosen, its remaining tokens are nearly certain and cost little.
        ``"mean"`` divides by the number of scored tokens (end-of-turn token
        included); it no longer measures the probability of the answer, and it
        favours multi-token names, whose easy later tokens raise the average.

        All candidates run in one forward pass, right-padded (every sequence
        starts at position 0; the padding after it cannot affect it), and
        logits are computed only at the positions scored.
        """
        messages, images = self.conversation(prompt)
        prompt_text = self.render(messages, add_generation_prompt=True)
        continuations = []
        for candidate in prompt.candidates:
            answer = {"role": "assistant", "content": [{"type": "text", "text": candidate.name}]}
            full = self.render(messages + [answer], add_generation_prompt=False)
            # A template that renders an answer differently from its generation prompt: score the bare name.
            continuations.append(full[len(prompt_text):] if full.startswith(prompt_text) else candidate.name)

        prompt_ids = self._encode([prompt_text], [images], padding_side="right")["input_ids"][0].tolist()
        inputs = self._encode([prompt_text + c for c in continuations], [images] * len(continuations), "right")
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        ids = inputs["input_ids"]
        spans = [self._answer_span(ids[i, : lengths[i]].tolist(), prompt_ids) for i in range(len(continuations))]

        first = min(start for start, _ in spans)
        last = max(end for _, end in spans)
        # The token at position p is predicted by the logits at p - 1.
        keep = torch.arange(first - 1, last - 1, device=ids.device)
        with torch.inference_mode():
            try:
                logits = self.model(**inputs, logits_to_keep=keep).logits
            except TypeError:  # a model without logits_to_keep: compute all positions, then slice
                logits = self.model(**inputs).logits[:, first - 1 : last - 1]
            log_probs = torch.log_softmax(logits.float(), dim=-1)

        scores = {}
        for i, (candidate, (start, end)) in enumerate(zip(prompt.candidates, spans)):
            targets = ids[i, start:end]
            token_log_probs = log_probs[i, start - first : end - first].gather(-1, targets[:, None]).squeeze(-1)
            total = float(token_log_probs.sum())
            scores[candidate.key] = total / max(1, end - start) if normalization == "mean" else total
            if math.isnan(scores[candidate.key]):
                raise HarnessError(f"the model produced NaN log-probabilities for {candidate.name!r} (dtype {self.dtype})")
        return OptionScores(scores, tokens_in=len(prompt_ids))

    def _answer_span(self, row: list[int], prompt_ids: list[int]) -> tuple[int, int]:
        """[start, end) of the answer tokens in ``row``: after the prompt, up to and including the first stop token."""
        start = 0
        for a, b in zip(row, prompt_ids):
            if a != b:
                break
            start += 1
        # Normally the row starts with the prompt's tokens exactly; if the tokenizer merged the
        # last prompt token with the answer's first, that merged token is scored as answer.
        start = max(1, min(start, len(row) - 1))
        end = len(row)
        for i in range(start, len(row)):
            if row[i] in self.stop_ids:
                end = i + 1
                break
        return start, end


def merge_system_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold system messages into the start of the first user message, for templates without a system role."""
    system = [entry for m in messages if m["role"] == "system" for entry in m["content"]]
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return messages
    if system[-1]["type"] == "text":
        system[-1] = {"type": "text", "text": system[-1]["text"].rstrip() + "\n\n"}
    for i, message in enumerate(rest):
        if message["role"] == "user":
            rest[i] = {"role": "user", "content": system + list(message["content"])}
            return rest
    return [{"role": "user", "content": system}] + rest


# ------------------------------------------------------------------------------ loading

@contextmanager
def hub_offline():
    """huggingface_hub's offline mode while loading: every HTTP request it would make fails instead.

    ``local_files_only`` alone is not enough: huggingface_hub (2.x) may still
    fetch small things, such as a registry it uses to build its User-Agent
    header, even when it reads every model file from the cache.
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _load_model(checkpoint: Checkpoint, dtype: torch.dtype, trust_remote_code: bool):
    try:
        return AutoModelForImageTextToText.from_pretrained(
            checkpoint.source, local_files_only=True, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as error:
        raise HarnessError(_load_failure("model", checkpoint, error)) from error


def _load_processor(checkpoint: Checkpoint, trust_remote_code: bool):
    try:
        return AutoProcessor.from_pretrained(checkpoint.source, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as error:
        fallback = _image_only_processor_class(checkpoint, trust_remote_code)
        if fallback is None:
            raise HarnessError(_load_failure("processor", checkpoint, error)) from error
    try:
        return fallback.from_pretrained(checkpoint.source, local_files_only=True)
    except Exception as error:
        raise HarnessError(_load_failure("processor", checkpoint, error)) from error


def _load_failure(what: str, checkpoint: Checkpoint, error: BaseException) -> str:
    return (
        f"could not load the {what} of {checkpoint.source} from {checkpoint.directory} (local files only; the "
        f"harness never downloads): {type(error).__name__}: {error}"
    )


def _image_only_processor_class(checkpoint: Checkpoint, trust_remote_code: bool):
    """The checkpoint's processor class without its video processor, when that is why loading failed.

    Processors of image-and-video models (Qwen2-VL and kin) hold a video
    processor, and transformers' video processors need torchvision. Without
    torchvision such a processor cannot load at all, although images need none
    of it. The subclass returned here leaves the video processor out; it is used
    only when torchvision is missing. None when this does not apply.
    """
    if importlib.util.find_spec("torchvision") is not None:
        return None
    try:
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        model_type = AutoConfig.from_pretrained(
            checkpoint.source, local_files_only=True, trust_remote_code=trust_remote_code
        ).model_type
        processor_class = getattr(transformers, PROCESSOR_MAPPING_NAMES.get(model_type) or "", None)
    except Exception:
        return None
    if processor_class is None:
        return None
    return without_video_processor(processor_class)


def without_video_processor(processor_class: type) -> type:
    """A subclass of ``processor_class`` that has no video processor (and so needs no torchvision).

    It keeps the class name, so a processor saved from it loads as the original class.
    """
    attributes = [a for a in processor_class.get_attributes() if "video" not in a]
    if len(attributes) == len(processor_class.get_attributes()):
        return processor_class
    return type(processor_class.__name__, (processor_class,), {
        "get_attributes": classmethod(lambda cls: list(attributes)),
        "__doc__": f"{processor_class.__name__} without its video processor (images only).",
    })


def _chat_template(processor, tokenizer, checkpoint: Checkpoint) -> str | None:
    """None to use the processor's own template; the tokenizer's when only it has one."""
    if getattr(processor, "chat_template", None):
        return None
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    raise HarnessError(
        f"{checkpoint.source} has no chat template (neither its processor nor its tokenizer defines one); "
        "the hf plugin needs an instruction-tuned checkpoint that ships one"
    )


def _stop_ids(model, tokenizer) -> set[int]:
    """Token ids that end an answer: the generation config's end-of-sequence ids and the tokenizer's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, (list, tuple)) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise HarnessError("the model defines no end-of-sequence token; cannot tell where an answer ends")
    return ids
