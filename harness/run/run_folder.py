"""`RunFolder`: a run folder that has been read (run.json and the records of samples.jsonl).

`Run.execute` returns one; ``harness report`` and ``harness compare`` read finished runs into one
(the old names `RunResult` and `LoadedRun` are this class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record import Record, records_from_json
from harness.results import SAMPLES_FILE


@dataclass
class RunFolder:
    """One run: its id (as its reader names it), its folder, its run.json and its records (as read)."""

    run_id: str
    run_dir: Path
    run: dict[str, Any]
    records: list[dict[str, Any]]

    def typed_records(self) -> list[Record]:
        """The records as `Record`s (a field an old run folder lacks is None, a missing ``repeat`` 0); a line
        that is no record is a `HarnessError` naming samples.jsonl and the line."""
        return records_from_json(self.records, self.run_dir / SAMPLES_FILE)

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
