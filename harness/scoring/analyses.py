"""The core's own analyses (`harness.analyses`), registered by `harness.builtin` in run.json section order."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.analyses import FinishedRun
from harness.run.failfast import call_failures
from harness.run.mask_notes import add_pixel_auroc_notes
from harness.scoring import metrics
from harness.scoring.class_order import first_repeat, position_bias
from harness.scoring.decision_report import decisions_for_run
from harness.scoring.gate_metrics import gate_metrics, pixel_auroc


class StandardMetrics:
    name = "metrics"
    description = "accuracy (bootstrap interval), macro-F1, kappa per category and model, protocols velm and anomalous"

    def analyse(self, run: FinishedRun) -> dict[str, Any]:
        headline = first_repeat(run.records)  # the given class order: comparable with runs without repeats
        return {
            model: metrics.score_model([r for r in headline if r.model == model], run.label_sets,
                                       gate_passes_all=run.gate_passes_all, seed=run.seed, n_boot=run.n_boot)
            for model in run.models
        }


class Decisions:
    name = "decisions"
    description = "actions and their costs under the run's decision policy (with --policy)"

    def analyse(self, run: FinishedRun) -> dict[str, Any] | None:
        if run.policy is None:
            return None
        return decisions_for_run(first_repeat(run.records), run.policy, run.costs, run.models)


class PositionBias:
    name = "class_order"
    description = "accuracy per class order and answer consistency across orders (with --repeats)"

    def analyse(self, run: FinishedRun) -> dict[str, Any] | None:
        if run.repeats <= 1:
            return None
        return {"models": {
            model: position_bias([r for r in run.records if r.model == model], run.label_sets, run.repeats,
                                 seed=run.seed, n_boot=run.n_boot)
            for model in run.models
        }}


class GateMetrics:
    name = "gate_metrics"
    description = "the detector alone: image and pixel AUROC, rates at its threshold"

    def analyse(self, run: FinishedRun) -> dict[str, Any]:
        # Every model saw the same gate decisions: the first model's records carry them once.
        figures = gate_metrics([r for r in first_repeat(run.records) if r.model == run.models[0]])
        values = []
        for category, entry in figures["categories"].items():
            pairs = None if run.resumed else run.pixel_pairs.get(category)  # maps are not kept across a resume
            entry["pixel_auroc"] = pixel_auroc(pairs) if pairs else None
            if entry["pixel_auroc"] is not None:
                values.append(entry["pixel_auroc"])
        complete = values and len(values) == len(figures["categories"])
        figures["pixel_auroc"] = float(np.mean(values)) if complete else None
        add_pixel_auroc_notes(figures, run.categories, run.gate_name, run.resumed, run.pixel_pairs)
        return figures


class CallFailures:
    name = "call_failures"
    description = "per model: calls, failed calls by error kind, the first failure's redacted detail"

    def analyse(self, run: FinishedRun) -> dict[str, Any]:
        return call_failures(run.records, run.models)


#: In run.json order.
BUILTIN_ANALYSES = (StandardMetrics(), Decisions(), PositionBias(), GateMetrics(), CallFailures())
