"""The ``harness`` group and its ``run``, ``list`` and ``leaderboard`` commands; `main`, the entry point.

User errors print one clear message and exit with code 2; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import atexit
import gc
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import __version__
from harness.cli.decision_tables import decision_tables
from harness.scoring import class_order, leaderboard
from harness.run import failfast
from harness.run.run_options import config_values, load_config_file, run_flags
from harness.errors import HarnessError
from harness.options import describe_options
from harness.plugins import PLUGIN_KINDS, Registry, get_registry
from harness.results import load_run
from harness.run.runner import RunConfig

console = Console(stderr=True)
# Piped output (CI logs, `| tee`) gets a wide table rather than rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 150)


def _warn_failures(registry: Registry) -> None:
    for failure in registry.failures:
        console.print(
            f"[yellow]warning:[/] plugin [bold]{failure.plugin}[/] ({failure.distribution}) failed to load: "
            f"{failure.error}\n  hint: {failure.hint}"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also accepted after the subcommand).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Evaluate multimodal LLMs on industrial anomaly classification behind a detector gate."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _configure_logging(debug)


def _configure_logging(debug: bool) -> None:
    """Our own messages (and plugins', by the ``harness`` name prefix) at INFO; libraries only at WARNING."""
    handler = RichHandler(console=console, show_time=False, show_path=debug, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    for name in list(logging.root.manager.loggerDict) + ["harness"]:
        if name.split(".")[0].startswith("harness"):
            logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)


@cli.command()
@run_flags
@click.option("--gate-threshold", type=float, default=None,
              help="Fixed gate threshold instead of the calibrated one (recorded as a user override).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML run config: defaults for these flags, plus [gate-options] and [model-options.\"SPEC\"] tables.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--resume", "resume_id", default=None, metavar="RUN_ID",
              help="Finish an interrupted run in --results-dir with its recorded config; finished samples are kept, "
                   "samples whose call failed transiently (timeouts, retries run out) are asked again.")
@click.option("--retry-errors", is_flag=True,
              help="With --resume: also ask again samples whose call failed permanently (401, 400, ...) or whose "
                   "answer was unparseable or refused; bad_input (an unreadable image) is kept.")
def run(**flags: Any) -> None:
    """Run a benchmark through a gate and one or more models, score it, record it."""
    resume_id = flags.pop("resume_id")
    retry_errors = flags.pop("retry_errors")
    if retry_errors and not resume_id:
        raise HarnessError("--retry-errors asks a finished run's failed samples again: give the run with --resume RUN_ID")
    config_path = flags.pop("config_path")
    file_config = load_config_file(config_path)
    gate_threshold = flags.pop("gate_threshold")
    if gate_threshold is None:
        gate_threshold = file_config.get("gate-threshold")
    use_cache = not (flags.pop("no_cache") or file_config.get("no-cache", False))
    values = config_values(flags, file_config, config_path)
    if gate_threshold is not None:  # the gate's own option, set by its own flag
        values["gate_options"] = {**values.get("gate_options", {}), "threshold": gate_threshold}
    config = RunConfig(**values, use_cache=use_cache)
    if resume_id:
        config = _resumed_config(config.results_dir, resume_id, use_cache, given=config)
    registry = get_registry()
    _warn_failures(registry)
    executor = registry.get("executors", config.executor).obj  # an unknown name lists the registered ones
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    bars: dict[str, Any] = {}  # one progress line per category

    def update(category: str, done: int, total: int) -> None:
        if category not in bars:
            bars[category] = progress.add_task(category, total=total)
        progress.update(bars[category], completed=done, total=total)

    with progress:
        result = executor(config, registry, progress=update).execute(resume=bool(resume_id), retry_errors=retry_errors)
    rows = leaderboard.ranked(leaderboard.rows_from_run(result.run))  # `#` is a rank, not the --models order
    print_table(f"Run {result.run_id}", rows)
    for line in class_order.summary_lines(result.run):
        out.print(f"position bias: {line}", highlight=False)
    if result.run.get("decisions"):
        for table in decision_tables(result.run["decisions"], "Decisions"):
            out.print(table)
    out.print(f"results: {result.run_dir}/run.json and samples.jsonl")
    board = write_leaderboard(leaderboard.group(leaderboard.collect([config.results_dir])),
                              config.results_dir / "LEADERBOARD.md")
    out.print(f"leaderboard: {board}")
    failures = result.run.get("call_failures") or {}
    for line in failfast.warnings(failures):
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    failfast.check_answered(failures, result.run_id)  # exit code 1 when a model asked never answered


def _resumed_config(results_dir: Path, run_id: str, use_cache: bool, given: RunConfig) -> RunConfig:
    """The config recorded in a run's run.json; of the other run flags, only where the stages run is taken."""
    run_file = results_dir / run_id / "run.json"
    if not run_file.is_file():
        raise HarnessError(f"cannot resume {run_id!r}: {run_file} not found (is --results-dir right?)")
    run, _ = load_run(run_file.parent)
    config = RunConfig.from_json(run["config"], results_dir, run_id)
    config.use_cache = use_cache
    config.executor, config.ray_address, config.executor_options = given.executor, given.ray_address, given.executor_options
    return config


def print_table(title: str, rows: list[leaderboard.Row]) -> None:
    """The leaderboard rows as a table, then what its means left out (undefined figures), one note a line."""
    table = Table(title=title, title_justify="left")
    for column in leaderboard.TERMINAL_COLUMNS:
        table.add_column(column, overflow="fold")
    for rank, row in enumerate(rows, start=1):
        values = leaderboard.cells(rank, row)
        table.add_row(*(values[c] for c in leaderboard.TERMINAL_COLUMNS))
    out.print(table)
    for line in leaderboard.note_lines(rows):
        out.print(f"note: {line}", highlight=False)


def write_leaderboard(tables: dict, output: Path) -> Path:
    """Write LEADERBOARD.md of grouped rows (`leaderboard.group`) to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(leaderboard.render_markdown(tables), encoding="utf-8")
    return output


@cli.command(name="leaderboard")
@click.argument("results_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Markdown file to write. [default: results/LEADERBOARD.md]")
def leaderboard_command(results_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Print the leaderboard of finished runs and write LEADERBOARD.md.

    Each RESULTS_DIR is a run folder or a folder of run folders [default: results].
    """
    paths = list(results_dirs) or [Path("results")]
    output = output or Path("results") / "LEADERBOARD.md"
    rows = leaderboard.collect(paths)
    tables = leaderboard.group(rows)
    if not tables:
        out.print("No finished runs found in " + ", ".join(str(p) for p in paths))
    for (benchmark, manifest), table_rows in tables.items():
        print_table(leaderboard.table_title(benchmark, manifest), table_rows)
    if len({b for b, _ in tables}) < len(tables):
        out.print("[yellow]note:[/] some benchmark has runs over different image sets (manifest hashes); "
                  "they are shown as separate tables and never ranked together.")
    write_leaderboard(tables, output)
    out.print(f"wrote {output}")


@cli.command(name="list")
@click.option("--verbose", "-v", is_flag=True, help="Also list each gate's and classifier's options.")
def list_command(verbose: bool) -> None:
    """Show what plugins registered (benchmarks, gates, classifiers, templates, writers, policies, class files) and by whom."""
    registry = get_registry()
    _warn_failures(registry)
    for kind, title in ((k.table, k.title) for k in PLUGIN_KINDS):
        table = Table(title=title, title_justify="left")
        for column in ("name", "plugin", "version", "description"):
            table.add_column(column)
        for name, provided in sorted(getattr(registry, kind).items()):
            description = getattr(provided.obj, "description", "") or ""
            if verbose and hasattr(provided.obj, "Options"):
                options = describe_options(provided.obj.Options)
                description += "".join(f"\n  {n} ({t}, default {d}): {text}" for n, t, d, text in options)
            table.add_row(name, provided.plugin, provided.version, description)
        out.print(table)
    for kind, name, plugin in registry.shadowed:
        out.print(f"[yellow]note:[/] {kind[:-1]} {name!r} from plugin {plugin!r} is overridden by an earlier registration")


def _add_plugin_commands() -> None:
    """Every plugin's commands, the core's own first; a plugin whose hook fails is named, not fatal."""
    registry = get_registry()
    if registry.manager is None:
        return
    # pluggy calls implementations from the end of this list; the later call wins a shared name.
    for impl in reversed(registry.manager.hook.register_commands.get_hookimpls()):
        try:
            impl.function(cli=cli)
        except Exception as error:  # the other plugins' commands, and the core's, must still work
            console.print(f"[yellow]warning:[/] plugin {impl.plugin_name!r}: register_commands failed "
                          f"({type(error).__name__}: {escape(str(error))}); its commands are missing", highlight=False)


def _collect_then_freeze() -> None:
    """Collect garbage once, then freeze what is left: the interpreter's shutdown then skips the
    collections over every object of torch's modules (a bottle run ended 0.3 s sooner: 0.27-0.39 s
    from the last exit hook to the process's end against 0.58-0.68). Files in collected cycles are
    still closed, because the collection runs first."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: turns `HarnessError` into a message and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the console command: its process ends with it
        atexit.register(_collect_then_freeze)
    debug = "--debug" in args
    if debug:  # documented as an option of every command: accept it after the subcommand too
        args = ["--debug"] + [arg for arg in args if arg != "--debug"]
    try:
        _add_plugin_commands()
        cli.main(args=args, prog_name="harness", standalone_mode=False)
    except HarnessError as error:
        if debug:
            raise
        # Not wrapped: a message names files and lines, which must stay whole for copying and grep.
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)  # messages quote server replies
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted; finished samples are in samples.jsonl")
        sys.exit(130)
