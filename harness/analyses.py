"""Analyses: figures computed from a run's finished records, each written to one section of run.json.

Every figure a run reports beyond its records comes from an `Analysis`: the standard metrics, the
gate's metrics, position bias, decisions and call failures are the core's own (registered by
`harness.builtin`, `harness.scoring.analyses`), and a plugin adds one through the
``register_analyses`` hook. An analysis reads a `FinishedRun` and changes nothing in it: a record is
written once, when its sample finishes, and every analysis sees the same finished list.

Each analysis runs once, after the last record, in registration order; it returns the value of its
run.json section, or None to write nothing (decisions without a policy, say). When the run header
already holds a section of that name (``class_order``), a returned mapping is merged into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from harness.types import Category


@dataclass(frozen=True)
class FinishedRun:
    """What an analysis may read: the records and what the run was asked to do.

    ``records`` are every record, all repeats; ``models`` the model specs in ``--models`` order;
    ``categories`` the evaluated categories (labels, masks); ``pixel_pairs`` per category the
    shrunk (anomaly map, true mask) pairs the gate produced, None for a category where some image
    had no map, empty when the run was resumed (maps are not stored); ``policy`` and ``costs`` the
    decision policy and cost matrix objects, or None.
    """

    records: list[dict[str, Any]]
    models: list[str]
    categories: list[Category]
    gate_name: str
    gate_passes_all: bool
    seed: int
    n_boot: int
    repeats: int
    resumed: bool
    pixel_pairs: dict[str, Any] = field(default_factory=dict)
    policy: Any = None
    costs: Any = None

    @property
    def label_sets(self) -> dict[str, list[str]]:
        """Per category, its labels (``good`` first)."""
        return {c.name: c.labels for c in self.categories}


@runtime_checkable
class Analysis(Protocol):
    """Computes one run.json section from a finished run."""

    #: The run.json key it writes.
    name: str
    description: str

    def analyse(self, run: FinishedRun) -> Any | None:
        """The section's value, or None to write nothing."""
        ...


def apply_analyses(analyses: list[Analysis], finished: FinishedRun, run: dict[str, Any]) -> None:
    """Run each analysis once, in order, writing its section into ``run`` (the run.json dict)."""
    for analysis in analyses:
        value = analysis.analyse(finished)
        if value is None:
            continue
        if isinstance(run.get(analysis.name), dict) and isinstance(value, dict):
            run[analysis.name].update(value)
        else:
            run[analysis.name] = value
