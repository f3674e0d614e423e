"""``harness compare RUN_A RUN_B``: a paired comparison of two runs (see `harness_compare.paired`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from harness.cli.main import out as _out
from harness_compare.paired import compare_runs, resolve_run
from harness.scoring.leaderboard import pct
from harness.scoring.metrics import PROTOCOLS
from harness.results import write_json_atomic

#: Changed images listed per direction in the terminal; --output has them all.
SHOWN_CHANGES = 15


@click.command(name="compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--model", "-m", "models", multiple=True, metavar="SPEC | SPEC_A=SPEC_B",
              help="Model pair to compare (repeatable): a spec both runs have, or SPEC_A=SPEC_B when the names "
                   "differ. [default: every model both runs have; or the only model of each]")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where run ids are looked up (a run may also be given by its folder path).")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="velm", show_default=True,
              help="velm: every image, good included; anomalous: anomalous images only.")
@click.option("--common-samples", is_flag=True,
              help="Compare runs over different benchmarks or image sets (manifest hashes) on the images both scored.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the paired bootstrap.")
@click.option("--n-boot", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Also write the full comparison (every changed image) as JSON.")
def compare(run_a: str, run_b: str, models: tuple[str, ...], results_dir: Path, protocol: str,
            common_samples: bool, seed: int, n_boot: int, output: Path | None) -> None:
    """Compare two runs on the images both scored, model by model.

    RUN_A and RUN_B are run ids in --results-dir or run folders. For each model
    pair: accuracy of A and B, the difference B - A with a paired bootstrap 95%
    interval, an exact McNemar test, overall (mean over categories) and per
    category, and the images that went right -> wrong and wrong -> right.
    """
    loaded_a, loaded_b = resolve_run(run_a, results_dir), resolve_run(run_b, results_dir)
    report = compare_runs(loaded_a, loaded_b, models, protocol=protocol,
                          allow_different_manifests=common_samples, seed=seed, n_boot=n_boot)
    print_report(report, _out, output)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output, report)
        _out.print(f"wrote {output}")


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _row(name: str, figures: dict[str, Any]) -> list[str]:
    ci = figures["difference_ci"]
    interval = f" ({_signed(ci[0])} to {_signed(ci[1])})" if ci else ""
    return [
        name, str(figures["n"]), pct(figures["accuracy_a"]), pct(figures["accuracy_b"]),
        _signed(figures["difference"]) + interval, str(figures["a_right_b_wrong"]), str(figures["a_wrong_b_right"]),
        _p(figures["mcnemar_p"]),
    ]


def print_report(report: dict[str, Any], console: Console, output: Path | None = None) -> None:
    """The comparison as rich tables, one per model pair, plus the changed images (all of them in ``output``)."""
    a, b = report["run_a"], report["run_b"]
    console.print(f"A: {a['run_id']} ({a['benchmark']}, manifest {a['manifest_hash']})", highlight=False)
    console.print(f"B: {b['run_id']} ({b['benchmark']}, manifest {b['manifest_hash']})", highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for comparison in report["comparisons"]:
        samples = comparison["samples"]
        title = f"{comparison['model_a']} (A) vs {comparison['model_b']} (B), protocol {report['protocol']}"
        skipped = [f"{samples['only_in_a']} only in A", f"{samples['only_in_b']} only in B"]
        if samples["true_label_differs"]:
            skipped.append(f"{samples['true_label_differs']} with different true labels")
        caption = (f"{samples['compared']} images compared ({', '.join(skipped)} left out). "
                   f"Overall accuracy is the mean over categories; the interval is a paired bootstrap "
                   f"(seed {report['seed']}, {report['n_boot']} resamples); McNemar p is exact, two-sided, on all images.")
        if comparison["overall"] is None:
            console.print(f"{title}: no images in common", highlight=False)
            continue
        table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
        for column in ("category", "n", "acc A", "acc B", "B - A (95% CI)", "A right, B wrong",
                       "A wrong, B right", "McNemar p"):
            table.add_column(column, justify="left" if column == "category" else "right")
        for category, figures in comparison["categories"].items():
            table.add_row(*_row(category, figures))
        table.add_section()
        table.add_row(*_row("overall", comparison["overall"]), style="bold")
        console.print(table)
        for direction, label in (("right_to_wrong", "right in A, wrong in B"), ("wrong_to_right", "wrong in A, right in B")):
            changed = comparison["changed"][direction]
            console.print(f"{label}: {len(changed)}", highlight=False)
            for item in changed[:SHOWN_CHANGES]:
                console.print(f"  {item['sample_id']} (true {item['true_label']}): A {item['a']}, B {item['b']}",
                              highlight=False)
            if len(changed) > SHOWN_CHANGES:
                where = f"in {output}" if output is not None else "with --output FILE"
                console.print(f"  ... and {len(changed) - SHOWN_CHANGES} more (all of them {where})", highlight=False)
