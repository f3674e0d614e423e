"""What the report shows, gathered from finished run folders (no HTML here).

Leaderboard rows come from `harness.scoring.leaderboard`, so the report and LEADERBOARD.md agree,
and runs over different image sets (manifest hashes) are kept apart as there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.scoring import leaderboard
from harness.errors import HarnessError
from harness.scoring.metrics import ERROR_PREFIX, OUTCOMES
from harness.results import RUN_FILE, load_run, resolve_run_dir
from harness.run.run_folder import RunFolder


#: The name this module gave `RunFolder` before there was one class for a run folder read.
LoadedRun = RunFolder


@dataclass
class Point:
    """One model of one run on the trade-off plots."""

    rank: int
    label: str
    accuracy: float | None
    latency_p95: float | None
    cost_per_1000: float | None
    pareto_latency: bool = False
    pareto_cost: bool = False


@dataclass
class Group:
    """Runs over one image set (benchmark + manifest hash): one ranked table, one pair of plots."""

    benchmark: str
    manifest_hash: str
    rows: list[leaderboard.Row]
    points: list[Point] = field(default_factory=list)


def load_runs(run_ids: list[str], results_dir: Path, skipped: list[str] | None = None) -> list[RunFolder]:
    """Load each run; an unknown id is a `HarnessError`, and so is an unreadable or unfinished run
    unless ``skipped`` is given: its message then goes there and the run is left out."""
    if not run_ids:
        raise HarnessError("name at least one run id (see the folders in your results directory)")
    loaded = []
    seen = set()
    for run_id in run_ids:
        run_dir = resolve_run_dir(run_id, results_dir)
        if run_dir.resolve() in seen:
            continue  # the same run named twice shows once
        seen.add(run_dir.resolve())
        try:
            loaded.append(_load_finished(run_id, run_dir))
        except HarnessError as error:
            if skipped is None:
                raise
            skipped.append(f"run {run_id!r} left out: {error}")
    return loaded


def _load_finished(run_id: str, run_dir: Path) -> RunFolder:
    """One finished run folder, or a `HarnessError` saying why it cannot be shown."""
    try:
        run, records = load_run(run_dir)
    except (OSError, UnicodeDecodeError) as error:
        raise HarnessError(f"{run_dir}: cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(run, dict):
        raise HarnessError(f"{run_dir / RUN_FILE}: holds no JSON object")
    status = run.get("status")
    if status != "finished":
        why = f" ({run['failure']})" if run.get("failure") else ""
        raise HarnessError(
            f"{run_dir / RUN_FILE}: run {run.get('run_id', run_id)!r} is not finished (status {status!r}{why}); "
            f"finish it with `harness run --resume {run.get('run_id', run_id)}`"
        )
    if not isinstance(run.get("metrics"), dict) or not run["metrics"]:
        raise HarnessError(f"{run_dir / RUN_FILE}: a finished run without figures (no metrics per model)")
    return RunFolder(run.get("run_id", run_dir.name), run_dir, run, records)


def point_label(row: leaderboard.Row, ambiguous: bool) -> str:
    """A model's name, with gate and run id when several rows share the model's name."""
    return f"{row.model} ({row.gate}, {row.run_id})" if ambiguous else row.model


def pareto_flags(points: list[tuple[float | None, float | None]]) -> list[bool]:
    """For (x, accuracy) pairs, whether each is on the Pareto front (lower x, higher accuracy are better):
    no other pair is as good on both axes and better on one. A pair with a missing value never is."""
    flags = []
    for i, (x, acc) in enumerate(points):
        if x is None or acc is None:
            flags.append(False)
            continue
        dominated = any(
            ox is not None and oacc is not None and ox <= x and oacc >= acc and (ox < x or oacc > acc)
            for j, (ox, oacc) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def cost_per_1000(row: leaderboard.Row) -> float | None:
    return None if row.cost_usd is None or not row.n else 1000 * row.cost_usd / row.n


def groups(runs: list[RunFolder]) -> list[Group]:
    """The runs' leaderboard rows by image set, ranked, each with its plot points."""
    rows = [row for loaded in runs for row in leaderboard.rows_from_run(loaded.run)]
    result = []
    for (benchmark, manifest), ranked in leaderboard.group(rows).items():
        names = [row.model for row in ranked]
        points = [
            Point(
                rank=rank,
                label=point_label(row, names.count(row.model) > 1),
                accuracy=row.accuracy,
                latency_p95=row.latency_p95,
                cost_per_1000=cost_per_1000(row),
            )
            for rank, row in enumerate(ranked, start=1)
        ]
        for point, flag in zip(points, pareto_flags([(p.latency_p95, p.accuracy) for p in points])):
            point.pareto_latency = flag
        for point, flag in zip(points, pareto_flags([(p.cost_per_1000, p.accuracy) for p in points])):
            point.pareto_cost = flag
        result.append(Group(benchmark, manifest, ranked, points))
    return result


def outcome_counts(run: RunFolder, model: str) -> dict[str, int]:
    """Error attribution of one model: every entry of `OUTCOMES`, zeros included."""
    counts = run.run["metrics"][model].get("outcomes", {})
    return {name: int(counts.get(name, 0)) for name in OUTCOMES}


def confusion_tables(run: RunFolder, model: str) -> list[dict[str, Any]]:
    """Per category: row labels (true), column labels (predicted, then error kinds seen) and counts."""
    confusion = run.run["metrics"][model].get("confusion", {})
    categories = run.run["benchmark"].get("categories", {})
    tables = []
    for category, matrix in confusion.items():
        labels = list(categories.get(category, {}).get("labels") or matrix)
        extra = sorted({p for row in matrix.values() for p in row if p not in labels})
        columns = labels + extra
        rows = [(t, [int(matrix.get(t, {}).get(c, 0)) for c in columns]) for t in labels if t in matrix]
        column_names = [c[len(ERROR_PREFIX):] if c.startswith(ERROR_PREFIX) else c for c in columns]
        tables.append({"category": category, "columns": column_names, "errors": [c in extra for c in columns], "rows": rows})
    return tables


def gate_and_end_to_end(run: RunFolder) -> list[dict[str, Any]]:
    """Per category: the gate's own figures and threshold next to each model's end-to-end accuracy."""
    gate_metrics = run.run.get("gate_metrics") or {}
    # An imported run (`harness score`) had no gate: its provenance says ``"gate": null``.
    gate_info = ((run.run.get("provenance") or {}).get("gate") or {}).get("categories") or {}
    rows = []
    for category in run.run["benchmark"].get("categories", {}):
        gm = gate_metrics.get("categories", {}).get(category, {})
        info = gate_info.get(category, {})
        models = {}
        for model, scores in run.run["metrics"].items():
            velm = scores["protocols"].get("velm", {}).get("categories", {}).get(category, {})
            anomalous = scores["protocols"].get("anomalous", {}).get("categories", {}).get(category, {})
            models[model] = {"accuracy": velm.get("accuracy"), "anomalous": anomalous.get("accuracy"),
                             "macro_f1": velm.get("macro_f1")}
        rows.append({
            "category": category, "n": gm.get("n"), "auroc": gm.get("image_auroc"),
            "pixel_auroc": gm.get("pixel_auroc"), "false_alarm_rate": gm.get("false_alarm_rate"),
            "miss_rate": gm.get("miss_rate"), "threshold": info.get("threshold"),
            "threshold_source": info.get("threshold_source") or info.get("source"), "models": models,
        })
    return rows
