"""The gate protocol, and the two gates that need no model: ``oracle`` and ``none``.

A gate, fitted on one category's training normals, flags test samples as anomalous; only flagged ones
reach a classifier, the others are predicted ``good``. Its `Gate.mode` tells templates what happened
to an image (`GATE_MODES`), so no prompt claims a detection that did not happen.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

from PIL import Image

from harness.errors import HarnessError
from harness.images import load_mask
from harness.run.mask_notes import mask_summary
from harness.options import Options
from harness.types import Category, GateResult, Sample

log = logging.getLogger(__name__)


class FittedGate(ABC):
    """A gate fitted on one category; scores that category's test samples."""

    #: How many samples the run hands `score_batch` at once (a GPU gate wants many).
    batch_size: int = 1

    @abstractmethod
    def score(self, sample: Sample, image: Image.Image) -> GateResult:
        """Score one sample. The image is already loaded (RGB)."""

    def score_batch(self, samples: Sequence[Sample], images: Sequence[Image.Image]) -> list[GateResult]:
        """Score several samples, one result each in order; by default one by one. A gate that scores a
        batch faster overrides it; the results must be those of `score`."""
        return [self.score(sample, image) for sample, image in zip(samples, images)]

    def info(self) -> dict[str, Any]:
        """Threshold and how it was set (``threshold``, ``threshold_source``, ...), for run.json."""
        return {}


#: What a flag means, as templates see it (``gate_mode``): ``detector`` -- a detector found the image
#: anomalous (the region is what it found); ``oracle`` -- its label says defective (the region is the
#: annotated defect); ``none`` -- nothing judged it, it may be normal (``good`` is a candidate).
GATE_MODES: tuple[str, ...] = ("detector", "oracle", "none")


class _DerivedMode:
    """`Gate.mode` of a class that does not set it, from its ``passes_all`` and ``uses_ground_truth`` (a
    descriptor, so a subclass inherits an explicit ``mode`` its parent set)."""

    def __get__(self, instance: Any, owner: type) -> str:
        if getattr(owner, "passes_all", False):
            return "none"
        if getattr(owner, "uses_ground_truth", False):
            return "oracle"
        return "detector"


class Gate(ABC):
    """A detector gate type. Subclasses set ``name``, ``description`` and ``Options``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: True when every sample is flagged, so ``good`` must be a candidate class.
    passes_all: ClassVar[bool] = False
    #: True when the gate reads ground truth (only the oracle should).
    uses_ground_truth: ClassVar[bool] = False
    #: False when a verdict depends only on the sample's files and label, never on pixel values, so a
    #: re-run may reuse it while those files are unchanged (harness.run.prompt_memo).
    reads_pixels: ClassVar[bool] = True
    #: What a flag means, one of `GATE_MODES`; templates read it as ``gate_mode``. Unless a gate sets
    #: it: ``none`` when it passes all, ``oracle`` when it uses ground truth, else ``detector``.
    mode: ClassVar[str] = _DerivedMode()  # type: ignore[assignment]

    def __init__(self, options: Options | None = None):
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def fit(self, category: Category) -> FittedGate:
        """Fit on ``category.train_images`` only; never look at test samples."""

    def describe(self) -> dict[str, Any]:
        """Parameters for the run's provenance (with the `mode` its prompts were worded for)."""
        return {"name": self.name, "mode": self.mode, "options": self.options.model_dump()}


def gate_mode(gate: Gate | type[Gate]) -> str:
    """The gate's `Gate.mode`, checked: a value outside `GATE_MODES` is a `HarnessError` naming the gate."""
    mode = gate.mode
    if mode not in GATE_MODES:
        raise HarnessError(
            f"gate {gate.name!r} has mode {mode!r}; a gate's mode must be one of {', '.join(GATE_MODES)}"
        )
    return mode


class OracleGate(Gate):
    """Flags exactly the anomalous samples, its map the ground-truth mask: the upper bound of any gate
    (VELM's "ground-truth masks" setting), isolating the classifier's share of the errors."""

    name = "oracle"
    description = "flags exactly the anomalous images; the region is the ground-truth mask"
    uses_ground_truth = True
    reads_pixels = False  # the label, the mask file and the image's size

    def fit(self, category: Category) -> FittedGate:
        missing = mask_summary(category)
        if missing:  # masks are optional: the images are still flagged, only the outline is lost
            log.warning("category %s: %s; the oracle gate flags them with no region to outline", category.name, missing)
        return _FittedOracle(missing)


class _FittedOracle(FittedGate):
    def __init__(self, missing_masks: str | None = None) -> None:
        self._regions = (
            "ground-truth masks" if missing_masks is None
            else f"not for every image: {missing_masks}; those are flagged with no region to outline"
        )

    def score(self, sample: Sample, image: Image.Image) -> GateResult:
        flagged = sample.is_anomalous
        region = load_mask(sample.mask, image.size) if (flagged and sample.mask) else None
        if region is not None and not region.any():
            region = None
        anomaly_map = region.astype("float32") if region is not None else None
        return GateResult(score=1.0 if flagged else 0.0, flagged=flagged, threshold=0.5, anomaly_map=anomaly_map,
                          region=region)

    def info(self) -> dict[str, Any]:
        return {"threshold": 0.5, "threshold_source": "ground truth (oracle)", "regions": self._regions}


class PassThroughGate(Gate):
    """Flags every sample: each image goes to the classifiers, with ``good`` as a candidate."""

    name = "none"
    description = "flags every image; the classifiers also decide good vs defective"
    passes_all = True
    reads_pixels = False

    def fit(self, category: Category) -> FittedGate:
        return _FittedPassThrough()


class _FittedPassThrough(FittedGate):
    def score(self, sample: Sample, image: Image.Image) -> GateResult:
        return GateResult(score=1.0, flagged=True, threshold=None)

    def info(self) -> dict[str, Any]:
        return {"threshold": None, "threshold_source": "none (every image is flagged)"}
