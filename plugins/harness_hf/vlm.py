"""A local vision-language model: loading, chat templates, batched greedy generation, option scoring.

This module imports torch and transformers; `harness_hf.classifier` imports it
only when an ``hf`` model is first used. Every method here is synchronous and
is called from one worker thread at a time (see `harness_hf.batching`).

Two ways to answer a prompt:

- `LocalVLM.generate`: greedy decoding for a batch of prompts, left-padded so
  every prompt's last token sits at the same position and generation continues
  all of them in step. Padding is masked, so a prompt's answer does not depend
  on what it was batched with (up to floating-point rounding).
- `LocalVLM.score_batch`: the log-likelihood of each candidate class name as
  the assistant's answer; each prompt and its images are encoded once and every
  candidate is scored from that prompt's cached keys and values. See
  `harness_hf.scoring` for what exactly is scored and why it is summed.

Placement: without a ``device_map`` the model is loaded, then moved to one
device. With one, transformers (through accelerate) puts each module where the
map says as it loads, possibly across several GPUs, and the model is not moved
again; inputs go to the device of the input embeddings.
"""

from __future__ import annotations

import copy
import gc
import importlib.util
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

from harness_hf import scoring
from harness_hf.checkpoint import Checkpoint
from harness_hf.placement import from_pretrained_kwargs, map_problems
from harness_hf.scoring import OptionScores

__all__ = ["Generation", "LocalVLM", "OptionScores", "merge_system_messages"]

# Text used to test whether a chat template renders a system message.
_SYSTEM_PROBE = "SYSTEM-PROBE-7f3a"


@dataclass
class Generation:
    """One generated answer: the text up to the end-of-sequence token, and token counts."""

    text: str
    tokens_in: int  # prompt tokens, image tokens included, padding excluded
    tokens_out: int  # generated tokens, up to and including the end-of-sequence token


class LocalVLM:
    """A processor and a model loaded from a checkpoint on disk, never from the network."""

    def __init__(self, checkpoint: Checkpoint, *, device: str = "cpu", dtype: str = "float32",
                 max_image_side: int | None = None, trust_remote_code: bool = False,
                 device_map: str | dict[str, str] | None = None, max_memory: dict[str, str | int] | None = None,
                 attn_implementation: str | None = None):
        """Load ``checkpoint`` in ``dtype`` (a torch dtype name) onto ``device`` (resolved: cpu, cuda, cuda:N,
        mps), or, with a ``device_map`` (see `harness_hf.placement`), where the map puts each module."""
        self.checkpoint = checkpoint
        self.dtype = getattr(torch, dtype)
        self.max_image_side = max_image_side
        self.device_map = device_map
        loading = from_pretrained_kwargs(device_map, max_memory, attn_implementation)
        with hub_offline():
            if isinstance(device_map, dict):
                _check_map(checkpoint, device_map, trust_remote_code)
            self.processor = _load_processor(checkpoint, trust_remote_code)
            model = _load_model(checkpoint, self.dtype, trust_remote_code, loading)
            self.model = (model if device_map is not None else model.to(device)).eval()
        del model
        # With a device map, the modules may be on several devices: the inputs start where the tokens are embedded.
        self.device = str(self.model.get_input_embeddings().weight.device) if device_map is not None else device
        self.devices = self._devices_used()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise HarnessError(f"the processor of {checkpoint.source} has no tokenizer; the hf plugin needs one")
        self._chat_template = _chat_template(self.processor, self.tokenizer, checkpoint)
        self.stop_ids = _stop_ids(self.model, self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            # Batches need a pad token; padding is masked out, so which token it is does not matter.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.convert_ids_to_tokens(min(self.stop_ids))
        self.system_role = self._renders_system_messages()

    def _devices_used(self) -> dict[str, str]:
        """Module name -> device, as transformers placed it (``hf_device_map``), or {"": device}."""
        placed = getattr(self.model, "hf_device_map", None)
        if not placed:
            return {"": self.device}
        # accelerate names a GPU by its index
        return {module: f"cuda:{d}" if isinstance(d, int) else str(d) for module, d in placed.items()}

    def info(self) -> dict[str, Any]:
        """What was loaded, for the run's provenance."""
        return {
            "model_class": type(self.model).__name__,
            "loaded_dtype": str(self.model.dtype).removeprefix("torch."),
            "input_device": self.device,
            "devices": self.devices,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
            "processor_class": type(self.processor).__name__,
            "system_role": "native" if self.system_role else "merged into the first user turn",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def close(self) -> None:
        """Drop the model, processor and tokenizer, and hand their GPU memory back to the device.

        torch's caching allocator keeps freed blocks for reuse by this process;
        ``empty_cache`` returns them, but only blocks no tensor holds any more,
        so reference cycles (accelerate's hooks, the model's own submodule
        references) are collected first.
        """
        self.model = self.processor = self.tokenizer = None
        gc.collect()
        if any(device.startswith("cuda") for device in self.devices.values()) and torch.cuda.is_available():
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
        if not self.adds_special_tokens(texts[0]):
            kwargs["add_special_tokens"] = False
        return self.processor(**kwargs).to(self.device, self.dtype)

    def adds_special_tokens(self, text: str) -> bool:
        """False for a rendered prompt that already starts with the BOS token.

        A template that writes the BOS token itself must not get a second one
        from the tokenizer (what processor.apply_chat_template(tokenize=True) does too).
        """
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

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

    def score_batch(self, prompts: list[Prompt], normalization: str = "sum") -> list[OptionScores]:
        """Log-likelihood of each candidate's name as the answer, for ``prompts`` together (see `harness_hf.scoring`)."""
        return scoring.score_shared(self, prompts, normalization) if prompts else []

    def score(self, prompt: Prompt, normalization: str = "sum") -> OptionScores:
        """`score_batch` for one prompt."""
        (scored,) = self.score_batch([prompt], normalization)
        return scored


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


def _load_model(checkpoint: Checkpoint, dtype: torch.dtype, trust_remote_code: bool, loading: dict[str, Any]):
    try:
        return AutoModelForImageTextToText.from_pretrained(
            checkpoint.source, local_files_only=True, dtype=dtype, trust_remote_code=trust_remote_code, **loading
        )
    except (OSError, ValueError, KeyError) as error:
        raise HarnessError(_load_failure("model", checkpoint, error)) from error


def _check_map(checkpoint: Checkpoint, device_map: dict[str, str], trust_remote_code: bool) -> None:
    """Check an explicit device map against the model's modules before any weight is read.

    The model is built on the meta device (shapes, no memory) from its config.
    """
    try:
        config = AutoConfig.from_pretrained(checkpoint.source, local_files_only=True, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            skeleton = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise HarnessError(_load_failure("model", checkpoint, error)) from error
    problems = map_problems(device_map, [name for name, _ in skeleton.named_modules()],
                            [name for name, _ in skeleton.named_parameters()])
    if problems:
        raise HarnessError(f"device_map does not fit {checkpoint.source} ({type(skeleton).__name__}): {'; '.join(problems)}")


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
