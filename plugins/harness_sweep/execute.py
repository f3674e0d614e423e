"""Running a sweep's cells: each is an ordinary run, found again by its run id.

A cell's state comes from its run folder: none (or no run.json) is `NEW`, run.json with status
``finished`` is `FINISHED` (skipped), any other status (running when killed, failed, interrupted) is
`RESUME` (`Run.execute(resume=True)` with the run's recorded config, as ``harness run --resume``).
With one cell at a time a cell runs in this process; with more, each runs in a child process
(``harness sweep FILE --cell RUN_ID``), so one cell's crash or torch state cannot reach another.
Either way a failing cell becomes a failed `Outcome` and the others go on.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError
from harness.plugins import Registry
from harness.results import RUN_FILE
from harness.run import failfast
from harness.run.run_config import RunConfig

from harness_sweep.sweep_file import Cell, Sweep

NEW, FINISHED, RESUME = "new", "finished", "resume"
#: What a sweep did with a cell (`Outcome.state`).
RAN, RESUMED, SKIPPED, FAILED = "finished", "resumed", "skipped", "failed"

logger = logging.getLogger("harness_sweep")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's run.json, or None when there is none yet."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HarnessError(f"{path}: not valid JSON ({error})") from None


def cell_state(cell: Cell) -> str:
    """`NEW`, `FINISHED` or `RESUME`, from the cell's run folder."""
    run = read_status(cell.config.results_dir / cell.run_id)
    if run is None:
        return NEW
    return FINISHED if run.get("status") == "finished" else RESUME


@dataclass
class Outcome:
    """What happened to one cell in this sweep: its state (`RAN`, `RESUMED`, `SKIPPED`, `FAILED`)."""

    cell: Cell
    state: str
    seconds: float = 0.0
    exit_code: int = 0
    error: str | None = None  # the last line of a failure


def run_here(cell: Cell, registry: Registry) -> Outcome:
    """Run (or finish) one cell in this process; any failure is the cell's, returned, not raised."""
    resume = cell_state(cell) == RESUME
    started = time.monotonic()
    try:
        config = _resumed_config(cell) if resume else cell.config
        executor = registry.get("executors", config.executor).obj  # `harness.run.runner.Run`, or a plugin's
        result = executor(config, registry).execute(resume=resume)
        failfast.check_answered(result.run.get("call_failures") or {}, cell.run_id)  # as `harness run`: exit 1
    except Exception as error:  # a cell's failure is reported and the sweep goes on
        logger.debug("cell %s failed", cell.run_id, exc_info=True)
        text = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"
        return Outcome(cell, FAILED, time.monotonic() - started, getattr(error, "exit_code", 1), _last_line(text))
    return Outcome(cell, RESUMED if resume else RAN, time.monotonic() - started)


def _resumed_config(cell: Cell) -> RunConfig:
    """The config the cell's run.json recorded: a resume finishes the run exactly as it was started."""
    run = read_status(cell.config.results_dir / cell.run_id) or {}
    config = RunConfig.from_json(run.get("config") or {}, cell.config.results_dir, cell.run_id)
    config.use_cache = cell.config.use_cache
    config.executor, config.ray_address, config.executor_options = (
        cell.config.executor, cell.config.ray_address, cell.config.executor_options)  # this sweep's, not the first's
    return config


def run_child(sweep: Sweep, cell: Cell, debug: bool = False) -> Outcome:
    """Run one cell in a child process (``harness sweep FILE --cell RUN_ID``); its output is kept for a failure."""
    resume = cell_state(cell) == RESUME
    command = [sys.executable, "-c", "from harness.cli import main; main()", "sweep", str(sweep.path),
               "--cell", cell.run_id, "--results-dir", str(sweep.results_dir.absolute()),
               "--executor", cell.config.executor] + (["--debug"] if debug else [])
    if cell.config.ray_address:
        command += ["--ray-address", cell.config.ray_address]
    started = time.monotonic()
    child = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if child.returncode == 0:
        return Outcome(cell, RESUMED if resume else RAN, seconds)
    return Outcome(cell, FAILED, seconds, child.returncode, _last_line(child.stderr or child.stdout, child.returncode))


def _last_line(text: str, code: int | None = None) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:  # a child's `harness` prints "error: MESSAGE"
        return lines[-1].removeprefix("error: ")
    return f"killed by signal {-code}" if code is not None and code < 0 else "no error message"


def run_cells(sweep: Sweep, parallel: int, registry: Callable[[], Registry], report: Callable[[Outcome], None],
              debug: bool = False) -> list[Outcome]:
    """Every cell of the sweep in order: finished ones skipped, the others run ``parallel`` at a time.

    ``report`` is told of each outcome as it is known; the outcomes come back in the sweep's cell order.
    """
    outcomes: dict[str, Outcome] = {}
    todo = []
    for cell in sweep.cells:
        if cell_state(cell) == FINISHED:
            outcomes[cell.run_id] = Outcome(cell, SKIPPED)
            report(outcomes[cell.run_id])
        else:
            todo.append(cell)
    if parallel == 1:
        loaded = registry() if todo else None
        for cell in todo:
            outcomes[cell.run_id] = run_here(cell, loaded)
            report(outcomes[cell.run_id])
    else:
        with ThreadPoolExecutor(max_workers=parallel) as pool:  # threads only wait for their child processes
            futures = [pool.submit(run_child, sweep, cell, debug) for cell in todo]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.cell.run_id] = outcome
                report(outcome)
    return [outcomes[cell.run_id] for cell in sweep.cells]
