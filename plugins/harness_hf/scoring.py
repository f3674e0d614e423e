"""Option scoring: the log-likelihood of each candidate class name as the assistant's whole answer.

What is scored (the same in both ways below): for each candidate, the
conversation is rendered with the name as the assistant's reply, and the scored
continuation is exactly what the chat template writes after the generation
prompt: the name and the template's end-of-turn token (anything after the first
stop token, such as a newline, is not scored). Including the end-of-turn token
makes the score the log-probability of answering exactly this name and
stopping, so a name that is a prefix of another ("crack" / "crack edge") is not
favoured for being short, nor the longer one for continuing it.

``normalization="sum"`` (the default) is that total log-probability, log
P(answer = name): choosing the highest is the exact maximum-likelihood choice
among the candidates. It is not unfair to longer names here, because every
name is listed in the prompt: once a name's first token is chosen, its
remaining tokens are nearly certain and cost little. ``"mean"`` divides by the
number of scored tokens (end-of-turn token included); it no longer measures the
probability of the answer, and it favours multi-token names, whose easy later
tokens raise the average.

Two ways to compute it:

- `score_shared` (what the plugin uses): a batch of prompts, images included,
  runs once, right-padded, keeping its keys and values; then every candidate
  answer of every prompt runs in one more forward pass on top of its prompt's
  cache. The images and the prompt are encoded once per prompt, not once per
  candidate.
- `score_unshared`: every candidate's full sequence (prompt, images and
  answer) in one forward pass, one prompt at a time. It is the reference the
  shared way is tested against, and the way for a prompt whose answer would
  tokenize differently after the prompt than on its own (a tokenizer that
  merges the prompt's last characters with the answer's first), which a shared
  prompt cache cannot express.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from harness.errors import HarnessError
from harness.types import Prompt

#: A loaded `harness_hf.vlm.LocalVLM` (not imported here: that module imports this one).
LocalVLM = Any


@dataclass
class OptionScores:
    """One scored prompt: candidate key -> log-likelihood score (higher is better)."""

    scores: dict[str, float]
    tokens_in: int


@dataclass
class _Plan:
    """A prompt ready to score: its rendering, images, and each candidate's answer tokens (None: not shareable)."""

    prompt: Prompt
    messages: list[dict[str, Any]]
    images: list[Any]
    text: str
    answers: list[list[int]] | None


def continuations(vlm: LocalVLM, messages: list[dict[str, Any]], prompt_text: str, prompt: Prompt) -> list[str]:
    """What the chat template writes after the generation prompt when each candidate is the answer."""
    texts = []
    for candidate in prompt.candidates:
        answer = {"role": "assistant", "content": [{"type": "text", "text": candidate.name}]}
        full = vlm.render(messages + [answer], add_generation_prompt=False)
        # A template that renders an answer differently from its generation prompt: score the bare name.
        texts.append(full[len(prompt_text):] if full.startswith(prompt_text) else candidate.name)
    return texts


def _finish(vlm: LocalVLM, prompt: Prompt, totals: list[float], lengths: list[int], normalization: str,
            tokens_in: int) -> OptionScores:
    scores = {}
    for candidate, total, n in zip(prompt.candidates, totals, lengths):
        scores[candidate.key] = total / max(1, n) if normalization == "mean" else total
        if math.isnan(scores[candidate.key]):
            raise HarnessError(f"the model produced NaN log-probabilities for {candidate.name!r} (dtype {vlm.dtype})")
    return OptionScores(scores, tokens_in=tokens_in)


def _forward_keeping(model, inputs: dict[str, Any], keep: torch.Tensor, **kwargs):
    """The forward pass with logits at the positions ``keep`` only (all of them for a model that cannot)."""
    try:
        output = model(**inputs, logits_to_keep=keep, **kwargs)
        return output, output.logits
    except TypeError:  # a model without logits_to_keep: compute all positions, then select
        output = model(**inputs, **kwargs)
        return output, output.logits[:, keep.to(output.logits.device)]


# --------------------------------------------------------------------------- shared prompt

def score_shared(vlm: LocalVLM, prompts: list[Prompt], normalization: str = "sum") -> list[OptionScores]:
    """Scores for ``prompts``: each prompt (with its images) encoded once, all candidates from its cache."""
    plans = [_plan(vlm, prompt) for prompt in prompts]
    results: list[OptionScores | None] = [None] * len(prompts)
    shareable = [i for i, plan in enumerate(plans) if plan.answers is not None]
    for i, plan in enumerate(plans):
        if plan.answers is None:
            results[i] = score_unshared(vlm, plan.prompt, normalization)
    if shareable:
        for i, scored in zip(shareable, _score_plans(vlm, [plans[i] for i in shareable], normalization)):
            results[i] = scored
    return results  # type: ignore[return-value]


def _plan(vlm: LocalVLM, prompt: Prompt) -> _Plan:
    """Each candidate's answer tokens, when the full text tokenizes as the prompt's tokens followed by them.

    Images are expanded into their tokens by the processor, not here: image
    placeholders are special tokens, which tokenizers never merge with their
    neighbours, so the tokens after the last image come out the same either way.
    """
    messages, images = vlm.conversation(prompt)
    text = vlm.render(messages, add_generation_prompt=True)
    tokenizer, special = vlm.tokenizer, vlm.adds_special_tokens(text)
    prompt_ids = tokenizer(text, add_special_tokens=special)["input_ids"]
    answers = []
    for continuation in continuations(vlm, messages, text, prompt):
        ids = tokenizer(text + continuation, add_special_tokens=special)["input_ids"]
        answer = ids[len(prompt_ids):]
        if ids[: len(prompt_ids)] != prompt_ids or not answer:
            return _Plan(prompt, messages, images, text, None)
        stop = next((i for i, token in enumerate(answer) if token in vlm.stop_ids), None)
        answers.append(answer if stop is None else answer[: stop + 1])
    return _Plan(prompt, messages, images, text, answers)


def _score_plans(vlm: LocalVLM, plans: list[_Plan], normalization: str) -> list[OptionScores]:
    model = vlm.model
    inputs = vlm._encode([p.text for p in plans], [p.images for p in plans], padding_side="right")
    mask = inputs["attention_mask"]
    lengths = mask.sum(dim=1)
    last = lengths - 1
    # Right-padded, every prompt starts at position 0; only its last position's logits are needed.
    keep = torch.unique(last)
    rope = _rope_state(model)
    with torch.inference_mode():
        if rope is not None:
            rope.rope_deltas = None  # recomputed from this batch's images by the forward pass
        output, logits = _forward_keeping(model, inputs, keep, use_cache=True)
        rows = torch.arange(len(plans), device=logits.device)
        columns = torch.searchsorted(keep, last).to(logits.device)
        first = torch.log_softmax(logits[rows, columns].float(), dim=-1)  # (prompts, vocabulary)

        owners = [b for b, plan in enumerate(plans) for _ in plan.answers]
        answers = [answer for plan in plans for answer in plan.answers]
        width = max(len(a) for a in answers)
        later = None
        if width > 1:
            later = _score_answers(vlm, output, mask, lengths, owners, answers, width, rope)

    results, row = [], 0
    for b, plan in enumerate(plans):
        totals = []
        for answer in plan.answers:
            total = first[b, answer[0]]
            if len(answer) > 1:
                targets = torch.tensor(answer[1:], device=later.device)
                total = total + later[row, : len(answer) - 1].gather(-1, targets[:, None]).sum().to(total.device)
            totals.append(float(total))
            row += 1
        results.append(_finish(vlm, plan.prompt, totals, [len(a) for a in plan.answers], normalization,
                               int(lengths[b])))
    return results


def _score_answers(vlm: LocalVLM, output, mask, lengths, owners, answers, width, rope) -> torch.Tensor:
    """Log-probabilities (answers, width - 1, vocabulary) of each answer's tokens after its first.

    The prompt cache is copied once per answer (row ``owners[n]`` for answer
    ``n``); the answers are right-padded after it, and the prompts' own
    padding stays masked out.
    """
    device = mask.device
    index = torch.tensor(owners, device=device)
    cache = output.cache if getattr(output, "cache", None) is not None else output.past_key_values
    cache.reorder_cache(index)
    ids = torch.full((len(answers), width), vlm.tokenizer.pad_token_id, dtype=torch.long, device=device)
    answer_mask = torch.zeros((len(answers), width), dtype=mask.dtype, device=device)
    for n, answer in enumerate(answers):
        ids[n, : len(answer)] = torch.tensor(answer, device=device)
        answer_mask[n, : len(answer)] = 1
    # An answer continues its prompt's positions, not the padded width of the batch.
    positions = lengths[index][:, None] + torch.arange(width, device=device)
    if rope is not None:
        positions = _multimodal_positions(rope, positions, index)
    outputs = vlm.model(input_ids=ids, attention_mask=torch.cat([mask[index], answer_mask], dim=1),
                        position_ids=positions, cache=cache, use_cache=True)
    return torch.log_softmax(outputs.logits[:, : width - 1].float(), dim=-1)


def _rope_state(model):
    """The submodule that keeps multimodal rotary position offsets (``rope_deltas``: Qwen2-VL and kin), or None.

    Such a model gives image tokens 2-D positions, so the text after the images
    continues from a position offset from the token count; the offset of each
    row is what it keeps in ``rope_deltas`` after a forward pass.
    """
    inner = getattr(model, "model", None)
    return inner if inner is not None and hasattr(inner, "rope_deltas") else None


def _multimodal_positions(rope, positions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    deltas = rope.rope_deltas
    if deltas is None:  # a text-only batch: positions are the token counts
        deltas = torch.zeros((int(index.max()) + 1, 1), dtype=positions.dtype, device=positions.device)
    shifted = positions + deltas.to(positions.device)[index].reshape(-1, 1)
    return shifted.unsqueeze(0).expand(3, -1, -1)  # temporal, height and width: the same for text


# ------------------------------------------------------------------------- reference

def score_unshared(vlm: LocalVLM, prompt: Prompt, normalization: str = "sum") -> OptionScores:
    """Scores for one prompt, every candidate's full sequence (images included) in one right-padded pass.

    Every sequence starts at position 0 (the padding after it cannot affect it),
    and logits are computed only at the positions scored.
    """
    messages, images = vlm.conversation(prompt)
    prompt_text = vlm.render(messages, add_generation_prompt=True)
    texts = continuations(vlm, messages, prompt_text, prompt)
    prompt_ids = vlm._encode([prompt_text], [images], padding_side="right")["input_ids"][0].tolist()
    inputs = vlm._encode([prompt_text + c for c in texts], [images] * len(texts), "right")
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    ids = inputs["input_ids"]
    spans = [answer_span(vlm, ids[i, : lengths[i]].tolist(), prompt_ids) for i in range(len(texts))]

    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    # The token at position p is predicted by the logits at p - 1.
    keep = torch.arange(first - 1, last - 1, device=ids.device)
    with torch.inference_mode():
        _, logits = _forward_keeping(vlm.model, inputs, keep)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
    totals = []
    for i, (start, end) in enumerate(spans):
        targets = ids[i, start:end].to(log_probs.device)
        totals.append(float(log_probs[i, start - first : end - first].gather(-1, targets[:, None]).sum()))
    return _finish(vlm, prompt, totals, [end - start for start, end in spans], normalization, len(prompt_ids))


def answer_span(vlm: LocalVLM, row: list[int], prompt_ids: list[int]) -> tuple[int, int]:
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
        if row[i] in vlm.stop_ids:
            end = i + 1
            break
    return start, end
