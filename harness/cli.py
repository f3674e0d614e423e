"""The ``harness`` command line.

User errors (bad input, unknown names, bad options) print one clear message
and exit with code 2; a traceback appears only with ``--debug``. Plugins add
commands through the ``register_commands`` hook.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import __version__, answers, class_order, failfast, leaderboard
from harness.classifiers import split_model_list
from harness.errors import HarnessError
from harness.options import describe_options
from harness.plugins import PLUGIN_KINDS, Registry, get_registry
from harness.results import load_run
from harness.runner import Run, RunConfig

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


CONFIG_KEYS = {
    "benchmark", "data-root", "category", "categories", "gate", "models", "prompt", "seed", "limit",
    "results-dir", "run-id", "shots", "output-formats", "gate-options", "model-options", "prices",
    "allow-partial",
    "class-order", "repeats", "policy", "costs", "answers", "classes",
    "gate-threshold", "no-cache", "output-format",
}
# Flags that act on one invocation rather than describe a run: a config file cannot set them.
CLI_ONLY_FLAGS = {"config", "resume", "retry-errors"}


def _load_config(path: Path | None) -> dict[str, Any]:
    """Read a TOML run config; keys may use dashes or underscores; an unknown key is an error."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            config = {key.replace("_", "-"): value for key, value in tomllib.load(handle).items()}
    except FileNotFoundError:
        raise HarnessError(f"{path}: run config not found") from None
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"{path}: not valid TOML ({error})") from None
    cli_only = sorted(set(config) & CLI_ONLY_FLAGS)
    if cli_only:
        raise HarnessError(f"{path}: {', '.join(cli_only)} can only be given on the command line "
                           f"(--{' --'.join(cli_only)}), not in a run config")
    if "output-format" in config and "output-formats" in config:
        raise HarnessError(f"{path}: give output-format or output-formats (the same key), not both")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise HarnessError(f"{path}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(CONFIG_KEYS))}")
    return _paths_from_config_folder(config, path)


# Keys whose values are paths; `policy` and `costs` may also be the name of a shipped file.
CONFIG_PATH_KEYS = ("data-root", "results-dir", "prices", "classes")
CONFIG_FILE_OR_NAME_KEYS = ("policy", "costs")


def _paths_from_config_folder(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Relative paths in a config are read from the config file's folder, so a config can travel with its data.

    (Flags on the command line are read from the working directory, as usual.)
    """
    folder = path.expanduser().absolute().parent

    def anchored(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # a wrong type is reported where the key is used
        given = Path(value).expanduser()
        return str(given if given.is_absolute() else folder / given)

    for key in CONFIG_PATH_KEYS:
        if key in config:
            config[key] = anchored(config[key])
    for key in CONFIG_FILE_OR_NAME_KEYS:
        value = config.get(key)
        # A bare name (no folder, no .toml) is a shipped file's name, as for the flag.
        if isinstance(value, str) and ("/" in value or "\\" in value or value.endswith(".toml")):
            config[key] = anchored(value)
    return config


@cli.command()
@click.option("--benchmark", "-b", default=None, help="Benchmark name (see `harness list`). [default: demo]")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Where the benchmark's data lives.")
@click.option("--category", "categories", multiple=True, help="Evaluate only this category (repeatable).")
@click.option("--gate", default=None, help="Detector gate: oracle, none, ... [default: oracle]")
@click.option("--gate-threshold", type=float, default=None,
              help="Fixed gate threshold instead of the calibrated one (recorded as a user override).")
@click.option("--models", "-m", default=None, help="Comma-separated model specs: PLUGIN or PLUGIN:MODEL_ID.")
@click.option("--prompt", default=None, help="Prompt template name. [default: velm]")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML run config: defaults for these flags, plus [gate-options] and [model-options.\"SPEC\"] tables.")
@click.option("--seed", type=int, default=None, help="Seed for reference choice, subsets, bootstrap. [default: 0]")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N test images per category (seeded subset).")
@click.option("--shots", type=click.IntRange(min=0), default=None,
              help="Draw K labelled examples per defect class from the test set (seeded) for few-shot models "
                   "and prompts; they are scored for no model. [default: 0]")
@click.option("--class-order", type=click.Choice(["given", "shuffle"]), default=None,
              help="Candidate class order: given, or shuffle (with --repeats N: repeat 0 in the given order, "
                   "then N-1 seeded shuffles) to measure position bias. [default: given]")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Ask every model N times, once per class order (needs --class-order shuffle). [default: 1]")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None, help="Where run folders go. [default: results]")
@click.option("--run-id", default=None, help="Name of the run folder. [default: UTC time, benchmark and a random suffix, e.g. 20260101-120000-demo-1a2b3c]")
@click.option("--output-format", "output_formats", multiple=True, help="Extra result format (e.g. csv), repeatable.")
@click.option("--prices", type=click.Path(path_type=Path), default=None,
              help="TOML price table (USD per million tokens by model spec) extending the packaged one.")
@click.option("--policy", default=None, metavar="FILE|NAME",
              help="Decision policy TOML (or shipped: demo, mvtec-ac): every record gets the action of its "
                   "predicted and true class; run.json reports action accuracy, escapes, overkill.")
@click.option("--costs", default=None, metavar="FILE|NAME",
              help="Cost matrix TOML for --policy (true action x action taken), or shipped: costs-example.")
@click.option("--allow-partial", is_flag=True,
              help="When the data root differs from a benchmark's released file list, evaluate only the files "
                   "present in both (the difference is recorded in run.json) instead of stopping.")
@click.option("--answers", "answers_mode", type=click.Choice(answers.MODES), default=None,
              help="How replies are read: lenient (every rule of harness/answers.py) or strict (only structured, "
                   "JSON, exact and final-answer readings; anything else is unparseable). [default: lenient]")
@click.option("--classes", "classes", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Class file (TOML) with your object, class names and descriptions, laid over the benchmark's. "
                   "[default: DATA_ROOT/classes.toml when present]")
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
    file_config = _load_config(config_path)
    gate_threshold = flags.pop("gate_threshold")
    if gate_threshold is None:
        gate_threshold = file_config.get("gate-threshold")
    use_cache = not (flags.pop("no_cache") or file_config.get("no-cache", False))
    allow_partial = flags.pop("allow_partial")
    if "output-format" in file_config:  # the flag's own name, beside the older plural spelling
        file_config["output-formats"] = file_config.pop("output-format")
    if isinstance(file_config.get("output-formats"), str):
        file_config["output-formats"] = [file_config["output-formats"]]

    def pick(name: str, default: Any = None) -> Any:
        value = flags.get(name)
        if value not in (None, ()):
            return value
        return file_config.get(name.replace("_", "-"), default)

    models = pick("models")
    if isinstance(models, str):
        models = split_model_list(models)
    categories = pick("categories") or pick("category")
    if isinstance(categories, str):
        categories = [categories]
    data_root = pick("data_root")
    # A value from the config file is checked here, naming the file (click checks the flag's).
    answers_mode = flags.pop("answers_mode") or answers.check_mode(file_config.get("answers", "lenient"),
                                                                   f"{config_path}: answers")
    config = RunConfig(
        benchmark=pick("benchmark", "demo"),
        models=list(models or []),
        gate=pick("gate", "oracle"),
        prompt=pick("prompt", "velm"),
        data_root=Path(data_root).expanduser() if data_root else None,
        categories=list(categories) if categories else None,
        gate_options={**pick("gate_options", {}), **({} if gate_threshold is None else {"threshold": gate_threshold})},
        model_options={spec: dict(options) for spec, options in pick("model_options", {}).items()},
        seed=int(pick("seed", 0)),
        limit=pick("limit"),
        shots=int(pick("shots", 0)),
        allow_partial=bool(allow_partial or file_config.get("allow-partial", False)),
        class_order=pick("class_order", "given"),
        repeats=int(pick("repeats", 1)),
        results_dir=Path(pick("results_dir", "results")),
        run_id=pick("run_id"),
        output_formats=list(pick("output_formats") or []),
        use_cache=use_cache,
        prices=Path(prices) if (prices := pick("prices")) else None,
        policy=pick("policy"),
        costs=pick("costs"),
        answers=answers_mode,
        classes=Path(classes).expanduser().resolve() if (classes := pick("classes")) else None,
    )
    if resume_id:
        config = _resumed_config(config.results_dir, resume_id, use_cache)
    registry = get_registry()
    _warn_failures(registry)
    runner_progress = _ProgressBar()
    with runner_progress:
        result = Run(config, registry, progress=runner_progress.update).execute(resume=bool(resume_id), retry_errors=retry_errors)
    rows = leaderboard.ranked(leaderboard.rows_from_run(result.run))  # `#` is a rank, not the --models order
    out.print(_rich_table(f"Run {result.run_id}", rows))
    _print_notes(rows)
    for line in class_order.summary_lines(result.run):
        out.print(f"position bias: {line}", highlight=False)
    if result.run.get("decisions"):
        for table in decision_tables(result.run["decisions"], "Decisions"):
            out.print(table)
    out.print(f"results: {result.run_dir}/run.json and samples.jsonl")
    tables = leaderboard.group(leaderboard.collect([config.results_dir]))
    board = _write_leaderboard(tables, config.results_dir / "LEADERBOARD.md")
    out.print(f"leaderboard: {board}")
    failures = result.run.get("call_failures") or {}
    for line in failfast.warnings(failures):
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    failfast.check_answered(failures, result.run_id)  # exit code 1 when a model asked never answered


def _resumed_config(results_dir: Path, run_id: str, use_cache: bool) -> RunConfig:
    """The config recorded in a run's run.json; the other run flags are ignored when resuming."""
    run_file = results_dir / run_id / "run.json"
    if not run_file.is_file():
        raise HarnessError(f"cannot resume {run_id!r}: {run_file} not found (is --results-dir right?)")
    run, _ = load_run(run_file.parent)
    config = RunConfig.from_json(run["config"], results_dir, run_id)
    config.use_cache = use_cache
    return config


class _ProgressBar:
    """A rich progress bar with one line per category."""

    def __init__(self) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_ProgressBar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, category: str, done: int, total: int) -> None:
        if category not in self.tasks:
            self.tasks[category] = self.progress.add_task(category, total=total)
        self.progress.update(self.tasks[category], completed=done, total=total)


def _rich_table(title: str, rows: list[leaderboard.Row]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in leaderboard.TERMINAL_COLUMNS:
        table.add_column(column, overflow="fold")
    for rank, row in enumerate(rows, start=1):
        values = leaderboard.cells(rank, row)
        table.add_row(*(values[c] for c in leaderboard.TERMINAL_COLUMNS))
    return table


def _print_notes(rows: list[leaderboard.Row]) -> None:
    """What the means under a table left out (undefined figures), one line per note."""
    for line in leaderboard.note_lines(rows):
        out.print(f"note: {line}", highlight=False)


def _write_leaderboard(tables: dict, output: Path) -> Path:
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
        out.print(_rich_table(leaderboard.table_title(benchmark, manifest), table_rows))
        _print_notes(table_rows)
    if len({b for b, _ in tables}) < len(tables):
        out.print("[yellow]note:[/] some benchmark has runs over different image sets (manifest hashes); "
                  "they are shown as separate tables and never ranked together.")
    _write_leaderboard(tables, output)
    out.print(f"wrote {output}")


@cli.command(name="list")
@click.option("--verbose", "-v", is_flag=True, help="Also list each gate's and classifier's options.")
def list_command(verbose: bool) -> None:
    """Show registered benchmarks, gates, classifiers, templates and writers, with their plugins."""
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


# Core commands defined in harness/commands/ (one module per feature).
# The other core commands (report, compare, act, score, plugins, cache, classes) are registered by
# the core's own plugin through `register_commands`, as any plugin's are (harness/builtin.py).
from harness.commands.act import decision_tables  # noqa: E402


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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: turns `HarnessError` into a message and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
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
