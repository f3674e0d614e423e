"""Aggregate finished runs into ranked tables.

One row per `Row.key` (`harness.run.run_identity`); of several runs with that key the newest that
failed at most `run_identity.FAILED_SHARE_LIMIT` of its calls is shown (else the newest), and the
row counts the others. Rows are ranked only within one benchmark and manifest hash (`table_hash`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.run import run_identity
from harness.scoring.metrics import OUTCOMES
from harness.results import find_run_dirs, load_run

ERROR_OUTCOMES = [o for o in OUTCOMES if o != "correct"]


@dataclass
class Row:
    """One leaderboard line: a model's figures in one run."""

    benchmark: str
    manifest_hash: str
    gate: str
    model: str
    prompt: str
    run_id: str
    created_at: str
    n: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    anomalous_accuracy: float | None
    macro_f1: float | None
    kappa: float | None
    outcomes: dict[str, int]
    latency_p50: float | None
    latency_p95: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    gate_auroc: float | None = None
    gate_false_alarm_rate: float | None = None
    gate_miss_rate: float | None = None
    runs: int = 1
    #: (categories where kappa is defined, categories scored) under protocol velm, when run.json says.
    kappa_categories: tuple[int, int] | None = None
    #: The model's metrics notes: which categories a mean left out, and why (`metrics.protocol_notes`).
    notes: list[str] = field(default_factory=list)
    #: Answer-options hash and seed (part of the key; None in run folders written before they were recorded).
    options_hash: str | None = None
    seed: int | None = None
    #: How replies were read (`--answers`): lenient and strict readings of one model are different rows.
    answers: str = "lenient"
    options: str = ""  # seed, the answer options set, the hash: for display
    calls: int | None = None  # records of a model call (headline repeat)
    failed_calls: int = 0  # of those, calls that produced no answer
    cost_usd_spent: float | None = None  # what this run paid (answers not from the cache)
    #: Newer runs of this key not shown because they failed more than the limit of their calls.
    hidden_failed: int = 0

    @property
    def key(self) -> tuple:
        return (self.benchmark, self.manifest_hash, self.gate, self.model, self.prompt, self.options_hash, self.seed, self.answers)

    @property
    def failed_share(self) -> float:
        return run_identity.failed_share(self.failed_calls, self.calls)


def rows_from_run(run: dict[str, Any]) -> list[Row]:
    """Rows for every model of one finished run (unfinished runs give none)."""
    if run.get("status") != "finished":
        return []
    bench = run["benchmark"]
    gate = run.get("gate_metrics") or {}
    rows = []
    for model, scores in run.get("metrics", {}).items():
        velm = scores["protocols"].get("velm", {})
        anomalous = scores["protocols"].get("anomalous", {})
        usage = scores.get("usage", {})
        ci = velm.get("accuracy_ci")
        rows.append(
            Row(
                benchmark=bench["name"],
                manifest_hash=table_hash(bench),
                gate=run_identity.gate_label(run["config"]),
                model=model,
                prompt=run["config"]["prompt"],
                run_id=run["run_id"],
                created_at=run.get("created_at", ""),
                n=scores.get("n", 0),
                accuracy=velm.get("accuracy"),
                accuracy_ci=tuple(ci) if ci else None,
                anomalous_accuracy=anomalous.get("accuracy"),
                macro_f1=velm.get("macro_f1"),
                kappa=velm.get("kappa"),
                outcomes=scores.get("outcomes", {}),
                latency_p50=usage.get("latency_p50"),
                latency_p95=usage.get("latency_p95"),
                tokens_in=usage.get("tokens_in_total"),
                tokens_out=usage.get("tokens_out_total"),
                cost_usd=usage.get("cost_usd_total"),
                gate_auroc=gate.get("image_auroc"),
                gate_false_alarm_rate=gate.get("false_alarm_rate"),
                gate_miss_rate=gate.get("miss_rate"),
                kappa_categories=(velm["kappa_categories_defined"], velm.get("n_categories", 0))
                if "kappa_categories_defined" in velm else None,
                notes=list(scores.get("notes", [])),
                options_hash=((run.get("provenance") or {}).get("classifiers") or {}).get(model, {}).get("options_hash"),
                seed=run["config"].get("seed"),
                answers=run["config"].get("answers") or "lenient",
                options=run_identity.options_label(run, model),
                calls=usage.get("calls"),
                failed_calls=run_identity.failed_calls(scores.get("outcomes", {})),
                cost_usd_spent=usage.get("cost_usd_spent"),
            )
        )
    return rows


def table_hash(bench: dict[str, Any]) -> str:
    """The manifest hash, plus the class file's hash if any: different class descriptions never share a table."""
    class_file = bench.get("class_file") or {}
    return bench["manifest_hash"] + (f"+classes-{class_file['sha256'][:12]}" if class_file.get("sha256") else "")


def collect(paths: Iterable[Path]) -> list[Row]:
    """Read every run under ``paths``; keep one row per key (`run_identity.preference`), counting the others."""
    by_key: dict[tuple, list[Row]] = {}
    for run_dir in find_run_dirs(paths):
        run, _ = load_run(run_dir)
        for row in rows_from_run(run):
            by_key.setdefault(row.key, []).append(row)
    shown = []
    for rows in by_key.values():
        row = max(rows, key=run_identity.preference)  # the first of equals, as before: ties keep the earlier found
        row.runs = len(rows)
        row.hidden_failed = sum(1 for other in rows if other.created_at > row.created_at)
        shown.append(row)
    return shown


def group(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Tables keyed by (benchmark, `table_hash`), each ranked by accuracy, best first."""
    tables: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        tables.setdefault((row.benchmark, row.manifest_hash), []).append(row)
    return {key: ranked(table) for key, table in sorted(tables.items())}


def ranked(rows: list[Row]) -> list[Row]:
    """Rows by accuracy, best first (undefined last, ties by model name): the order the ``#`` column numbers."""
    return sorted(rows, key=lambda r: (-(r.accuracy if r.accuracy is not None else -1), r.model))


COLUMNS = [
    "#", "model", "gate", "prompt", "options", "n", "accuracy (95% CI)", "anomalous acc", "macro-F1", "kappa",
    "errors", "failed calls", "gate AUROC", "gate FA/miss %", "p50 s", "p95 s", "tokens in/out", "cost $",
    "spent $", "run",
]


#: The columns a terminal has room for; LEADERBOARD.md has them all.
TERMINAL_COLUMNS = ["#", "model", "gate", "prompt", "options", "n", "accuracy (95% CI)", "anomalous acc", "macro-F1",
                    "kappa", "errors", "failed calls", "gate AUROC", "p95 s", "cost $", "spent $"]


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, ``-`` for None (tables in the terminal and LEADERBOARD.md)."""
    return "-" if value is None else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


#: How a figure that is undefined (None in run.json's metrics) is shown; "-" is kept for unknown usage.
UNDEFINED = "n/a"


def figure_pct(value: float | None) -> str:
    """A metric as a percentage, `UNDEFINED` when it is undefined (None)."""
    return UNDEFINED if value is None else pct(value)


def figure_num(value: float | None, covered: tuple[int, int] | None = None) -> str:
    """A metric with three decimals, `UNDEFINED` when None; ``covered`` (k, n) adds "(k of n cat.)" when k < n."""
    if value is None:
        return UNDEFINED
    text = f"{value:.3f}"
    if covered is not None and covered[0] < covered[1]:
        text += f" ({covered[0]} of {covered[1]} cat.)"
    return text


def note_lines(rows: Iterable[Row]) -> list[str]:
    """One line per note of each row: ``model (run id): note``; empty when no mean left anything out."""
    return [f"{row.model} ({row.run_id}): {note}" for row in rows for note in row.notes]


def _errors(outcomes: dict[str, int]) -> str:
    parts = [f"{name.replace('_', ' ')} {outcomes[name]}" for name in ERROR_OUTCOMES if outcomes.get(name)]
    return ", ".join(parts) or "none"


def failed_cell(row: Row) -> str:
    """``-`` without calls, else failed/calls (share), marked ``!`` above `run_identity.FAILED_SHARE_LIMIT`."""
    if not row.calls:
        return "-"
    if not row.failed_calls:
        return f"0/{row.calls}"
    mark = " !" if row.failed_share > run_identity.FAILED_SHARE_LIMIT else ""
    return f"{row.failed_calls}/{row.calls} ({pct(row.failed_share)}%){mark}"


def run_cell(row: Row) -> str:
    """The run shown, with how many other runs share its key and how many newer ones failed too often to show."""
    if row.hidden_failed:
        limit = pct(run_identity.FAILED_SHARE_LIMIT)
        return f"{row.run_id} (+{row.runs - 1} other; {row.hidden_failed} newer failed over {limit}% of calls)"
    return row.run_id + (f" (+{row.runs - 1} older)" if row.runs > 1 else "")


def cells(rank: int, row: Row) -> dict[str, str]:
    """The row as display strings, keyed by the names in `COLUMNS`."""
    ci = f" ({pct(row.accuracy_ci[0])}-{pct(row.accuracy_ci[1])})" if row.accuracy_ci else ""
    tokens = "-" if row.tokens_in is None and row.tokens_out is None else f"{row.tokens_in or 0}/{row.tokens_out or 0}"
    values = [
        str(rank), row.model, row.gate, row.prompt, row.options or "-", str(row.n), figure_pct(row.accuracy) + ci,
        figure_pct(row.anomalous_accuracy), figure_num(row.macro_f1), figure_num(row.kappa, row.kappa_categories),
        _errors(row.outcomes), failed_cell(row),
        _num(row.gate_auroc), f"{pct(row.gate_false_alarm_rate)}/{pct(row.gate_miss_rate)}",
        _num(row.latency_p50, 2), _num(row.latency_p95, 2), tokens,
        _num(row.cost_usd, 4), _num(row.cost_usd_spent, 4), run_cell(row),
    ]
    return dict(zip(COLUMNS, values))


def table_title(benchmark: str, manifest: str) -> str:
    return f"{benchmark} (manifest {manifest})"


def render_markdown(tables: dict[tuple[str, str], list[Row]]) -> str:
    """LEADERBOARD.md: one ranked table per (benchmark, manifest hash)."""
    lines = [
        "# Leaderboard",
        "",
        "Generated by `harness leaderboard`. Accuracy is protocol `velm`: per category, accuracy over all",
        "test images with `good` as a class, then the unweighted mean over categories; the interval is a",
        "seeded bootstrap over images within each category. Anomalous acc is the same over anomalous",
        "images only. Gate columns judge the detector alone (image AUROC; false-alarm and miss rates at",
        "its threshold). Each table covers one exact set of images (its manifest hash); rows of different",
        "tables are not comparable and are never ranked together. A figure undefined for every category",
        "shows as n/a; a mean that leaves categories out (kappa needs two true classes in a category)",
        "says over how many it is, and the notes under the table say which and why.",
        "",
        "A row is one (gate, model, prompt, options) of a table; options are the seed, strict answer reading",
        "when set, the answer-affecting model options the run set and their hash (which also covers the",
        "server or checkpoint that answered): runs that differ there are separate rows. Failed calls are",
        f"calls that produced no answer (backend error, timeout); `!` marks a share over {pct(run_identity.FAILED_SHARE_LIMIT)}%, and",
        "such a run never replaces one of the same row that stayed within it. Cost $ is what the answers cost",
        "when they were made; spent $ is what the run paid (answers from the response cache cost it nothing).",
        "",
    ]
    if not tables:
        lines.append("No finished runs found.")
    for (benchmark, manifest), rows in tables.items():
        lines += [f"## {table_title(benchmark, manifest)}", ""]
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for rank, row in enumerate(rows, start=1):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(rank, row).values()) + " |")
        lines.append("")
        notes = note_lines(rows)
        if notes:
            lines += ["Notes:", ""] + [f"- {line}" for line in notes] + [""]
    return "\n".join(lines)
