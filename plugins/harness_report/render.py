"""Turn gathered report data into one HTML page (Jinja2 with autoescaping on).

Text from run files is escaped by autoescape; the only markup inserted unescaped is the SVG of
`harness_report.svg`, which escapes its labels.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from harness import __version__
from harness.scoring import leaderboard
from harness.run import run_identity
from harness.scoring.leaderboard import UNDEFINED, figure_num, note_lines
from harness.scoring.metrics import OUTCOMES
from harness_report import svg
from harness_report.data import Group, confusion_tables, cost_per_1000, gate_and_end_to_end, outcome_counts
from harness_report.gallery import Gallery
from harness.run.run_folder import RunFolder

TEMPLATES = Path(__file__).parent / "templates"

#: Colours of the error-attribution bars, one per outcome (correct first).
OUTCOME_COLOURS = {
    "correct": "#37b24d", "wrong_class": "#f76707", "gate_miss": "#ae3ec9", "gate_false_alarm": "#f59f00",
    "bad_input": "#868e96", "unparseable": "#1c7ed6", "refused": "#0ca678", "backend_error": "#e03131",
    "timeout": "#495057",
}


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def figure_pct(value: float | None) -> str:
    """A metric as a percentage; "n/a" when it is undefined (None), as the leaderboard shows it."""
    return UNDEFINED if value is None else pct(value)


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.2f} ms" if value < 0.1 else f"{value:.2f} s"


def outcome_name(outcome: str) -> str:
    return outcome.replace("_", " ")


def sort_key(value: float | None) -> str:
    """A ``data-sort`` value: numbers as they are, missing ones as an empty string (sorted last)."""
    return "" if value is None else repr(float(value))


def plots(group: Group) -> dict[str, Markup]:
    """The two trade-off plots of one image set."""
    latency = [(str(p.rank), p.latency_p95, p.accuracy, p.pareto_latency, p.label)
               for p in group.points if p.latency_p95 is not None and p.accuracy is not None]
    cost = [(str(p.rank), p.cost_per_1000, p.accuracy, p.pareto_cost, p.label)
            for p in group.points if p.cost_per_1000 is not None and p.accuracy is not None]
    return {
        "latency": Markup(svg.scatter(latency, "p95 latency per call (s)", "accuracy (%)",
                                      f"accuracy against p95 latency, {group.benchmark}")),
        "cost": Markup(svg.scatter(cost, "cost per 1,000 images (USD)", "accuracy (%)",
                                   f"accuracy against cost per 1,000 images, {group.benchmark}")),
    }


def run_sections(run: RunFolder) -> dict[str, Any]:
    """Per-run material: gate vs end-to-end, attribution bars and confusion matrices per model."""
    models = []
    for model in run.scored_models:
        counts = outcome_counts(run, model)
        total = sum(counts.values()) or 1
        models.append({
            "name": model,
            "outcomes": [(name, counts[name], 100 * counts[name] / total) for name in OUTCOMES],
            "confusion": confusion_tables(run, model),
        })
    gate_metrics = run.run.get("gate_metrics") or {}
    return {
        "run_id": run.run_id,
        "gate": run.gate,
        "benchmark": run.run["benchmark"]["name"],
        "manifest_hash": run.run["benchmark"].get("manifest_hash"),
        "prompt": run.run["config"].get("prompt"),
        "created_at": run.run.get("created_at", ""),
        "commit": ((run.run.get("provenance") or {}).get("git") or {}).get("commit"),
        # Every key the page reads, None when unknown (an imported run has no gate figures at all).
        "gate_overall": {key: gate_metrics.get(key) for key in ("image_auroc", "false_alarm_rate", "miss_rate", "pixel_auroc")},
        "imported": run.run.get("imported"),
        "categories": gate_and_end_to_end(run),
        "models": models,
    }


def picture_table(galleries: list[Gallery]) -> tuple[dict[int, str], Markup]:
    """Each distinct picture once (a query recurs on the card of every model that got it wrong): ``id(picture)
    -> key`` for the cards, and the JSON of keys to data URIs that the page's script puts into ``<img data-pic>``."""
    keys: dict[str, str] = {}
    by_picture: dict[int, str] = {}
    for g in galleries:
        for card in g.cards:
            for picture in card.pictures:
                if picture.uri:
                    by_picture[id(picture)] = keys.setdefault(picture.uri, f"p{len(keys)}")
    table = json.dumps({key: uri for uri, key in keys.items()})
    # Inside <script> only "</" could end the element early; base64 never has it, but be safe.
    return by_picture, Markup(table.replace("</", "<\\/"))


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), trim_blocks=True, lstrip_blocks=True,
                      autoescape=select_autoescape(["html", "j2"], default_for_string=True))
    env.filters.update(pct=pct, num=num, seconds=seconds, outcome_name=outcome_name, sort_key=sort_key,
                       figure_pct=figure_pct, figure_num=figure_num)
    env.globals.update(outcome_colours=OUTCOME_COLOURS, cost_per_1000=cost_per_1000, note_lines=note_lines,
                       failed_cell=leaderboard.failed_cell, run_cell=leaderboard.run_cell,
                       failed_limit=run_identity.FAILED_SHARE_LIMIT)
    return env


def render(runs: list[RunFolder], groups: list[Group], galleries: list[Gallery], per_model: int,
           notes: list[str] = ()) -> str:
    """The whole report page; ``notes`` (e.g. runs left out) head its notes."""
    template = environment().get_template("report.html.j2")
    picture_keys, pictures_json = picture_table(galleries)
    return template.render(
        picture_key=lambda picture: picture_keys[id(picture)],
        pictures_json=pictures_json,
        title="Anomaly-harness report: " + ", ".join(r.run_id for r in runs),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        runs=[run_sections(r) for r in runs],
        groups=[{"group": g, "plots": plots(g)} for g in groups],
        galleries=galleries,
        cards=[card for g in galleries for card in g.cards],
        notes=[*notes, *(note for g in galleries for note in g.notes)],
        per_model=per_model,
        outcomes=OUTCOMES,
    )
