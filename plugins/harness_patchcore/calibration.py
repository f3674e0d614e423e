"""Calibration on training normals only: which images score which, and the threshold rule.

A threshold must come from scores that look like a normal *test* image's
score: a training normal scored against a memory bank that does not contain
it. Two plans give such scores (`plan`):

- ``holdout`` (the default from `AUTO_CROSSFIT_BELOW` training images up):
  a seeded ``held_out_fraction`` of the training normals is left out of a
  calibration bank built from the rest, and scored against it.
- ``crossfit`` (the default below that, where a 20% hold-out would be a
  handful of images): the normals are split into `CROSSFIT_FOLDS` folds, each
  fold is scored against a bank built (with the same coreset ratio) from the
  other folds. Every training image gets an out-of-fold score.

In both, the memory bank kept for testing covers all training images: the
greedy selection of the last calibration bank is continued over all of them
(`memory.greedy_coreset` with ``initial``), to the same coreset ratio. No
normal is wasted on calibration alone -- with a 1% coreset on bottle, a bank
of 80% of the images lost about 0.03 image AUROC against one of all of them.
The final bank holds 25% more data than the calibration bank, so test normals
tend to score a little lower than the calibration scores: the error is
towards fewer false alarms than the target, never more.

The threshold is then read off those scores:

    threshold = margin * Q(1 - target_false_alarm_rate)

where Q(p) is the empirical p-quantile taken as an order statistic (the
ceil(p * n)-th smallest score, never interpolated below it), so at most a
fraction ``target_false_alarm_rate`` of the calibration normals lies above
it. With the defaults (rate 0.05, margin 1.0) and 42 held-out images that is
the 40th smallest of 42 scores. The test set is never read, not even for a
default.

The same rule, applied to the largest value of each calibration normal's
smoothed anomaly map, gives the pixel threshold that cuts the map into the
region shown to the classifiers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.errors import HarnessError

#: Held-out normals wanted at least (when the training set allows: at most half is held out).
MIN_HELD_OUT = 5
#: With fewer training images than this, ``auto`` calibration cross-fits.
AUTO_CROSSFIT_BELOW = 100
CROSSFIT_FOLDS = 5


@dataclass(frozen=True)
class Plan:
    """Which training images make the final memory bank, and which bank scores which images.

    Indices refer to ``images`` (the training paths, sorted). Each round is
    (bank image indices, scored image indices); ``final_bank`` is every
    image, so it contains each round's bank (the final selection continues
    the last round's).
    """

    mode: str
    images: list[Path]
    final_bank: list[int]
    rounds: list[tuple[list[int], list[int]]]

    @property
    def scored(self) -> int:
        return sum(len(scored) for _, scored in self.rounds)

    def describe(self) -> str:
        """Which images were scored, for "... of the image scores of <this>"."""
        if self.mode == "crossfit":
            return (
                f"{self.scored} training normals scored out of fold ({len(self.rounds)}-fold cross-fit: "
                "each against a memory bank built without its fold)"
            )
        return f"{self.scored} held-out training normals (scored against a memory bank built without them)"


def plan(paths: Sequence[Path], mode: str, fraction: float, seed: int) -> Plan:
    """The calibration plan for ``paths`` (see the module docstring); fewer than two images is an error."""
    images = sorted(Path(p) for p in paths)
    count = len(images)
    if count < 2:
        raise HarnessError(
            f"the patchcore gate needs at least 2 training images to fit and calibrate, got {count}"
        )
    if mode == "auto":
        mode = "crossfit" if count < AUTO_CROSSFIT_BELOW else "holdout"
    order = list(range(count))
    random.Random(seed).shuffle(order)
    if mode == "crossfit":
        folds = min(CROSSFIT_FOLDS, count)
        rounds = []
        for k in range(folds):
            scored = sorted(order[k::folds])
            rounds.append((sorted(set(order) - set(scored)), scored))
        return Plan("crossfit", images, list(range(count)), rounds)
    if mode != "holdout":
        raise HarnessError(f"unknown calibration {mode!r}; expected auto, holdout or crossfit")
    held = min(max(round(fraction * count), MIN_HELD_OUT), count // 2)
    fit = sorted(order[held:])
    return Plan("holdout", images, list(range(count)), [(fit, sorted(order[:held]))])


@dataclass(frozen=True)
class QuantileRule:
    """The threshold rule: ``margin`` times the (1 - ``false_alarm_rate``) order-statistic quantile."""

    false_alarm_rate: float
    margin: float

    def rank(self, count: int) -> int:
        """1-based rank of the order statistic used for ``count`` scores."""
        return min(count, max(1, math.ceil((1.0 - self.false_alarm_rate) * count - 1e-9)))

    def apply(self, scores: Sequence[float]) -> float:
        values = np.sort(np.asarray(scores, dtype=np.float64))
        if values.size == 0:
            raise ValueError("no scores to calibrate on")
        return float(self.margin * values[self.rank(values.size) - 1])

    def describe(self, count: int, evidence: str) -> str:
        """The rule in words, e.g. "quantile 0.95 (order statistic 40 of 42) of the <evidence>, times margin 1"."""
        level = 1.0 - self.false_alarm_rate
        return (
            f"quantile {level:g} (order statistic {self.rank(count)} of {count}) of the {evidence}, "
            f"times margin {self.margin:g}"
        )
