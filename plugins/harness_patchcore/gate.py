"""The ``patchcore`` gate: PatchCore (Roth et al., CVPR 2022) fitted on one category's training normals.

``fit(category)`` reads ``category.train_images`` and nothing else of the
category (in particular never its test samples):

1. plan the calibration: hold some training normals out of a calibration
   bank, or cross-fit (`calibration.plan`);
2. extract locally aware patch features of the training images (`features.embed`);
3. keep a greedy coreset of them as a calibration bank (`memory.greedy_coreset`);
4. score the calibration normals against a bank without them and set the
   image and pixel thresholds from their scores (`calibration.QuantileRule`);
   then continue the coreset selection over all training images: that is
   the memory bank used for testing;
5. store the bank and the calibration in the fit cache (`cache`), and reuse
   them when the same fit is asked for again.

``score(sample, image)`` then gives, for one test image:

- ``score``: the largest nearest-neighbour distance of its patches, reweighted
  as in the paper (``num_neighbors``); ``flagged`` = score > threshold;
- ``anomaly_map``: the smoothed patch distances over the original image
  (height x width of the image given; the border cells' distances come from
  features in ``map_padding``, `border`), normalised for display: 0 at the
  median pixel of the calibration normals' maps, 0.5 at the pixel threshold,
  1 at twice that distance above the median (clipped to [0, 1]); so colours
  mean the same on every image of a category;
- ``region``: the pixels above the pixel threshold (equivalently, the
  display map above 0.5). A flagged image whose map stays below it gets its
  top 1% pixels instead, so a flagged image always has a region to outline.

Both are computed from the raw map (``distance_map``) when first read (`result`).

The border that the center crop cuts off (6.25% a side by default) is not
seen by the model: its map value is the normal level (display 0), so a
defect there is missed; set ``crop_size`` equal to ``image_size`` to see it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np
from PIL import Image

from harness.gates import FittedGate, Gate
from harness.types import Category, Sample

from harness_patchcore import cache, device_maps, features
from harness_patchcore.backbones import CPU_BFLOAT16_BACKBONES, FEATURES_REVISION, Backbone, load_backbone
from harness_patchcore.calibration import QuantileRule
from harness_patchcore.fitting import batch_size, batched, fit_model, resized_on_device, score_features_on_device
from harness_patchcore.bank import MemoryBank
from harness_patchcore.border import Border, border_ratio, embed_batch, own_border
from harness_patchcore.options import FIT_OPTIONS, PatchCoreOptions
from harness_patchcore.result import PatchCoreResult
from harness_patchcore.runtime import (
    exact_float32, import_torch, native_cpu_bfloat16, prepare_device, scoring_workers, usable_cpus,
)

log = logging.getLogger(__name__)


def reduced_precision(torch: Any, o: PatchCoreOptions, device: str) -> bool:
    """Whether the backbone runs in float16 (cuda, ``half_precision``) or bfloat16 (cpu, ``cpu_bfloat16``).

    A ``cpu_bfloat16`` request that cannot be honoured (a backbone not in
    `CPU_BFLOAT16_BACKBONES`, or a CPU without native bfloat16) runs in
    float32 with a warning; run.json's ``precision`` says what was used.
    """
    if device == "cuda":
        return o.half_precision
    if not o.cpu_bfloat16:
        return False
    if o.backbone not in CPU_BFLOAT16_BACKBONES:
        log.warning("cpu_bfloat16 applies to %s only; backbone %s runs in float32", ", ".join(CPU_BFLOAT16_BACKBONES), o.backbone)
        return False
    if not native_cpu_bfloat16(torch):
        log.warning("cpu_bfloat16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where it is slower; using float32")
        return False
    return True


class PatchCoreGate(Gate):
    """PatchCore on a frozen ImageNet CNN, calibrated on training normals left out of its memory bank."""

    name = "patchcore"
    description = (
        "PatchCore (Roth et al. 2022): nearest-neighbour distance to a coreset of normal patch features; "
        "threshold calibrated on training normals only"
    )
    Options = PatchCoreOptions

    def __init__(self, options: PatchCoreOptions | None = None):
        super().__init__(options)
        self._backbones: dict[tuple[str, bool], Backbone] = {}

    def backbone(self, device: str, half: bool) -> Backbone:
        """The backbone on ``device``, loaded once per gate (so once per run, not per category)."""
        key = (device, half)
        if key not in self._backbones:
            o = self.options
            self._backbones[key] = load_backbone(o.backbone, o.backbone_weights, device, o.crop_size, half)
        return self._backbones[key]

    def fit(self, category: Category) -> "FittedPatchCore":
        """Fit on ``category.train_images`` only (see the module docstring); reuse the cache when it holds this fit."""
        import harness_patchcore

        started = time.perf_counter()
        o: PatchCoreOptions = self.options
        torch = import_torch()
        device = prepare_device(o.device)
        half = reduced_precision(torch, o, device)
        backbone = self.backbone(device, half)
        timings = {"backbone_s": time.perf_counter() - started}

        train = list(category.train_images)  # the only part of the category a gate may read
        key = cache.fit_key(
            {
                "plugin_version": harness_patchcore.__version__,
                "torch": ".".join(torch.__version__.split(".")[:2]),
                "backbone": o.backbone,
                "features": FEATURES_REVISION,
                "weights": backbone.weights_identity(),
                "options": {name: getattr(o, name) for name in FIT_OPTIONS},
                "device": device,
                "half": half,
                "resized_on_device": resized_on_device(o, device),
                "train": cache.training_files_fingerprint(train),
            }
        )
        entry = cache.entry_path(cache.cache_root(o.cache_dir), key, category.name)
        stored = cache.load(entry) if o.cache else None
        if stored is not None:
            model = _from_cache(torch, backbone, o, device, *stored)
            if model is not None:
                timings["cache_load_s"] = time.perf_counter() - started - timings["backbone_s"]
                model.record(cache_status="hit", fit_seconds=time.perf_counter() - started, timings=timings)
                return model

        with exact_float32(torch):
            fit = fit_model(torch, backbone, o, device, train, timings)
        model = FittedPatchCore(torch, backbone, o, device, fit.bank, fit.projection, fit.calibration, fit.border_bank)
        status = "off"
        if o.cache:
            arrays = {"bank": fit.bank.features.cpu().numpy()}
            if fit.border_bank is not None:
                arrays["border_bank"] = fit.border_bank.features.cpu().numpy()
            if fit.projection is not None:
                arrays["projection"] = fit.projection.cpu().numpy()
            meta = {"format": cache.CACHE_FORMAT, "key": key, "category": category.name, "calibration": fit.calibration}
            status = "miss"
            try:
                cache.save(entry, arrays, meta)
            except OSError as error:  # a read-only or full disk costs the next run a refit, not this run
                log.warning("could not write the patchcore fit cache %s: %s", entry, error)
                status = f"miss (not saved: {error.strerror or error})"
        model.record(cache_status=status, fit_seconds=time.perf_counter() - started, timings=timings)
        return model


def _from_cache(
    torch: Any, backbone: Backbone, o: PatchCoreOptions, device: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> "FittedPatchCore | None":
    """The fitted gate a cache entry holds, or None when the entry is not one this code wrote."""
    try:
        bank = MemoryBank(torch, torch.from_numpy(arrays["bank"]).to(device))
        projection = torch.from_numpy(arrays["projection"]).to(device) if "projection" in arrays else None
        border_bank = None
        if own_border(o):
            border_bank = MemoryBank(torch, torch.from_numpy(arrays["border_bank"]).to(device))
        model = FittedPatchCore(torch, backbone, o, device, bank, projection, meta["calibration"], border_bank)
    except (KeyError, TypeError, ValueError) as error:
        log.warning("ignoring a patchcore cache entry that does not hold a fit: %s", error)
        return None
    return model


class FittedPatchCore(FittedGate):
    """A memory bank and its calibration for one category; scores that category's images."""

    def __init__(
        self,
        torch: Any,
        backbone: Backbone,
        options: PatchCoreOptions,
        device: str,
        bank: MemoryBank,
        projection: Any | None,
        calibration: dict[str, Any],
        border_bank: MemoryBank | None = None,
    ):
        if (border_bank is not None) != own_border(options):
            raise ValueError("a border bank goes with a map_padding other than neighbourhood_padding, and only then")
        self.torch = torch
        self.backbone = backbone
        self.options = options
        self.device = device
        self.bank = bank
        self.projection = projection
        self.calibration = calibration
        #: The map's border cells are searched here when they have their own padding (`border`).
        self.border_bank = border_bank
        self.rule = QuantileRule(options.target_false_alarm_rate, options.threshold_margin)
        # A user's threshold replaces the image threshold only; the region still comes from the calibrated pixel threshold.
        self.threshold = float(options.threshold) if options.threshold is not None else float(calibration["threshold"])
        self.pixel_threshold = float(calibration["pixel_threshold"])
        self.normal_level = float(calibration["normal_level"])
        self._info: dict[str, Any] = {}

    def record(self, cache_status: str, fit_seconds: float, timings: dict[str, float]) -> None:
        """Note how this fit came about, for `info` (and so for run.json)."""
        c, o = self.calibration, self.options
        rule = self.rule.describe(c["scored"], f"image scores of {c['evidence']}")
        calibrated = float(c["threshold"])
        source = rule if o.threshold is None else f"user override (calibrated: {calibrated:.6g} = {rule})"
        self._info = {
            "threshold": self.threshold,
            "threshold_source": source,
            "calibrated_threshold": calibrated,
            "pixel_threshold": self.pixel_threshold,
            "pixel_threshold_source": self.rule.describe(c["scored"], f"anomaly-map maxima of {c['evidence']}"),
            "calibration": c["mode"],
            "held_out": c["scored"],
            "held_out_scores": {
                "min": min(c["scores"]),
                "median": float(np.median(c["scores"])),
                "max": max(c["scores"]),
            },
            "memory_bank_size": len(self.bank),
            "map_border": self.map_border(),
            "training_patches": c["training_patches"],
            "fit_images": c["fit_images"],
            "training_images": c["training_images"],
            "fit_seconds": round(fit_seconds, 3),
            "timings": {name: round(value, 3) for name, value in timings.items()},
            "cache": cache_status,
            "device": self.device,
            "precision": self.precision(),
            "backbone": o.backbone,
            "backbone_weights": str(self.backbone.weights),
        }

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def map_border(self) -> dict[str, Any]:
        """How the map's border cells were scored, for run.json."""
        o = self.options
        if self.border_bank is None:
            return {"padding": o.map_padding, "own_bank": False}
        return {"padding": o.map_padding, "own_bank": True, "bank_size": len(self.border_bank), "ratio": border_ratio(o)}

    def precision(self) -> str:
        """What the numbers were computed in, for run.json: features, distances, and TF32 on a GPU."""
        stated = f"{str(self.backbone.dtype).removeprefix('torch.')} features, float32 distances"
        return stated if self.device == "cpu" else f"{stated}; TF32 off for distances and the backbone's convolutions"

    @property
    def batch_size(self) -> int:
        """On a CPU, two images per scoring thread (`runtime.scoring_workers`); on a GPU, one device batch."""
        return 2 * usable_cpus() if self.device == "cpu" else batch_size(self.options, self.device)

    def score(self, sample: Sample, image: Image.Image) -> PatchCoreResult:
        return self.score_images([image])[0]

    def score_batch(self, samples: Sequence[Sample], images: Sequence[Image.Image]) -> list[PatchCoreResult]:
        return self.score_images(images)

    def score_images(self, images: Sequence[Image.Image]) -> list[PatchCoreResult]:
        """Score loaded images, one result each, its maps at that image's size: on a CPU each image on one
        thread of `runtime.scoring_workers` (so a score is the same whatever the batch and the cores),
        on a GPU in batches."""
        if self.device == "cpu":
            return list(scoring_workers(self.torch).map(lambda image: self._score_group([image])[0], images))
        results: list[PatchCoreResult] = []
        for group in batched(images, batch_size(self.options, self.device)):
            results.extend(self._score_group(group))
        return results

    def _score_group(self, group: Sequence[Image.Image]) -> list[PatchCoreResult]:
        """One batch, scored where the gate runs, its maps brought to the images' sizes by `finish`.

        On a GPU the batch comes here whole: its images are resized and cropped on the scoring threads
        (on an H200's host, 4.5 ms an image on one thread against 0.14 for the network), or on the device
        (option ``resize_on``), and it is padded to the device batch size, so the backbone always sees one
        shape (`features.to_batch`).
        """
        o, torch = self.options, self.torch
        on_gpu = self.device != "cpu"  # on a CPU this runs on a scoring thread already
        rows = batch_size(o, self.device) if on_gpu else None
        if resized_on_device(o, self.device):
            pictures = [image if image.mode == "RGB" else image.convert("RGB") for image in group]
            batch = features.whole_to_batch(torch, pictures, self.backbone, o.image_size, o.crop_size, rows,
                                            scoring_workers(torch))
        else:
            def crop(image: Image.Image) -> np.ndarray:
                return features.preprocess(image, o.image_size, o.crop_size)

            crops = list(scoring_workers(torch).map(crop, group)) if on_gpu else [crop(image) for image in group]
            batch = features.to_batch(torch, crops, self.backbone, rows=rows)
        with exact_float32(torch):
            patch_features, border = self.patch_features(batch, len(group))
            scores, maps = score_features_on_device(torch, self.bank, patch_features, o, border)
        return self.finish(scores.float().cpu().numpy(), maps, group)

    def patch_features(self, batch: Any, count: int) -> tuple[Any, Border | None]:
        """The first ``count`` images' patch features (``count``, h, w, D) of a device batch, and, when
        the map's border has its own padding, its `Border` (features in that padding, and the bank)."""
        patch, cells, border = embed_batch(self.torch, self.backbone, batch, self.projection, self.options)
        return patch[:count], None if border is None else Border(self.border_bank, cells, border[:count])

    def finish(self, scores: np.ndarray, maps: Any, group: Sequence[Image.Image]) -> list[PatchCoreResult]:
        """A batch's results from its image scores and crop maps (still on the device): the maps brought to
        each image's size where ``map_finishing`` says (`device_maps`); on a CPU in this thread, already one
        of the scoring threads. torch's resize to bottle's 900x900 took 3.5 ms on one CPU thread against
        PIL's 5.9. Each result's region and display map are computed from its map when read (`result`)."""
        o, torch = self.options, self.torch
        sizes = [image.size for image in group]
        if self.device != "cpu" and o.map_finishing == "device":
            sized = device_maps.sized_on_device(torch, maps, sizes, o.image_size, self.normal_level)
        else:
            workers = scoring_workers(torch) if self.device != "cpu" else None
            crop_maps = torch.from_numpy(device_maps.to_host(torch, maps.float()))  # 0.2 MB an image
            sized = device_maps.sized_on_host(torch, crop_maps, sizes, o.image_size, self.normal_level, workers)
        return [
            PatchCoreResult(float(score), float(score) > self.threshold, self.threshold, distances,
                            self.pixel_threshold, self.normal_level)
            for score, distances in zip(scores, sized)
        ]
