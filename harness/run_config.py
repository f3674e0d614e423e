"""`RunConfig`: everything that decides what a run computes, and its run.json round trip.

``to_json`` is what run.json records under ``config`` (options redacted);
``from_json`` rebuilds the config from it, so ``harness run --resume`` finishes
a run exactly as it was started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.redact import redact_value


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Written to run.json as given."""

    benchmark: str
    models: list[str]
    gate: str = "oracle"
    prompt: str = "velm"
    data_root: Path | None = None
    categories: list[str] | None = None
    gate_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    results_dir: Path = Path("results")
    run_id: str | None = None
    n_boot: int = 1000
    output_formats: list[str] = field(default_factory=list)
    use_cache: bool = True
    prices: Path | None = None
    #: Backoff between retries of transient errors: initial wait and cap, in seconds.
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    #: Labelled examples per anomaly class drawn from the test set (seeded); excluded from scoring.
    shots: int = 0
    #: Evaluate the files a data root shares with a benchmark's released list when they differ.
    allow_partial: bool = False
    #: Candidate class order: "given", or "shuffle" with ``repeats`` >= 2 orders (harness/class_order.py).
    class_order: str = "given"
    repeats: int = 1
    #: Decision policy and cost matrix (paths or shipped names, harness/decisions.py); None for none.
    policy: Path | str | None = None
    costs: Path | str | None = None
    #: How replies are read: "lenient" or "strict" (only structured, JSON, exact and final-answer readings).
    answers: str = "lenient"
    #: The user's class file (`harness.class_file`); None: DATA_ROOT/classes.toml when present.
    classes: Path | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], results_dir: Path, run_id: str) -> "RunConfig":
        """The config a run.json recorded, to resume that run exactly as it was started."""
        return cls(
            benchmark=data["benchmark"], models=list(data["models"]), gate=data["gate"], prompt=data["prompt"],
            data_root=Path(data["data_root"]) if data.get("data_root") else None,
            categories=data.get("categories"), gate_options=data.get("gate_options") or {},
            model_options=data.get("model_options") or {}, seed=data.get("seed", 0), limit=data.get("limit"),
            results_dir=results_dir, run_id=run_id, n_boot=data.get("n_boot", 1000),
            prices=Path(data["prices"]) if data.get("prices") else None,
            retry_initial_s=data.get("retry_initial_s", 1.0), retry_max_s=data.get("retry_max_s", 60.0),
            shots=data.get("shots", 0),
            allow_partial=data.get("allow_partial", False),
            class_order=data.get("class_order", "given"), repeats=data.get("repeats", 1),
            policy=data.get("policy"), costs=data.get("costs"),
            answers=data.get("answers", "lenient"),
            classes=Path(data["classes"]) if data.get("classes") else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The config as run.json records it: paths as strings, gate and model options redacted."""
        return {
            "benchmark": self.benchmark,
            "data_root": str(self.data_root) if self.data_root else None,
            "categories": self.categories,
            "gate": self.gate,
            "gate_options": redact_value(self.gate_options),
            "models": self.models,
            "model_options": redact_value(self.model_options),
            "prompt": self.prompt,
            "seed": self.seed,
            "limit": self.limit,
            "n_boot": self.n_boot,
            "prices": str(self.prices) if self.prices else None,
            "retry_initial_s": self.retry_initial_s,
            "retry_max_s": self.retry_max_s,
            "shots": self.shots,
            "allow_partial": self.allow_partial,
            "class_order": self.class_order,
            "repeats": self.repeats,
            "policy": str(self.policy) if self.policy else None,
            "costs": str(self.costs) if self.costs else None,
            "answers": self.answers,
            "classes": str(self.classes) if self.classes else None,
        }
