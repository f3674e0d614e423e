"""Analyses: figures computed from a run's finished records, each written to one section of run.json.

Every figure beyond the records comes from one: the core's own (metrics, gate metrics, position bias,
decisions, call failures: `harness.scoring.analyses`) and a plugin's (``register_analyses``). Each
runs once after the last record, in registration order, reads a `FinishedRun` without changing it and
returns its section (None: none); a mapping is merged into a section the run header already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from harness.record import Record
from harness.types import Category


@dataclass(frozen=True)
class FinishedRun:
    """What an analysis may read: every record (all repeats) as a `harness.record.Record` (``to_json()`` gives
    its samples.jsonl line), the model specs in ``--models`` order, the evaluated categories, ``pixel_pairs``
    per category (the gate's shrunk (anomaly map, true mask) pairs; None where an image had no map, empty
    after a resume) and the decision policy and costs, or None.
    """

    records: list[Record]
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
