"""The core's own plugin: the gates that need no model, the CSV result writer, the core commands,
registered ``trylast`` so a plugin may replace any of them by name.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from harness.gates import OracleGate, PassThroughGate
from harness.hookspecs import hookimpl
from harness.record import FIELDS, records_from_json
from harness.results import ResultWriter


class CsvWriter(ResultWriter):
    """``samples.csv``: the per-sample records flattened, for spreadsheets."""

    name = "csv"
    description = "samples.csv with one row per (sample, model)"
    #: The record fields shown (`harness.record.Record` names) and, between them, three flattened ones.
    columns = [
        "sample_id", "category", "image", "true_label", "gate_score", "gate_flagged", "model", "served_model", "replica",
        "repeat", "predicted_label", "answer_rule", "correct", "error", "error_transient", "outcome", "latency_s",
        "attempts", "attempts_total", "tokens_in", "tokens_out", "cost_usd", "prompt_region",
    ]
    flattened = ("gate_score", "gate_flagged", "prompt_region")

    def write(self, run_dir: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> Path:
        path = run_dir / "samples.csv"
        shown = [name for name in self.columns if name not in self.flattened]
        unknown = [name for name in shown if name not in FIELDS]
        if unknown:  # a renamed record field must not become an empty column
            raise ValueError(f"CsvWriter.columns names no record field: {', '.join(unknown)}")
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            for record in records_from_json(records):
                regions = record.prompt_images or {}  # the stored outline region, for auditing the prompt
                writer.writerow({**{name: getattr(record, name) for name in shown},
                                 "gate_score": record.gate.score if record.gate else None,
                                 "gate_flagged": record.gate.flagged if record.gate else None,
                                 "prompt_region": regions.get("region")})
        return path


@hookimpl(tryfirst=True)
def register_commands(cli):
    # Called before the plugins' implementations, so a plugin's command of the same name wins, as before.
    # Imported here, at registration: the modules import the CLI, which imports the registry.
    from harness.cli.plugins import plugins_command

    cli.add_command(plugins_command)


@hookimpl(trylast=True)
def register_gates(register):
    register(OracleGate)
    register(PassThroughGate)


@hookimpl(trylast=True)
def register_analyses(register):
    from harness.scoring.analyses import BUILTIN_ANALYSES

    for analysis in BUILTIN_ANALYSES:
        register(analysis)


@hookimpl(trylast=True)
def register_result_writers(register):
    register(CsvWriter())


@hookimpl(trylast=True)
def register_executors(register):
    from harness.run.runner import Run  # the runner imports the registry

    register(Run)
