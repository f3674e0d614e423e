"""Speed and accuracy of the ``patchcore`` gate: fit time, images per second, peak memory, AUROC.

    python benchmarks/gate.py                        # MVTec-AD bottle from ../shared/data, on cpu
    python benchmarks/gate.py --benchmark demo       # the built-in demo, every category
    python benchmarks/gate.py --device cuda          # on a GPU, when there is one
    python benchmarks/gate.py --option coreset_ratio=0.01 --option num_neighbors=1

What is measured, per category:

- fit: the gate's ``fit`` with the fit cache off (unless ``--cache``): backbone
  load, feature extraction, coreset selection and calibration on held-out
  training normals, each also reported on its own;
- images/s: every test image loaded from disk and scored one at a time, as
  ``harness run`` does (anomaly map at the original size included);
- peak memory: the process's maximum resident set size so far
  (``ru_maxrss``), read right after scoring; on cuda also
  ``torch.cuda.max_memory_allocated``;
- image AUROC (rank-based, ties averaged), and pixel AUROC over all test
  pixels where masks exist, on the raw distance maps (not the clipped display
  maps), maps and masks resized to ``--pixel-size`` squares to bound memory;
  the false-alarm and miss rates at the calibrated threshold, which never saw
  a test image.

When anomalib is installed, its PatchCore runs on the same images with the
same backbone architecture and coreset ratio, for a speed comparison (its
timm backbone gets random weights here: no download is possible, so only its
speed is comparable). Nothing is installed or downloaded by this script.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from harness.gate_metrics import auroc  # noqa: E402
from harness.images import load_mask, load_rgb  # noqa: E402
from harness.plugins import load_registry  # noqa: E402
from harness.types import Category  # noqa: E402

from harness_patchcore import PatchCoreGate, PatchCoreOptions  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string


def load_categories(args: argparse.Namespace) -> list[Category]:
    registry = load_registry()
    if args.benchmark == "demo":
        return registry.get("benchmarks", "demo").obj.load(None).categories
    root = Path(args.data_root or ROOT.parent / "shared" / "data" / "mvtec_ad")
    if not (root / args.category).is_dir():
        sys.exit(f"no {args.category} folder under {root}: give --data-root (an MVTec-AD root)")
    return registry.get("benchmarks", "mvtec-ad").obj.load(root, [args.category]).categories


def measure_patchcore(category: Category, options: PatchCoreOptions, pixel_size: int) -> dict:
    import torch

    gate = PatchCoreGate(options)
    cuda = torch.cuda.is_available() and options.device != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    fitted = gate.fit(category)
    fit_s = time.perf_counter() - started
    info = fitted.info()

    labels, scores, flagged, pixel_maps, pixel_masks = [], [], [], [], []
    started = time.perf_counter()
    for sample in category.test_samples:
        image = load_rgb(sample.image)
        result = fitted.score(sample, image)
        labels.append(sample.is_anomalous)
        scores.append(result.score)
        flagged.append(result.flagged)
        # The raw distances, not the display map (clipped to [0, 1], which would create ties).
        pixel_map = getattr(result, "distance_map", None)
        if pixel_map is None:
            pixel_map = result.anomaly_map
        if pixel_map is not None:
            small = Image.fromarray(pixel_map).resize((pixel_size, pixel_size), Image.Resampling.BILINEAR)
            pixel_maps.append(np.asarray(small, dtype=np.float32))
            pixel_masks.append(load_mask(sample.mask, (pixel_size, pixel_size)))
    score_s = time.perf_counter() - started
    peak = peak_rss_mb()
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    labels_a, flagged_a = np.array(labels), np.array(flagged)
    has_masks = any(m.any() for m in pixel_masks)
    return {
        "category": category.name,
        "train": len(category.train_images),
        "test": len(labels),
        "fit_s": fit_s,
        "timings": info.get("timings", {}),
        "bank": info["memory_bank_size"],
        "images_per_s": len(labels) / score_s,
        "peak_rss_mb": peak,
        "gpu_peak_mb": gpu_peak,
        "image_auroc": auroc(labels_a, np.array(scores)),
        "pixel_auroc": auroc(np.stack(pixel_masks), np.stack(pixel_maps)) if has_masks else float("nan"),
        "threshold": info["threshold"],
        "threshold_source": info["threshold_source"],
        "false_alarm_rate": float(flagged_a[~labels_a].mean()) if (~labels_a).any() else float("nan"),
        "miss_rate": float((~flagged_a[labels_a]).mean()) if labels_a.any() else float("nan"),
        "device": info["device"],
        "cache": info["cache"],
    }


def measure_anomalib(category: Category, options: PatchCoreOptions) -> dict | str:
    """anomalib's PatchCore torch model on the same images, architecture and coreset ratio (speed only)."""
    try:
        import torch
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    except ImportError:
        return "anomalib is not installed: comparison skipped (this script installs nothing)"
    layers = {
        "efficientnet_lite0": ["blocks.2", "blocks.4"],
        "wide_resnet50_2": ["layer2", "layer3"],
        "resnet18": ["layer2", "layer3"],
    }[options.backbone]
    try:
        model = PatchcoreModel(layers=layers, backbone=options.backbone, pre_trained=False)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def tensor(path: Path) -> "torch.Tensor":
            image = load_rgb(path).resize((options.image_size, options.image_size), Image.Resampling.BILINEAR)
            top = (options.image_size - options.crop_size) // 2
            pixels = np.asarray(image)[top : top + options.crop_size, top : top + options.crop_size]
            batch = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
            return (batch - mean) / std

        started = time.perf_counter()
        model.train()
        with torch.no_grad():
            embedding = torch.cat([model(tensor(p)) for p in category.train_images])
        model.subsample_embedding(embedding, options.coreset_ratio)
        fit_s = time.perf_counter() - started
        model.eval()
        labels, scores = [], []
        started = time.perf_counter()
        with torch.no_grad():
            for sample in category.test_samples:
                output = model(tensor(sample.image))
                score = output["pred_score"] if isinstance(output, dict) else output.pred_score
                labels.append(sample.is_anomalous)
                scores.append(float(score.reshape(-1)[0]))
        score_s = time.perf_counter() - started
    except Exception as error:  # a different anomalib API: report, do not crash the benchmark
        return f"anomalib comparison failed: {type(error).__name__}: {error}"
    return {
        "fit_s": fit_s,
        "images_per_s": len(labels) / score_s,
        "image_auroc_random_weights": auroc(np.array(labels), np.array(scores)),
        "peak_rss_mb": peak_rss_mb(),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'category':<12} {'train':>5} {'test':>4} {'fit s':>6} {'feat':>5} {'core':>5} {'calib':>5} "
        f"{'bank':>6} {'img/s':>6} {'peak MB':>8} {'GPU MB':>7} {'img AUROC':>9} {'px AUROC':>8} "
        f"{'thresh':>7} {'FAR':>5} {'miss':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        t = r["timings"]
        gpu = f"{r['gpu_peak_mb']:.0f}" if r["gpu_peak_mb"] is not None else "-"
        print(
            f"{r['category']:<12} {r['train']:>5} {r['test']:>4} {r['fit_s']:>6.1f} {t.get('features_s', 0):>5.1f} "
            f"{t.get('coreset_s', 0):>5.1f} {t.get('calibration_s', 0):>5.1f} {r['bank']:>6} "
            f"{r['images_per_s']:>6.1f} {r['peak_rss_mb']:>8.0f} {gpu:>7} {r['image_auroc']:>9.4f} "
            f"{r['pixel_auroc']:>8.4f} {r['threshold']:>7.3g} {r['false_alarm_rate']:>5.2f} {r['miss_rate']:>5.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", choices=["bottle", "demo"], default="bottle",
                        help="bottle: one MVTec-AD category from --data-root; demo: the built-in demo")
    parser.add_argument("--data-root", help="MVTec-AD root [default: ../shared/data/mvtec_ad beside the checkout]")
    parser.add_argument("--category", default="bottle", help="MVTec-AD category for --benchmark bottle")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--option", action="append", type=parse_option, default=[],
                        help="any patchcore option as KEY=VALUE (JSON value), e.g. coreset_ratio=0.01")
    parser.add_argument("--cache", action="store_true", help="use the fit cache (default: off, so fit is timed)")
    parser.add_argument("--pixel-size", type=int, default=256, help="side of the squares pixel AUROC is computed on")
    parser.add_argument("--no-anomalib", action="store_true", help="skip the anomalib comparison")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    values = dict(args.option)
    values.setdefault("device", args.device)
    values.setdefault("cache", args.cache)
    options = PatchCoreOptions(**values)
    categories = load_categories(args)

    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("options:", json.dumps({k: v for k, v in options.model_dump().items() if v is not None}))
    rows = []
    for category in categories:
        rows.append(measure_patchcore(category, options, args.pixel_size))
    print()
    print_table(rows)
    print()
    print("threshold source:", rows[0]["threshold_source"])
    print(f"mean image AUROC: {np.mean([r['image_auroc'] for r in rows]):.4f}")

    if not args.no_anomalib:
        print()
        for category in categories:
            result = measure_anomalib(category, options)
            if isinstance(result, str):
                print(result)
                break
            print(f"anomalib PatchCore, {category.name}: {json.dumps(result)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
