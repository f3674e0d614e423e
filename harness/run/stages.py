"""The stages of a run: each takes one step for one piece of work and hands its result forward.

    fit_gate          a category's training images        -> FittedGate
    read_reference    the category's training normal      -> its picture at prompt size, or None
    read_support      the support samples of --shots      -> SupportExample per sample
    prepare_sample    one test sample + CategoryInputs    -> PreparedSample (Prepared + pixel pair)
    prepare_batch     the same for several, decoded and drawn in parallel, gated as one batch
    ask_model         one Prepared, one model, one repeat -> (Prompt, CallResult), or no call
    classify          ask_model, then the answer read     -> the record (a dict, `Record.to_json`)

Each is a plain function of its arguments: none touches the run's folder, memo, progress or resume
state (the executor's, `harness.run.runner.Run`). So another executor can run them elsewhere: the
inputs and results of the first four are plain data and pickle, except a fitted gate that holds a
model (PatchCore's holds torch: fit and prepare its category on one worker). `ask_model` and
`classify` take a `Dispatcher` (the classifier, its SDK client, the cache, the rate limiter, the
early stop): they belong to the executor that makes the calls. A change to what `prepare_sample`
produces for the same inputs bumps `harness.run.prompt_memo.PREPARATION_VERSION`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from harness.errors import BadInputError, HarnessError
from harness.gates import FittedGate, Gate
from harness.images import load_mask, load_rgb
from harness.prompts import PromptTemplate, render_prompt
from harness.run.dispatch import CallResult, Dispatcher
from harness.run.prompt_record import support_picture, support_visuals
from harness.run.run_records import RecordBuilder
from harness.scoring.gate_metrics import shrink_for_pixel_auroc
from harness.types import Category, ClassInfo, GateResult, Prepared, Prompt, Sample, SupportExample
from harness.visual import resize_for_prompt, visual_prompt_images

#: A sample's gate map and true mask, shrunk for pixel AUROC (`shrink_for_pixel_auroc`).
PixelPair = Any


def fit_gate(gate: Gate, category: Category) -> FittedGate:
    """The gate fitted on ``category``'s training images (never its test samples)."""
    return gate.fit(category)


def read_reference(category: Category, path: Path | None) -> Image.Image | None:
    """The training normal at ``path`` (the plan's `reference`), at prompt size; None without one.

    Shrunk once per category rather than with every sample (the same pixels: `resize_for_prompt` leaves it alone).
    """
    if path is None:
        return None
    try:
        return resize_for_prompt(load_rgb(path))
    except BadInputError as error:
        raise HarnessError(f"reference image for category {category.name!r} is unreadable: {error}") from None


def read_support(category: Category, support: Sequence[Sample]) -> list[SupportExample]:
    """Prompt images of ``category``'s support samples, from their ground-truth masks."""
    examples = []
    for sample in support:
        try:
            visuals = support_visuals(load_rgb(sample.image), sample.mask)
        except BadInputError as error:
            raise HarnessError(f"support image for --shots is unreadable: {error}") from None
        examples.append(SupportExample(category.class_info(sample.label), visuals))
    return examples


@dataclass(frozen=True)
class CategoryInputs:
    """What preparing any test sample of one category needs, the same for all of them."""

    category: Category
    fitted: FittedGate
    template: PromptTemplate
    gate_mode: str  # `harness.gates.gate_mode`
    orders: list[list[ClassInfo]]  # the plan's `orders`
    image_limits: tuple[Any, ...]  # each model's, in --models order: one prompt per repeat and distinct limit
    reference: Image.Image | None  # `read_reference`'s picture
    support: list[SupportExample]  # `read_support`'s examples


@dataclass
class PreparedSample:
    """The prepared sample, and its pixel pair for pixel AUROC (None: no map or no mask, no pixel AUROC)."""

    prepared: Prepared
    pixel_pair: PixelPair | None = None


def prepare_sample(sample: Sample, inputs: CategoryInputs, pixel_pair_wanted: bool = True) -> PreparedSample:
    """Load, gate, and (when flagged) render the prompt once per class order and distinct image limit.

    ``pixel_pair_wanted`` False: no pixel pair (no mask read), the category has lost its pixel AUROC already.
    """
    return prepare_batch([sample], inputs, pixel_pair_wanted)[0]


def prepare_batch(samples: Sequence[Sample], inputs: CategoryInputs, pixel_pair_wanted: bool = True,
                  parallel_map: Callable = map, gate_lock: AbstractContextManager = nullcontext(),
                  decoded: Sequence[Callable[[], Image.Image | str] | None] | None = None) -> list[PreparedSample]:
    """`prepare_sample` for several samples, in order: their images decoded and their prompts drawn by
    ``parallel_map`` (an executor's ``map``: threads, since PIL and numpy release the GIL), the
    readable ones scored by the gate in batches (`score_samples`), holding ``gate_lock`` (batches
    prepared at once in several threads take turns at the gate, which need not be thread-safe).
    ``decoded``: per sample, a call giving what `load_sample_image` would (decoded ahead), or None."""
    ahead = list(decoded) if decoded is not None else [None] * len(samples)
    images = list(parallel_map(lambda i: ahead[i]() if ahead[i] else load_sample_image(samples[i]), range(len(samples))))
    readable = [i for i, image in enumerate(images) if isinstance(image, Image.Image)]
    with gate_lock:
        verdicts = score_samples(inputs.fitted, [samples[i] for i in readable], [images[i] for i in readable])
    gated = dict(zip(readable, verdicts))

    def finish(i: int) -> PreparedSample:
        result = gated.get(i, images[i])
        if isinstance(result, str):
            return PreparedSample(Prepared(samples[i], None, bad_input=result))
        return finish_sample(samples[i], images[i], result, inputs, pixel_pair_wanted)

    return list(parallel_map(finish, range(len(samples))))


def load_sample_image(sample: Sample) -> Image.Image | str:
    """The sample's image (RGB), or what is wrong with its file."""
    try:
        return load_rgb(sample.image)
    except BadInputError as error:
        return str(error)


def score_samples(fitted: FittedGate, samples: Sequence[Sample], images: Sequence[Image.Image]) -> list[GateResult | str]:
    """The gate's verdicts, in batches of its `FittedGate.batch_size`; a batch that meets an unreadable
    input (a mask the oracle reads, say) is scored one by one, so that only that sample gets the message."""
    results: list[GateResult | str] = []
    size = max(1, fitted.batch_size)
    for start in range(0, len(samples), size):
        some, pictures = samples[start : start + size], images[start : start + size]
        try:
            scored = list(fitted.score_batch(some, pictures))
        except BadInputError:
            scored = [_scored_alone(fitted, sample, image) for sample, image in zip(some, pictures)]
        if len(scored) != len(some):
            raise HarnessError(f"{type(fitted).__name__}.score_batch gave {len(scored)} results for {len(some)} samples")
        results.extend(scored)
    return results


def _scored_alone(fitted: FittedGate, sample: Sample, image: Image.Image) -> GateResult | str:
    try:
        return fitted.score(sample, image)
    except BadInputError as error:
        return str(error)


def finish_sample(sample: Sample, image: Image.Image, gate_result: GateResult, inputs: CategoryInputs,
                  pixel_pair_wanted: bool = True) -> PreparedSample:
    """A gated sample's pixel pair and, when flagged, its prompts."""
    prepared = Prepared(sample, gate_result)
    done = PreparedSample(prepared, pixel_pair(sample, image, gate_result) if pixel_pair_wanted else None)
    if not gate_result.flagged:
        return done
    visuals = visual_prompt_images(image, inputs.reference, gate_result.region, gate_result.anomaly_map)  # at prompt size
    # Labelled in-context examples for templates: images support_1.. and extra.support.
    support = []
    for number, example in enumerate(inputs.support, start=1):
        name = f"support_{number}"
        visuals[name] = support_picture(example.images)
        support.append({"name": example.label.name, "key": example.label.key, "image": name})
    for repeat, candidates in enumerate(inputs.orders):
        for limit in inputs.image_limits:
            if (repeat, limit) not in prepared.prompts:
                prepared.prompts[(repeat, limit)] = render_prompt(
                    inputs.template, category=inputs.category, candidates=candidates, images=visuals, max_images=limit,
                    extra={"support": support}, gate_mode=inputs.gate_mode,
                )
                _check_order_shown(prepared, repeat, limit, inputs)
    return done


def _check_order_shown(prepared: Prepared, repeat: int, limit, inputs: CategoryInputs) -> None:
    """A shuffled order must change the prompt; otherwise the template hides the order (and the cache would answer)."""
    orders = inputs.orders
    if repeat == 0 or [c.key for c in orders[repeat]] == [c.key for c in orders[0]]:
        return
    if prepared.prompts[(repeat, limit)].hash == prepared.prompts[(0, limit)].hash:
        raise HarnessError(
            f"prompt template {inputs.template.name!r} renders the same prompt for different class orders "
            "(it does not list `classes` in the order given), so --class-order shuffle cannot measure position bias"
        )


def pixel_pair(sample: Sample, image: Image.Image | None, gate_result: GateResult) -> PixelPair | None:
    """A small copy of the gate's map and the true mask; None when there is no map (or no mask to compare)."""
    score_map = gate_result.score_map if gate_result.score_map is not None else gate_result.anomaly_map
    if score_map is None or (sample.is_anomalous and sample.mask is None):
        return None
    mask = load_mask(sample.mask, image.size)
    return shrink_for_pixel_auroc(np.asarray(score_map, dtype=np.float32), mask)


async def ask_model(prepared: Prepared, repeat: int, dispatcher: Dispatcher) -> tuple[Prompt | None, CallResult | None]:
    """The prompt ``dispatcher``'s model is shown for ``repeat``, and its call; (None, None) when no model is asked."""
    if not prepared.asks_a_model:
        return None, None  # unreadable, or passed by the gate
    prompt = prepared.prompts[(repeat, dispatcher.classifier.capabilities.max_images)]
    return prompt, await dispatcher.call(prompt)


async def classify(prepared: Prepared, repeat: int, dispatcher: Dispatcher, builder: RecordBuilder,
                   earlier_attempts: int = 0) -> dict[str, Any]:
    """One model's record for one prepared sample and repeat; ``earlier_attempts``: those of the records it replaces."""
    prompt, call = await ask_model(prepared, repeat, dispatcher)
    return builder.record(prepared, dispatcher.classifier, prompt, call, repeat=repeat, earlier_attempts=earlier_attempts)
