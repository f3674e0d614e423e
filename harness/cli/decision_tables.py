"""The tables of a run's ``decisions`` section, as ``harness run`` prints them after a run with a policy
(and the ``harness act`` command of plugins/harness_act prints them for a finished run)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from harness.scoring.decisions import SEVERITIES
from harness.scoring.leaderboard import pct


def _count(hits: int, n: int, rate: float | None) -> str:
    return f"{pct(rate)} ({hits}/{n})"


def decision_tables(section: dict[str, Any], title: str) -> list[Table]:
    """Rich tables of a ``decisions`` section: one row per model, then its true x taken action counts."""
    summary = Table(title=title, title_justify="left", caption=f"policy {section['policy']['path']}; failed answers -> "
                    f"{section['error_action']}; severity columns: share of images of that true severity "
                    "predicted with it", caption_justify="left")
    severity_columns = [s for s in SEVERITIES if any(s in r["severity_accuracy"] for r in section["models"].values())]
    short = {"normal": "normal %", "negligible": "negl. %", "moderate": "moder. %", "critical": "crit. %"}
    for column in ("model", "n", "errors", "action acc %", "escapes %", "overkill %", "review %",
                   *(short[s] for s in severity_columns), "cost", "per image"):
        summary.add_column(column, overflow="fold", no_wrap=column in ("model", "cost"))
    for model, r in section["models"].items():
        cost = r["cost"]
        summary.add_row(
            model, str(r["n"]), str(r["n_errors"]), pct(r["action_accuracy"]),
            _count(r["escapes"], r["n_critical"], r["escape_rate"]),
            _count(r["overkills"], r["n_acceptable"], r["overkill_rate"]), pct(r["review_rate"]),
            *(pct(r["severity_accuracy"].get(s)) for s in severity_columns),
            "-" if cost is None else f"{cost['total']:.2f} {cost['unit']}".strip(),
            "-" if cost is None else f"{cost['per_image']:.3f}",
        )
    tables = [summary]
    for model, r in section["models"].items():
        taken = sorted({p for row in r["actions"].values() for p in row})
        matrix = Table(title=f"{model}: true action (rows) x action taken (columns)", title_justify="left")
        matrix.add_column("true \\ taken")
        for column in taken:
            matrix.add_column(column, justify="right")
        for true_action, row in r["actions"].items():
            matrix.add_row(true_action, *(str(row.get(p, 0)) for p in taken))
        tables.append(matrix)
    return tables
