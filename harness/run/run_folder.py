"""`RunFolder`: a run folder that has been read (run.json and the records of samples.jsonl).

`harness.run.runner.Run.execute` returns one for the run it just wrote;
``harness report`` (`harness.report.data.load_runs`) and ``harness compare``
(`harness.scoring.compare.resolve_run`) read finished runs into one. The old names
`harness.run.runner.RunResult`, `harness.report.data.LoadedRun` and
`harness.scoring.compare.LoadedRun` are this class. ``records`` are the lines of
samples.jsonl as read; `RunFolder.typed_records` gives them as `harness.record.Record`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record import Record, records_from_json


@dataclass
class RunFolder:
    """One run: its id, its folder, its run.json and its records.

    ``run_id`` is set by whoever reads the folder, as that reader always has:
    the runner knows the id it wrote, the report takes run.json's ``run_id``
    (the folder name if the key is missing), and compare takes run.json's
    ``run_id`` or, when that is empty, the folder name.
    """

    run_id: str
    run_dir: Path
    run: dict[str, Any]
    records: list[dict[str, Any]]

    def typed_records(self) -> list[Record]:
        """The records as `Record`s (a field an old run folder lacks is None, a missing ``repeat`` 0)."""
        return records_from_json(self.records)

    @property
    def gate(self) -> str:
        """The gate the run used (run.json ``config.gate``)."""
        return self.run["config"]["gate"]

    @property
    def benchmark(self) -> str:
        """The benchmark's name, as a string ("None" when run.json has none)."""
        return str((self.run.get("benchmark") or {}).get("name"))

    @property
    def manifest_hash(self) -> str:
        """The hash of the evaluated image set, as a string ("None" when run.json has none)."""
        return str((self.run.get("benchmark") or {}).get("manifest_hash"))

    @property
    def models(self) -> list[str]:
        """Model specs in run order (config first, then any only seen in records)."""
        models = list((self.run.get("config") or {}).get("models") or [])
        for record in self.records:
            if record["model"] not in models:
                models.append(record["model"])
        return models

    @property
    def scored_models(self) -> list[str]:
        """The models run.json has figures for (its ``metrics`` keys), in that order."""
        return list(self.run.get("metrics", {}))

    def describe(self) -> dict[str, Any]:
        """Id, folder, benchmark, manifest hash and status: how a report names the run."""
        return {"run_id": self.run_id, "path": str(self.run_dir), "benchmark": self.benchmark,
                "manifest_hash": self.manifest_hash, "status": self.run.get("status")}
