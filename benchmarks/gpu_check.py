"""The GPU check: what a lent GPU machine runs once, in a few minutes, printing one table.

    python benchmarks/gpu_check.py                       # bottle-sized synthetic images (900x900 PNG)
    python benchmarks/gpu_check.py --data-root DATA --category bottle   # real MVTec-AD images

1. the CUDA tests: tests/test_patchcore.py and test_patchcore_device_resize.py ``-k cuda``, and
   tests/test_hf.py and test_hf_devices.py whole
   (their device and placement tests take their CUDA branches on a GPU);
2. the patchcore gate on each device (cpu; cuda in float32 and float16 when there is one): fit time,
   test images/s one by one (``score``) and batched as ``harness run`` scores them (images decoded
   on one thread per core, ``score_batch`` in the gate's batches), decoding included in both, and the
   batches again with every image decoded beforehand (``no-dec/s``: the device's side alone); the
   milliseconds per image of each step of a batch; on a GPU, the network's time on batch sizes it
   has not seen, each twice (the cost of a new shape, which the gate's padding avoids), the batches
   again with the maps brought to the images' sizes on the GPU (``map_finishing="device"``), with the
   images resized there (``resize_on="device"``) and with both, and three ways of bringing one batch's
   maps to size (`finishing_ms`); every
   GPU clock read after ``torch.cuda.synchronize()``; GPU memory as the allocator's peak
   (``max_memory_allocated``), what it reserved (``max_memory_reserved``) and what the driver says
   the device uses (``mem_get_info``);
3. CPU/CUDA agreement: the largest relative score difference, verdicts that differ, image AUROC each;
4. the hf backend on a tiny random Qwen2-VL (built from a config, as the tests do) in bfloat16:
   one answer generated on the GPU (on the CPU without one).

Without a GPU every CUDA row says so and the CPU rows still run (a dry run of the script). Nothing
is downloaded. ``--json FILE`` writes the rows too. On a lent machine that lacks this project's
packages: benchmarks/device/run.sh (README, "The GPU check on a lent machine").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tiny_vlms

from harness.images import load_rgb  # noqa: E402
from harness.plugins import load_registry  # noqa: E402
from harness.scoring.gate_metrics import auroc  # noqa: E402
from harness.types import Category  # noqa: E402
from harness_patchcore import PatchCoreGate, PatchCoreOptions, features  # noqa: E402
from harness_patchcore.runtime import usable_cpus  # noqa: E402

import synthetic_images  # noqa: E402  (benchmarks/, this script's folder)
from gate import predecoded_seconds  # noqa: E402  (benchmarks/gate.py)


def synthetic_category(folder: Path, images: int) -> Category:
    """The demo's ``tile`` category at bottle's size, about ``images`` test images (`synthetic_images`)."""
    return synthetic_images.tile_category(synthetic_images.write_tree(folder, images))


def real_category(data_root: Path, name: str) -> Category:
    return load_registry().get("benchmarks", "mvtec-ad").obj.load(data_root, [name]).categories[0]


def synchronize(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def gpu_memory(torch) -> dict:
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"allocated_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
            "reserved_peak_mb": torch.cuda.max_memory_reserved() / 2**20,
            "driver_used_mb": (total - free) / 2**20}


def measure_gate(category: Category, device: str, half: bool) -> dict:
    """Fit, then score every test image one by one and batched; both with decoding, clocks synchronised."""
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    options = PatchCoreOptions(device=device, half_precision=half, cache=False)
    started = time.perf_counter()
    fitted = PatchCoreGate(options).fit(category)
    synchronize(torch)
    fit_s = time.perf_counter() - started
    samples = list(category.test_samples)

    fitted.score(samples[0], load_rgb(samples[0].image))  # warm-up: kernels chosen, search groups built
    synchronize(torch)
    started = time.perf_counter()
    alone = [fitted.score(sample, load_rgb(sample.image)) for sample in samples]
    synchronize(torch)
    one_by_one_s = time.perf_counter() - started

    size = fitted.batch_size
    batched_s, together = batched_seconds(fitted, samples, torch)
    # On a GPU, the same batches with work moved from the host to the device: the maps brought to size
    # there (map_finishing), the images resized there (resize_on; the bank still from the host's crops,
    # so only the speed counts), and both.
    on_device_per_s = {}
    if device == "cuda":
        host_options = fitted.options
        for name, update in (("map_finishing", {"map_finishing": "device"}), ("resize_on", {"resize_on": "device"}),
                             ("both", {"map_finishing": "device", "resize_on": "device"})):
            fitted.options = host_options.model_copy(update=update)
            on_device_per_s[name] = len(samples) / batched_seconds(fitted, samples, torch)[0]
        fitted.options = host_options

    # The device's side alone: the same batches with every image decoded beforehand.
    predecoded_s = predecoded_seconds(fitted.score_batch, samples, size, device == "cuda")

    phases = phase_seconds(fitted, samples, torch)
    labels = np.array([s.is_anomalous for s in samples])
    return {
        "ms_per_image": phases,
        "new_shape_ms": new_shape_ms(fitted, samples, torch) if device == "cuda" else [],
        "finishing_ms": finishing_ms(fitted, samples, torch) if device == "cuda" else {},
        "device": device, "precision": fitted.info()["precision"], "images": len(samples), "batch": size,
        "fit_s": fit_s, "one_by_one_per_s": len(samples) / one_by_one_s, "batched_per_s": len(samples) / batched_s,
        "predecoded_per_s": len(samples) / predecoded_s, "on_device_per_s": on_device_per_s,
        "image_auroc": auroc(labels, np.array([r.score for r in together])),
        "batch_vs_alone_max_rel": max(abs(a.score - b.score) / max(abs(a.score), 1e-12) for a, b in zip(alone, together)),
        "scores": [r.score for r in together], "flagged": [bool(r.flagged) for r in together],
        **gpu_memory(torch),
    }


def batched_seconds(fitted, samples: list, torch) -> tuple[float, list]:
    """Seconds to score ``samples`` as ``harness run`` does (decoded on one thread per core, running ahead
    of ``score_batch`` in the gate's batches), and the results."""
    size = fitted.batch_size
    started = time.perf_counter()
    together = []
    with ThreadPoolExecutor(usable_cpus()) as decoders:
        decoded = decoders.map(load_rgb, [s.image for s in samples])  # decoding runs ahead of the scoring
        batch: list = []
        for image in decoded:
            batch.append(image)
            if len(batch) == size:
                together.extend(fitted.score_batch(samples[len(together) : len(together) + size], batch))
                batch = []
        if batch:
            together.extend(fitted.score_batch(samples[len(together) :], batch))
    synchronize(torch)
    return time.perf_counter() - started, together


def phase_seconds(fitted, samples: list, torch) -> dict:
    """Milliseconds per image in each step of one batch's scoring (the gate's `_score_group`, then its
    `finish`), the clock synchronised after each step: where a device's batches spend their time.
    Decoding and (on a GPU) resizing run on one thread per core, as in the gate. A last step, not the
    gate's, reads every result's region and display map as a run's threads do a flagged image's."""
    from harness_patchcore.fitting import batch_size, score_features_on_device
    from harness_patchcore.runtime import exact_float32

    o, on_gpu = fitted.options, fitted.device != "cpu"
    steps = ("decode", "resize_crop", "to_device_network", "search_maps", "finish", "region_display_when_read")
    spent = dict.fromkeys(steps, 0.0)
    with ThreadPoolExecutor(usable_cpus()) as workers:
        for first in range(0, len(samples), fitted.batch_size):
            group = samples[first : first + fitted.batch_size]
            clock = time.perf_counter()

            def step(name: str) -> None:
                nonlocal clock
                synchronize(torch)
                now = time.perf_counter()
                spent[name] += now - clock
                clock = now

            images = list(workers.map(load_rgb, [sample.image for sample in group]))
            step("decode")
            crops = list((workers.map if on_gpu else map)(lambda image: features.preprocess(image, o.image_size, o.crop_size), images))
            step("resize_crop")
            with exact_float32(torch):
                batch = features.to_batch(torch, crops, fitted.backbone, rows=batch_size(o, fitted.device) if on_gpu else None)
                patch_features, border = fitted.patch_features(batch, len(group))
                step("to_device_network")
                scores, maps = score_features_on_device(torch, fitted.bank, patch_features, o, border)
                scores = scores.float().cpu().numpy()
            step("search_maps")
            results = fitted.finish(scores, maps, images)
            step("finish")
            # Not the gate's: what a run's threads compute when they read a flagged image's maps (`result`).
            list(workers.map(lambda result: (result.region, result.anomaly_map), results))
            step("region_display_when_read")
    return {name: 1000 * seconds / len(samples) for name, seconds in spent.items()}


def new_shape_ms(fitted, samples: list, torch) -> list[tuple[int, float]]:
    """The network alone on batches of sizes it has not seen (unpadded), each twice: (size, ms) per call.

    A first call far slower than the second is a cost paid per new batch shape (kernel choice or
    compilation), which the gate's padding to one batch size avoids."""
    o = fitted.options
    crop = features.preprocess(load_rgb(samples[0].image), o.image_size, o.crop_size)
    timings = []
    with fitted.torch.inference_mode():
        for size in (17, 17, 5, 5, 1, 1):
            batch = features.to_batch(torch, [crop] * size, fitted.backbone)
            synchronize(torch)
            started = time.perf_counter()
            features.embed(torch, fitted.backbone, batch, fitted.projection, o.neighbourhood_padding)
            synchronize(torch)
            timings.append((size, 1000 * (time.perf_counter() - started)))
    return timings


def finishing_ms(fitted, samples: list, torch) -> dict[str, float]:
    """Milliseconds per image to bring one batch's crop maps to the images' sizes on the host (`device_maps`;
    the region and display map are computed later, when read: `harness_patchcore.result`), three ways,
    the best of 3 each: on the host's scoring threads from the crop maps (``map_finishing="host"``, the
    default); on the device, copied into pinned memory (``"device"``); on the device, copied to pageable
    memory (as ``"device"`` did before)."""
    from harness_patchcore import device_maps
    from harness_patchcore.fitting import score_features_on_device
    from harness_patchcore.runtime import exact_float32, scoring_workers

    o = fitted.options
    group = samples[: fitted.batch_size]
    images = [load_rgb(sample.image) for sample in group]
    crops = [features.preprocess(image, o.image_size, o.crop_size) for image in images]
    with exact_float32(torch):
        patch_features, border = fitted.patch_features(features.to_batch(torch, crops, fitted.backbone), len(crops))
        scores, maps = score_features_on_device(torch, fitted.bank, patch_features, o, border)
    sizes = [image.size for image in images]

    def on_host() -> None:
        crop_maps = torch.from_numpy(device_maps.to_host(torch, maps.float()))
        device_maps.sized_on_host(torch, crop_maps, sizes, o.image_size, fitted.normal_level,
                                  scoring_workers(torch))

    def on_device() -> None:
        device_maps.sized_on_device(torch, maps, sizes, o.image_size, fitted.normal_level)

    def pageable() -> None:
        device_maps.maps_at_size(torch, maps, o.image_size, sizes[0], fitted.normal_level).cpu().numpy()

    timings = {}
    for name, way in (("host threads (default)", on_host), ("device, pinned (map_finishing=device)", on_device),
                      ("device, pageable", pageable)):
        best = float("inf")
        for _ in range(3):
            synchronize(torch)
            started = time.perf_counter()
            way()
            synchronize(torch)
            best = min(best, time.perf_counter() - started)
        timings[name] = 1000 * best / len(group)
    return timings


def decoding_rate(category: Category) -> float:
    """Test images decoded per second on one thread per core, nothing else: the ceiling of a gate that decodes."""
    paths = [s.image for s in category.test_samples]
    started = time.perf_counter()
    with ThreadPoolExecutor(usable_cpus()) as decoders:
        for _ in decoders.map(load_rgb, paths):
            pass
    return len(paths) / (time.perf_counter() - started)


def agreement(cpu: dict, other: dict) -> dict:
    a, b = np.array(cpu["scores"]), np.array(other["scores"])
    return {"max_rel_score_diff": float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12))),
            "verdicts_differ": int(sum(x != y for x, y in zip(cpu["flagged"], other["flagged"])))}


def cuda_tests(log: Path | None) -> tuple[str, bool]:
    """PatchCore's CUDA tests, and the hf plugin's tests whole (on a GPU their placement tests take the CUDA
    branches): pytest's last line for each, and whether both passed; the whole output goes to ``log``."""
    summaries, outputs, passed = [], [], True
    patchcore = ["tests/test_patchcore.py", "tests/test_patchcore_device_resize.py"]
    for files, selection in ((patchcore, ["-k", "cuda"]), (["tests/test_hf.py", "tests/test_hf_devices.py"], [])):
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *files, *selection, "-rs"]  # -q: addopts
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        outputs.append(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}")
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        summaries.append(lines[-1] if lines else f"pytest exited {done.returncode}: {done.stderr[-300:]}")
        passed = passed and done.returncode == 0
    if log is not None:
        log.write_text("\n".join(outputs))
    return "; ".join(summaries), passed


def hf_tiny_bfloat16(folder: Path, device: str) -> str:
    """One answer of a tiny random Qwen2-VL in bfloat16 through the hf plugin; its time and where it ran."""
    import tiny_vlms
    from harness.types import ClassInfo, ImagePart, Message, Prompt, TextPart
    from harness_hf import HFClassifier, HFOptions

    model_dir = tiny_vlms.build("qwen2_vl", folder / "qwen2_vl")
    classifier = HFClassifier(str(model_dir), HFOptions(device=device, dtype="bfloat16", max_new_tokens=8))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    prompt = Prompt(template="check", messages=[Message("user", [ImagePart("query", image, "q"), TextPart("Which defect?")])],
                    candidates=[ClassInfo("crack", "crack")], hash="h", request_hash="r")

    async def one():
        try:
            started = time.perf_counter()
            response = await classifier.classify(prompt)
            return time.perf_counter() - started, response
        finally:
            await classifier.aclose()

    seconds, response = asyncio.run(one())
    return f"answered in {seconds:.2f} s on {device} in bfloat16 ({len(response.text)} characters)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, help="MVTec-AD root; default: synthetic bottle-sized images")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--images", type=int, default=200, help="synthetic test images [default: 200]")
    parser.add_argument("--skip-cpu", action="store_true", help="measure the GPU only (the CPU rows take longest)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file (after each step)")
    parser.add_argument("--tests-log", type=Path, help="write the CUDA tests' whole output to this file")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the CUDA tests (run.sh runs them last)")
    parser.add_argument("--tests-only", action="store_true",
                        help="run only the CUDA tests (on any machine: without CUDA they skip), exit 1 if they fail")
    args = parser.parse_args(argv)
    if args.tests_only:
        summary, passed = cuda_tests(args.tests_log)
        print(f"CUDA tests: {summary}")
        return 0 if passed else 1

    import torch

    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}; " + (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}, "
          f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 {torch.backends.cudnn.allow_tf32}"
          if cuda else "no CUDA device: the CUDA rows are skipped"))
    report: dict = {"rows": []}

    def save() -> None:  # after every step, so a run cut short still leaves what it measured
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))

    report["cuda_tests"] = ("skipped: --skip-tests" if args.skip_tests else
                            cuda_tests(args.tests_log)[0] if cuda else "skipped: no CUDA device")
    print(f"CUDA tests: {report['cuda_tests']}", flush=True)
    save()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        folder = Path(scratch)
        category = real_category(args.data_root, args.category) if args.data_root else synthetic_category(folder, args.images)
        report["decoded_per_s"] = decoding_rate(category)
        print(f"\n{category.name}: {len(category.test_samples)} test images, {len(category.train_images)} training images; "
              f"decoding alone, {usable_cpus()} threads: {report['decoded_per_s']:.0f} images/s")
        header = (f"{'device':<6} {'precision':<44} {'batch':>5} {'fit s':>6} {'1-by-1/s':>9} {'batched/s':>9} {'no-dec/s':>9} "
                  f"{'AUROC':>6} {'batch~1':>8} {'alloc MB':>9} {'resv MB':>8} {'driver MB':>9}")
        print(header + "\n" + "-" * len(header), flush=True)
        runs = [] if args.skip_cpu else [("cpu", False)]
        runs += [("cuda", False), ("cuda", True)] if cuda else []
        for device, half in runs:
            r = measure_gate(category, device, half)
            report["rows"].append(r)
            memory = "".join(f" {r[k]:>9.0f}" if k in r else f" {'-':>9}" for k in ("allocated_peak_mb", "reserved_peak_mb", "driver_used_mb"))
            print(f"{r['device']:<6} {r['precision'][:44]:<44} {r['batch']:>5} {r['fit_s']:>6.1f} {r['one_by_one_per_s']:>9.1f} "
                  f"{r['batched_per_s']:>9.1f} {r['predecoded_per_s']:>9.1f} {r['image_auroc']:>6.3f} "
                  f"{r['batch_vs_alone_max_rel']:>8.1e}{memory}", flush=True)
            save()
        for r in report["rows"]:
            print(f"{r['device']} {r['precision'][:20]}, ms per image: "
                  + ", ".join(f"{name} {ms:.2f}" for name, ms in r["ms_per_image"].items()))
            if r["finishing_ms"]:
                print(f"{r['device']} {r['precision'][:20]}, a batch's maps to the images' sizes, ms per image: "
                      + ", ".join(f"{name} {ms:.2f}" for name, ms in r["finishing_ms"].items()))
            if r["on_device_per_s"]:
                print(f"{r['device']} {r['precision'][:20]}, batched with work moved to the device, images/s: "
                      + ", ".join(f"{name}=device {rate:.1f}" for name, rate in r["on_device_per_s"].items())
                      + f" (all on the host's threads: {r['batched_per_s']:.1f})")
            if r["new_shape_ms"]:
                print(f"{r['device']} {r['precision'][:20]}, the network on new batch sizes (size: ms, each twice): "
                      + ", ".join(f"{size}: {ms:.1f}" for size, ms in r["new_shape_ms"]))
        cpu_row = next((r for r in report["rows"] if r["device"] == "cpu"), None)
        for r in report["rows"]:
            if cpu_row is not None and r is not cpu_row:
                found = agreement(cpu_row, r)
                r["agreement_with_cpu"] = found
                print(f"cpu vs {r['precision'][:20]}: scores within {found['max_rel_score_diff']:.1e} relative, "
                      f"{found['verdicts_differ']} verdicts differ")
        save()
        try:
            report["hf"] = hf_tiny_bfloat16(folder, "cuda" if cuda else "cpu")
        except Exception as error:  # noqa: BLE001 - the table above stands; say why this row is missing
            report["hf"] = f"failed: {type(error).__name__}: {error}"
    print(f"hf: {report['hf']}")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
