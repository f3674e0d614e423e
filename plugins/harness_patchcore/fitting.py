"""Fitting: training images to a memory bank and a calibration, and patch features to scores.

`fit_model` runs steps 1-4 of `harness_patchcore.gate`: plan the calibration,
extract every training image's patch features once, build the memory bank
(and, for a cross-fit, one bank per fold) by greedy coreset selection, and
score the calibration normals. When the map's border has its own padding
(`border`), each bank has a border bank beside it, selected the same way.
`score_features` is the scoring shared by calibration and testing, so both
see exactly the same computation.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from harness.errors import BadInputError, HarnessError
from harness.images import load_rgb

from harness_patchcore import calibration, features
from harness_patchcore.border import Border, border_ratio, embed_batch
from harness_patchcore.backbones import Backbone
from harness_patchcore.bank import MemoryBank
from harness_patchcore.memory import greedy_coreset, random_projection, selection_space
from harness_patchcore.options import PatchCoreOptions
from harness_patchcore.runtime import usable_cpus


@dataclass
class Fit:
    """What fitting produces: the bank, the optional feature projection, and the calibration record."""

    bank: MemoryBank
    projection: Any | None
    calibration: dict[str, Any]
    border_bank: MemoryBank | None = None


def batch_size(o: PatchCoreOptions, device: str) -> int:
    # A GPU wants large batches. On a few CPU cores, batches of 4 keep EfficientNet-Lite0's
    # activations in cache (8 was 25% slower in float32); the ResNets' dense convolutions
    # gain from 8 (wide_resnet50_2 in bfloat16 on bottle: 10.2 instead of 11.5 s).
    if o.batch_size:
        return o.batch_size
    if device == "cuda":
        return 32
    return 4 if o.backbone == "efficientnet_lite0" else 8


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    group: list[Any] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def resized_on_device(o: PatchCoreOptions, device: str) -> bool:
    """Whether images go to ``device`` whole and are resized there (option ``resize_on``; never on a CPU)."""
    return o.resize_on == "device" and device != "cpu"


def load_crops(paths: Sequence[Path], o: PatchCoreOptions, whole: bool = False) -> Iterator[np.ndarray]:
    """Backbone crops of training images (``whole``: the decoded images, for `features.whole_to_batch`),
    in order, decoded and cropped ahead on one thread per core (PIL releases the GIL; these were at most
    4 threads before), at most 8 images a thread ahead of the consumer, so whole images do not pile up.
    A GPU waits on them: on an H200 machine decoding took 3.1 ms an image on its 16 threads and resizing
    4.5 ms on one, the network 0.14 ms."""

    def load(path: Path) -> np.ndarray:
        try:
            image = load_rgb(path)
        except BadInputError as error:
            raise HarnessError(f"training image unusable: {error}") from None
        return np.asarray(image) if whole else features.preprocess(image, o.image_size, o.crop_size)

    threads = usable_cpus()
    pool = ThreadPoolExecutor(max_workers=threads)
    ahead: deque[Future] = deque()
    try:
        for path in paths:
            ahead.append(pool.submit(load, path))
            if len(ahead) >= 8 * threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:  # on an error, do not wait for the images still queued
        pool.shutdown(wait=True, cancel_futures=True)


def extract(
    torch: Any, backbone: Backbone, o: PatchCoreOptions, projection: Any, crops: Iterable[np.ndarray], size: int,
    whole: bool = False,
) -> tuple[Any, Any | None, Any | None]:
    """Patch features (n, h, w, d) of all ``crops`` (``whole``: decoded images, resized on the device), batch
    by batch, on the backbone's device (on a GPU, the last batch padded to ``size``: one shape, as for
    scoring; see `features.to_batch`); then, when the map's border has its own padding, the border cells'
    features (n, R, d) and the cells (R,), else None and None."""
    rows = size if str(backbone.device) != "cpu" else None
    parts, border_parts, cells = [], [], None
    for group in batched(crops, size):
        if whole:
            batch = features.whole_to_batch(torch, group, backbone, o.image_size, o.crop_size, rows)
        else:
            batch = features.to_batch(torch, group, backbone, rows)
        patch, cells, border = embed_batch(torch, backbone, batch, projection, o)
        parts.append(patch[: len(group)])
        if border is not None:
            border_parts.append(border[: len(group)])
    every = torch.cat(parts) if len(parts) > 1 else parts[0]
    return every, (torch.cat(border_parts) if border_parts else None), cells


def select_coreset(
    torch: Any, points: Any, patches: int, images: list[int], o: PatchCoreOptions, initial: Any | None = None,
    ratio: float | None = None,
) -> Any:
    """Rows of the training patch features kept for a memory bank over training ``images``.

    ``points`` are all training images' patch features in selection space
    (`memory.selection_space`), ``patches`` per image, image by image.
    ``ratio`` (default ``coreset_ratio``) of the given images' features are kept by greedy
    coreset selection; ``initial`` (rows, all among those images) continues a
    selection made before on part of them.
    """
    starts = torch.tensor(images, device=points.device) * patches
    rows = (starts.unsqueeze(1) + torch.arange(patches, device=points.device)).reshape(-1)
    keep = max(1, round((o.coreset_ratio if ratio is None else ratio) * rows.numel()))
    everything = rows.numel() == points.shape[0]  # rows is then 0..N-1: no copy, no renumbering
    local_initial = None
    if initial is not None:
        local_initial = initial if everything else torch.searchsorted(rows, initial)
    chosen = greedy_coreset(
        torch, points if everything else points.index_select(0, rows), keep, None, o.seed, local_initial
    )
    return chosen if everything else rows.index_select(0, chosen)


def bank_of(torch: Any, every: Any, rows: Any) -> MemoryBank:
    return MemoryBank(torch, every.reshape(-1, every.shape[-1]).index_select(0, rows))


def score_features(
    torch: Any, bank: MemoryBank, patch_features: Any, o: PatchCoreOptions, border: Border | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (n,) and smoothed crop maps (n, C, C) for patch features (n, h, w, d)."""
    scores, maps = score_features_on_device(torch, bank, patch_features, o, border)
    return scores.float().cpu().numpy(), maps.float().cpu().numpy()


def score_features_on_device(
    torch: Any, bank: MemoryBank, patch_features: Any, o: PatchCoreOptions, border: Border | None = None
) -> tuple[Any, Any]:
    """`score_features` as tensors on the bank's device: nothing leaves it. With a ``border``, the
    map's border cells come from it (`border.Border.applied`); the image scores never do."""
    count, height, width, dim = patch_features.shape
    flat = patch_features.reshape(count, height * width, dim)
    distance, index = bank.nearest(flat.reshape(-1, dim))
    distance = distance.view(count, height * width)
    index = index.view(count, height * width)
    scores = bank.reweighted(distance, index, flat, o.num_neighbors)
    mapped = distance if border is None else border.applied(distance)
    return scores, features.crop_maps(torch, mapped.view(count, height, width), o.crop_size, o.smoothing_sigma)


def fit_model(
    torch: Any, backbone: Backbone, o: PatchCoreOptions, device: str, train: Sequence[Path], timings: dict[str, float]
) -> Fit:
    """Plan, extract, build the bank(s), calibrate; ``timings`` gets features_s, coreset_s, calibration_s."""
    the_plan = calibration.plan(train, o.calibration, o.held_out_fraction, o.seed)
    size = batch_size(o, device)

    clock = time.perf_counter()
    dim = sum(backbone.channels)
    projection = None
    if o.feature_dim is not None and o.feature_dim < dim:
        projection = random_projection(torch, dim, o.feature_dim, o.seed + 2, device)
    whole = resized_on_device(o, device)
    crops: Iterable[np.ndarray] = load_crops(the_plan.images, o, whole)
    if device == "cpu":
        # Decode every image first (a few MB of crops): decoding alongside the network makes the two
        # fight over the same cores, and oneDNN's threads lose more than the overlap gains
        # (bottle, 209 images, 2 cores: 12.7 instead of 14.1 s for wide_resnet50_2). A GPU overlaps them.
        crops = list(crops)
    every, border_every, cells = extract(torch, backbone, o, projection, crops, size, whole)
    timings["features_s"] = time.perf_counter() - clock

    def subset(indices: list[int], of: Any = every) -> Any:
        return of.index_select(0, torch.tensor(indices, device=of.device))

    scores: list[float] = []
    maxima: list[float] = []
    medians: list[float] = []
    clock = time.perf_counter()
    patches = every.shape[1] * every.shape[2]
    points = selection_space(torch, every.reshape(-1, every.shape[-1]), o.coreset_projection_dim, o.seed)
    border_points = None
    if border_every is not None:
        border_points = selection_space(torch, border_every.reshape(-1, border_every.shape[-1]), o.coreset_projection_dim, o.seed)
    coreset_s = time.perf_counter() - clock
    scoring_s = 0.0
    last_rows = last_border_rows = None
    for bank_images, scored in the_plan.rounds:
        clock = time.perf_counter()
        last_rows = select_coreset(torch, points, patches, bank_images, o)
        round_bank = bank_of(torch, every, last_rows)
        if border_points is not None:
            last_border_rows = select_coreset(torch, border_points, cells.numel(), bank_images, o, ratio=border_ratio(o))
            round_border_bank = bank_of(torch, border_every, last_border_rows)
        coreset_s += time.perf_counter() - clock
        clock = time.perf_counter()
        for group in batched(scored, size):
            border = None if border_points is None else Border(round_border_bank, cells, subset(group, border_every))
            batch_scores, maps = score_features(torch, round_bank, subset(group), o, border)
            scores.extend(float(s) for s in batch_scores)
            maxima.extend(float(m.max()) for m in maps)
            medians.extend(float(np.median(m)) for m in maps)
        scoring_s += time.perf_counter() - clock
    # The final bank covers every training image: it continues the last calibration bank's
    # selection over all of them, so the work already done is not repeated.
    clock = time.perf_counter()
    bank = bank_of(torch, every, select_coreset(torch, points, patches, the_plan.final_bank, o, initial=last_rows))
    border_bank = None
    if border_points is not None:
        border_rows = select_coreset(torch, border_points, cells.numel(), the_plan.final_bank, o, initial=last_border_rows,
                                     ratio=border_ratio(o))
        border_bank = bank_of(torch, border_every, border_rows)
    coreset_s += time.perf_counter() - clock
    timings["coreset_s"] = coreset_s
    timings["calibration_s"] = scoring_s

    rule = calibration.QuantileRule(o.target_false_alarm_rate, o.threshold_margin)
    record = {
        "mode": the_plan.mode,
        "evidence": the_plan.describe(),
        "threshold": rule.apply(scores),
        "pixel_threshold": rule.apply(maxima),
        # The display map's zero: the typical pixel of a normal image's map.
        "normal_level": float(np.median(medians)),
        "scores": scores,
        "map_maxima": maxima,
        "scored": len(scores),
        "fit_images": len(the_plan.final_bank),
        "training_images": len(the_plan.images),
        "training_patches": int(len(the_plan.final_bank) * every.shape[1] * every.shape[2]),
    }
    return Fit(bank, projection, record, border_bank)
