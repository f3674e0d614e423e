"""Visual prompt images are drawn at the size they are sent (`harness.visual.visual_prompt_images`).

Large queries are shrunk first and outlined / heat-mapped at that size; the crop keeps the full
resolution's detail; images that already fit come out byte for byte as before; and a run folder
redraws the large pictures it sent exactly.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from harness.prompts import image_digest
from harness.run.prompt_record import PromptImageStore, mismatches, redraw
from harness.run.run_records import Prepared
from harness.types import GateResult, ImagePart, Message, Prompt, Sample
from harness.visual import (
    as_mask,
    crop_region,
    default_outline_width,
    boundary,
    dilate,
    erode,
    heatmap_overlay,
    map_thumbnail,
    outline_region,
    resize_for_prompt,
    visual_prompt_images,
)

RED = np.array([255, 0, 0], dtype=np.uint8)
NAMES = ["query", "reference", "outlined", "crop", "heatmap"]


def drawn_full_size_then_shrunk(query, reference=None, region=None, anomaly_map=None, max_side=768):
    """The way `visual_prompt_images` drew before (kept to compare with): everything at the query's full
    resolution, then every image shrunk to ``max_side``. Built from the unchanged public pieces."""
    query_rgb = query.convert("RGB")
    images = {"query": query_rgb}
    if reference is not None:
        images["reference"] = reference.convert("RGB")
    if region is not None:
        mask = as_mask(region, query_rgb.size)
        if mask.any():
            images["outlined"] = outline_region(query_rgb, mask)
            images["crop"] = crop_region(query_rgb, mask)
    if anomaly_map is not None:
        images["heatmap"] = heatmap_overlay(query_rgb, map_thumbnail(anomaly_map).astype(np.float32) / 255.0)
    if max_side is not None:
        images = {name: resize_for_prompt(img, max_side) for name, img in images.items()}
    return images


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic non-uniform picture with no pure red in it (so red pixels are the outline)."""
    ys, xs = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 40, size=(height, width))
    pixels = np.stack([(xs + noise) % 200, (ys * 2 + noise) % 200, (xs + ys) % 200 + 20], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def blob(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def large_inputs(width: int, height: int):
    """A large query, a reference of the same size, a 224x224 region (as a detector gives it) and a float map."""
    region = blob((224, 224), (120, 90), 25)
    amap = np.random.default_rng(1).random((224, 224)).astype(np.float32)
    return textured(width, height), textured(width, height, seed=2), region, amap


def red(image: Image.Image) -> np.ndarray:
    return np.all(np.asarray(image) == RED, axis=-1)


def pixel_bytes(images: dict[str, Image.Image]) -> dict[str, tuple[str, tuple[int, int], bytes]]:
    return {name: (img.mode, img.size, img.tobytes()) for name, img in images.items()}


# --- sizes and drawing at the sent size --------------------------------------------------------


@pytest.mark.parametrize("width, height, sent", [(900, 900, (768, 768)), (1024, 700, (768, 525))])
def test_every_image_of_a_large_query_is_at_most_max_side_with_its_aspect(width, height, sent):
    query, reference, region, amap = large_inputs(width, height)
    images = visual_prompt_images(query, reference, region, amap)
    assert list(images) == NAMES
    for name in ("query", "reference", "outlined", "heatmap"):
        assert images[name].size == sent, name
        assert images[name].mode == "RGB"
    assert max(images["crop"].size) <= 768
    # The query shown is the one shrinking gives, unchanged by the drawing.
    assert images["query"].tobytes() == resize_for_prompt(query, 768).tobytes()


@pytest.mark.parametrize("width, height", [(900, 900), (1024, 700)])
def test_the_outline_is_drawn_on_the_region_at_the_sent_size(width, height):
    query, _, region, _ = large_inputs(width, height)
    outlined = visual_prompt_images(query, region=region)["outlined"]
    mask = as_mask(as_mask(region, query.size), outlined.size)
    line = red(outlined)
    assert line.sum() > 100
    # Every red pixel lies in the band the outline covers at the sent size: the resized mask's
    # boundary and the sent size's outline width beyond it; none far away, none inside the region.
    band = dilate(mask, default_outline_width(outlined.size) - 1)
    assert not (line & ~band).any()
    interior = erode(mask, 1)
    assert interior.any() and not (line & interior).any()
    # Drawn at this size, not shrunk after drawing: the line is pure red along the whole boundary.
    assert line[boundary(mask)].all()
    # The line goes round the region: red on each side of its bounding box.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    assert line[top - 1: top + 2].any() and line[bottom - 1: bottom + 2].any()
    assert line[:, left - 1: left + 2].any() and line[:, right - 1: right + 2].any()


def test_the_heat_map_is_the_maps_colour_ramp_blended_at_the_sent_size():
    query, _, _, amap = large_inputs(900, 900)
    images = visual_prompt_images(query, anomaly_map=amap)
    expected = heatmap_overlay(images["query"], map_thumbnail(amap).astype(np.float32) / 255.0)
    assert images["heatmap"].tobytes() == expected.tobytes()
    assert not np.array_equal(np.asarray(images["heatmap"]), np.asarray(images["query"]))


def test_the_crop_of_a_small_region_keeps_the_full_resolution_detail():
    query = textured(1600, 1200)
    region = np.zeros((1200, 1600), dtype=bool)
    region[500:540, 700:760] = True  # 60x40 px at full size
    images = visual_prompt_images(query, region=region)
    full_crop = crop_region(query, region)
    # Small enough to send as cut: the full-resolution pixels, not a crop of the shrunk query.
    assert images["crop"].tobytes() == full_crop.tobytes()
    shrunk_query = images["query"]
    scale = shrunk_query.size[0] / query.size[0]
    assert images["crop"].size[0] > round(full_crop.size[0] * scale) + 50
    # A region larger than max_side: its crop is shrunk to fit.
    big = np.zeros((1200, 1600), dtype=bool)
    big[100:1100, 200:1400] = True
    crop = visual_prompt_images(query, region=big)["crop"]
    assert max(crop.size) == 768


def test_a_region_too_small_for_nearest_resizing_is_still_outlined():
    query = textured(2000, 2000)
    region = np.zeros((2000, 2000), dtype=bool)
    region[1000, 1000] = True  # one pixel: nearest-neighbour sampling to 768 px misses it
    assert not as_mask(region, (768, 768)).any()
    images = visual_prompt_images(query, region=region)
    line = red(images["outlined"])
    assert line.any()
    ys, xs = np.nonzero(line)
    assert abs(ys.mean() - 1000 * 768 / 2000) < 6 and abs(xs.mean() - 1000 * 768 / 2000) < 6


def test_without_max_side_every_image_is_drawn_at_full_size_as_before():
    query, reference, region, amap = large_inputs(1024, 700)
    new = visual_prompt_images(query, reference, region, amap, max_side=None)
    old = drawn_full_size_then_shrunk(query, reference, region, amap, max_side=None)
    assert pixel_bytes(new) == pixel_bytes(old)
    assert new["query"].size == (1024, 700)


# --- unchanged where nothing is shrunk; reproducible --------------------------------------------


@pytest.mark.parametrize("width, height, region_shape", [(100, 80, (80, 100)), (256, 256, (28, 28)),
                                                          (768, 500, (224, 224))])
def test_images_that_already_fit_come_out_byte_identical_to_before(width, height, region_shape):
    query, reference = textured(width, height), textured(width, height, seed=3)
    region = blob(region_shape, (region_shape[0] // 2, region_shape[1] // 3), max(2, region_shape[0] // 6))
    amap = np.random.default_rng(4).random((56, 56)).astype(np.float32)
    new = visual_prompt_images(query, reference, region, amap)
    old = drawn_full_size_then_shrunk(query, reference, region, amap)
    assert list(new) == NAMES and pixel_bytes(new) == pixel_bytes(old)


def test_small_images_match_digests_computed_with_the_previous_code():
    """`PREVIOUS_DIGESTS` were computed with main's code before this change (commit b2d4e70): these
    inputs, made by this file's helpers, through that commit's `visual_prompt_images`; sha256 of
    each image's raw pixel bytes, first 16 hex digits."""
    query, reference = textured(100, 80), textured(100, 80, seed=3)
    region = blob((80, 100), (40, 33), 13)
    amap = np.random.default_rng(4).random((56, 56)).astype(np.float32)
    images = visual_prompt_images(query, reference, region, amap)
    digests = {name: hashlib.sha256(img.tobytes()).hexdigest()[:16] for name, img in images.items()}
    assert digests == PREVIOUS_DIGESTS


#: See `test_small_images_match_digests_computed_with_the_previous_code`.
PREVIOUS_DIGESTS = {"query": "73155bb1b0944a32", "reference": "e762a59147c7395e", "outlined": "1d7adaed1d32e41d",
                    "crop": "c780f7d56d2a7cb9", "heatmap": "7797415d0f57e3f0"}


def test_the_same_inputs_give_the_same_bytes():
    first = visual_prompt_images(*large_inputs(1024, 700))
    again = visual_prompt_images(*large_inputs(1024, 700))
    assert pixel_bytes(first) == pixel_bytes(again)
    assert {n: image_digest(i) for n, i in first.items()} == {n: image_digest(i) for n, i in again.items()}


# --- a run folder redraws the large pictures it sent ------------------------------------------


def test_a_large_querys_prompt_images_are_redrawn_from_the_run_folder_exactly(tmp_path):
    data, run_dir = tmp_path / "data", tmp_path / "run"
    (data / "bottle" / "test" / "crack").mkdir(parents=True)
    (data / "bottle" / "train" / "good").mkdir(parents=True)
    query, reference, region, amap = large_inputs(1024, 700)
    query.save(data / "bottle" / "test" / "crack" / "000.png")
    reference.save(data / "bottle" / "train" / "good" / "000.png")
    # As `harness.run.stages.prepare_sample` draws them: the gate's 224x224 region and map.
    sent = visual_prompt_images(query, reference, region, amap)
    shown = {name: image_digest(img) for name, img in sent.items()}
    prompt = Prompt("t", [Message("user", [ImagePart(n, img, shown[n]) for n, img in sent.items()])], [], "h", "r")
    sample = Sample("bottle/crack/000", "bottle", data / "bottle/test/crack/000.png", "bottle/test/crack/000.png",
                    "crack", "crack")
    store = PromptImageStore(run_dir, data)
    store.begin_category(data / "bottle" / "train" / "good" / "000.png", [])
    gate = GateResult(score=1.0, flagged=True, threshold=0.5, anomaly_map=amap, region=region)
    kept = store.keep(Prepared(sample, gate, prompts={(0, None): prompt}))
    record = {"sample_id": sample.sample_id, "image": "bottle/test/crack/000.png", "prompt_images": {**kept, "shown": shown}}
    redrawn = redraw(run_dir, record, data)
    assert mismatches(redrawn, record) == []
    assert pixel_bytes({n: redrawn[n] for n in shown}) == pixel_bytes(sent)
    assert redrawn["outlined"].size == (768, 525)
