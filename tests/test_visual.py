"""Visual prompt images: geometry checked on known masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness.visual import (
    as_mask,
    boundary,
    crop_box,
    crop_region,
    default_outline_width,
    dilate,
    erode,
    heat_colors,
    heatmap_overlay,
    outline_region,
    region_bbox,
    resize_for_prompt,
    visual_prompt_images,
)

W, H = 100, 80
RED = np.array([255, 0, 0], dtype=np.uint8)


def gray_image(width: int = W, height: int = H, value: int = 128) -> Image.Image:
    return Image.new("RGB", (width, height), (value, value, value))


def textured_image(width: int = W, height: int = H) -> Image.Image:
    """A deterministic non-uniform image, so "unchanged" means something."""
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([(xs * 2) % 200, (ys * 3) % 200, (xs + ys) % 200], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def rect_and_disc() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[20:40, 10:35] = True  # rectangle: rows 20..39, cols 10..34
    ys, xs = np.mgrid[0:H, 0:W]
    mask |= (ys - 50) ** 2 + (xs - 70) ** 2 <= 12**2  # disc centred (70, 50), radius 12
    return mask


def brute_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask or outside the image (written the slow way)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                ny, nx = y + dy, x + dx
                if not (0 <= ny < h and 0 <= nx < w) or not mask[ny, nx]:
                    out[y, x] = True
    return out


def chebyshev_distance_to(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """For each pixel, the Chebyshev distance to the nearest True pixel of ``points``."""
    ys, xs = np.nonzero(points)
    gy, gx = np.mgrid[0 : shape[0], 0 : shape[1]]
    d = np.maximum(np.abs(gy[..., None] - ys), np.abs(gx[..., None] - xs))
    return d.min(axis=-1)


def red_pixels(image: Image.Image) -> np.ndarray:
    return np.all(np.asarray(image) == RED, axis=-1)


# --- morphology ------------------------------------------------------------------------------


def test_erode_dilate_boundary_match_brute_force():
    mask = rect_and_disc()
    assert np.array_equal(boundary(mask), brute_boundary(mask))
    # The rectangle erodes by one pixel on each side.
    eroded = erode(mask)
    assert eroded[21:39, 11:34].all() and not eroded[20, 20] and not eroded[30, 10]
    grown = dilate(mask, 3)
    assert grown[mask].all()
    distance = chebyshev_distance_to(mask, mask.shape)
    assert (distance[grown] <= 3).all()
    assert grown[distance == 1].all()  # one square step always covers the 8-neighbourhood


def test_region_touching_image_edge_has_boundary_along_the_edge():
    mask = np.zeros((H, W), dtype=bool)
    mask[0:10, 0:10] = True
    edge = boundary(mask)
    assert edge[0, :10].all() and edge[:10, 0].all()
    assert np.array_equal(edge, brute_boundary(mask))


# --- outline ---------------------------------------------------------------------------------


def test_default_width_scales_with_image_size():
    assert default_outline_width((100, 80)) == 2  # at least 2 px
    assert default_outline_width((1024, 1024)) == 5
    assert default_outline_width((2000, 4000)) == 10


@pytest.mark.parametrize("width", [None, 1, 2, 4])
def test_outline_is_on_the_boundary_only(width):
    mask = rect_and_disc()
    image = textured_image()
    outlined = outline_region(image, mask, width=width)
    w = width or default_outline_width(image.size)

    red = red_pixels(outlined)
    edge = brute_boundary(mask)
    distance = chebyshev_distance_to(edge, mask.shape)

    assert red[edge].all(), "every boundary pixel is covered"
    assert (distance[red] <= w - 1).all(), "every red pixel lies within the line width of the boundary"
    assert not red[mask & ~edge].any(), "the region's interior is not filled"

    before, after = np.asarray(image), np.asarray(outlined)
    unchanged = ~red
    assert np.array_equal(before[unchanged], after[unchanged]), "nothing but the outline changes"
    # Interior centres of both shapes and a pixel far outside are untouched.
    for y, x in ((30, 22), (50, 70), (75, 5), (5, 95)):
        assert np.array_equal(after[y, x], before[y, x])
    # The line is as thick as asked: right of the rectangle, cols 34 (edge) .. 34 + w - 1.
    assert red[30, 34 : 34 + w].all() and not red[30, 34 + w]
    assert outlined is not image and np.array_equal(np.asarray(image), before)


def test_outline_accepts_other_mask_types_and_sizes():
    mask = rect_and_disc()
    reference = red_pixels(outline_region(gray_image(), mask))
    assert np.array_equal(red_pixels(outline_region(gray_image(), mask.astype(np.uint8) * 255)), reference)
    assert np.array_equal(red_pixels(outline_region(gray_image(), mask.astype(np.float32))), reference)
    # A half-resolution mask is scaled up to the image.
    small = np.zeros((H // 2, W // 2), dtype=bool)
    small[10:20, 5:17] = True
    assert as_mask(small, (W, H))[20:40, 10:34].all()
    assert red_pixels(outline_region(gray_image(), small)).any()


def test_outline_of_empty_region_changes_nothing():
    image = textured_image()
    out = outline_region(image, np.zeros((H, W), dtype=bool))
    assert np.array_equal(np.asarray(out), np.asarray(image))


def test_outline_custom_colour_and_grayscale_input():
    mask = rect_and_disc()
    out = outline_region(gray_image().convert("L"), mask, color=(0, 255, 0))
    assert out.mode == "RGB"
    assert np.all(np.asarray(out)[brute_boundary(mask)] == [0, 255, 0])


# --- crop ------------------------------------------------------------------------------------


def test_crop_contains_region_with_margin_and_is_square():
    mask = np.zeros((H, W), dtype=bool)
    mask[30:50, 40:56] = True  # 16 wide, 20 high
    box = crop_box((W, H), mask, margin=0.25, min_size=8)
    left, top, right, bottom = box
    # The margin box: 4 px left/right, 5 px top/bottom.
    assert left <= 36 and right >= 60 and top <= 25 and bottom >= 55
    assert right - left == bottom - top  # square: fits inside the image here
    assert 0 <= left and 0 <= top and right <= W and bottom <= H
    crop = crop_region(textured_image(), mask, margin=0.25, min_size=8)
    assert crop.size == (right - left, bottom - top)
    assert np.array_equal(np.asarray(crop), np.asarray(textured_image())[top:bottom, left:right])


def test_crop_is_clamped_at_a_corner():
    mask = np.zeros((H, W), dtype=bool)
    mask[H - 12 :, W - 20 :] = True  # touches the bottom-right corner
    left, top, right, bottom = crop_box((W, H), mask, margin=0.5, min_size=8)
    assert right == W and bottom == H
    assert left <= W - 20 - 10 and top <= H - 12 - 6  # the margin on the sides that have room
    assert right - left == bottom - top  # shifted inside, not cut
    crop = crop_region(gray_image(), mask, margin=0.5, min_size=8)
    assert crop.size == (right - left, bottom - top)

    mask = np.zeros((H, W), dtype=bool)
    mask[0:5, 0:5] = True  # top-left corner
    assert crop_box((W, H), mask, margin=0.25, min_size=8)[:2] == (0, 0)


def test_crop_is_not_tiny_and_never_larger_than_image():
    mask = np.zeros((H, W), dtype=bool)
    mask[40, 50] = True  # one pixel
    left, top, right, bottom = crop_box((W, H), mask)
    assert right - left >= 32 and bottom - top >= 32
    assert left <= 50 < right and top <= 40 < bottom
    whole = np.ones((H, W), dtype=bool)
    assert crop_box((W, H), whole) == (0, 0, W, H)


def test_crop_of_empty_region():
    assert crop_box((W, H), np.zeros((H, W), dtype=bool)) is None
    assert region_bbox(np.zeros((3, 3), dtype=bool)) is None
    with pytest.raises(ValueError, match="empty region"):
        crop_region(gray_image(), np.zeros((H, W), dtype=bool))


# --- heat map and resizing -------------------------------------------------------------------


def test_heat_colours_ramp():
    colours = heat_colors(np.array([0.0, 0.5, 1.0, -1.0, 2.0, np.nan]))
    assert colours[0][2] > 100 and colours[0][0] == 0  # low: blue
    assert colours[1][1] > 200  # middle: green-ish
    assert colours[2][0] > 100 and colours[2][2] == 0  # high: red
    assert np.array_equal(colours[3], colours[0]) and np.array_equal(colours[4], colours[2])
    assert np.array_equal(colours[5], colours[0])


def test_heatmap_overlay_blends_and_resizes():
    image = gray_image()
    amap = np.zeros((H // 4, W // 4), dtype=np.float32)
    amap[:, W // 8 :] = 1.0
    out = np.asarray(heatmap_overlay(image, amap, alpha=0.5)).astype(int)
    assert out.shape == (H, W, 3)
    assert out[40, 90, 0] > out[40, 90, 2]  # hot side is red
    assert out[40, 5, 2] > out[40, 5, 0]  # cold side is blue
    assert np.array_equal(np.asarray(heatmap_overlay(image, amap, alpha=0.0)), np.asarray(image))


def test_resize_for_prompt_keeps_aspect_and_never_upscales():
    big = gray_image(2000, 1000)
    small = resize_for_prompt(big, 768)
    assert small.size == (768, 384)
    tiny = gray_image(50, 40)
    assert resize_for_prompt(tiny, 768) is tiny
    tall = resize_for_prompt(gray_image(300, 900), 300)
    assert tall.size == (100, 300)


# --- the set of images -----------------------------------------------------------------------


def test_visual_prompt_images_names():
    query, reference = textured_image(), gray_image()
    mask = rect_and_disc()
    images = visual_prompt_images(query, reference, mask, mask.astype(np.float32))
    assert list(images) == ["query", "reference", "outlined", "crop", "heatmap"]
    assert np.array_equal(np.asarray(images["query"]), np.asarray(query))
    assert red_pixels(images["outlined"]).any()

    assert list(visual_prompt_images(query)) == ["query"]
    empty = np.zeros((H, W), dtype=bool)
    assert list(visual_prompt_images(query, reference, empty)) == ["query", "reference"]
    assert list(visual_prompt_images(query, region=empty, anomaly_map=empty.astype(float))) == ["query", "heatmap"]


def test_visual_prompt_images_are_shrunk_to_max_side():
    query = gray_image(1600, 1200)
    mask = np.zeros((1200, 1600), dtype=bool)
    mask[100:300, 200:400] = True
    images = visual_prompt_images(query, region=mask, max_side=400)
    assert images["query"].size == (400, 300) and images["outlined"].size == (400, 300)
    assert max(images["crop"].size) <= 400
    full = visual_prompt_images(query, region=mask, max_side=None)
    assert full["query"].size == (1600, 1200)
