"""Result files: ``results/<run-id>/run.json`` and ``samples.jsonl``, a public contract versioned by
`SCHEMA_VERSION`. Records are appended and flushed as each finishes, so a killed run loses nothing
finished; ``run.json`` is replaced atomically. (``prompt_images/``: `harness.run.prompt_record`.)
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import secrets
import subprocess
import sys
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, TextIO

from harness import __version__
from harness.errors import HarnessError

#: Bump the major part for changes that break readers, the minor part for additions.
SCHEMA_VERSION = "1.4"  # 1.4: batch_id; 1.3: replica; 1.2: answer_rule, served_model, error_transient, attempts_total, prompt_images; 1.1: repeat, class_order
# 1.1 also: with ``--policy``, records carry ``severity_true``, ``action_true``, ``severity_predicted``,
# ``action_predicted`` and run.json a ``decisions`` section (harness/scoring/decision_report.py).
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"


class ResultWriter(ABC):
    """An extra output format, registered through ``register_result_writers``."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def write(self, run_dir: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> Path:
        """Write the format into ``run_dir``; return the path written."""


def new_run_id(benchmark: str, now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time, benchmark, and a random suffix."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{benchmark}-{secrets.token_hex(3)}"


def write_json_atomic(path: Path, data: dict[str, Any], durable: bool = True) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path``: readers see the old or the
    new file, never a part. ``durable`` also syncs it to disk first (to survive a power loss)."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"  # one write, not a chunk per token
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    os.replace(tmp, path)


class RunFiles:
    """The two files of one run, open for writing."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._samples: TextIO = (run_dir / SAMPLES_FILE).open("a", encoding="utf-8")

    def write_run(self, run: dict[str, Any], durable: bool = True) -> None:
        """Replace run.json atomically; ``durable=False`` skips the disk sync (see `write_json_atomic`)."""
        write_json_atomic(self.run_dir / RUN_FILE, run, durable=durable)

    def append_record(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line and flush it to the OS at once."""
        self._samples.write(json.dumps(record, default=str) + "\n")
        self._samples.flush()

    def close(self) -> None:
        self._samples.close()


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a run folder; a truncated last line (a killed run) is skipped, anything else is an error."""
    run_path = run_dir / RUN_FILE
    if not run_path.is_file():
        raise HarnessError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HarnessError(f"{run_path}: not valid JSON ({error})") from None
    return run, read_jsonl(run_dir / SAMPLES_FILE)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` ([] when absent); a truncated last line is skipped, anything else is an error."""
    records: list[dict[str, Any]] = []
    if not path.is_file():
        return records
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # the line being written when the run was killed
            raise HarnessError(f"{path}:{number}: not a JSON record") from None
    return records


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run folders in ``paths``: each path is a run folder or a folder of run folders."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise HarnessError(f"{path}: no such results folder")
        if (path / RUN_FILE).is_file():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.glob(f"*/{RUN_FILE}")))
    return found


def resolve_run_dir(ref: str | Path, results_dir: Path) -> Path:
    """The folder of a run given by id (``results_dir/ref``) or by path; else a `HarnessError` listing the
    newest runs in ``results_dir``."""
    for candidate in (results_dir / str(ref), Path(ref)):
        if (candidate / RUN_FILE).is_file():
            return candidate
    known = sorted(p.parent.name for p in results_dir.glob(f"*/{RUN_FILE}")) if results_dir.is_dir() else []
    listing = ", ".join(known[-10:]) if known else "none"
    more = f" (newest 10 of {len(known)})" if len(known) > 10 else ""
    raise HarnessError(
        f"unknown run id {str(ref)!r}: {str(ref)!r} not found as {results_dir / str(ref) / RUN_FILE} "
        f"or {Path(ref) / RUN_FILE}; runs in {results_dir}: {listing}{more} (is --results-dir right?)"
    )


@functools.lru_cache(maxsize=None)
def _version_or_none(distribution: str) -> str | None:
    """The installed version of ``distribution``, looked up once per process (a lookup scans every path
    entry's metadata; a package upgraded meanwhile would not be re-imported either)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit(source: Path | None = None) -> dict[str, Any] | None:
    """The commit of the harness source tree (or of ``source``), and whether tracked files differ from it."""
    source = source or Path(__file__).resolve().parent.parent
    try:
        # One process for both facts: the header line ``# branch.oid`` names the commit, and
        # every other line is a changed tracked file. Never cached: the tree may change between runs.
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain=v2", "--branch",
                                 "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return None
    lines = status.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return None  # no commit yet
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in lines if line.strip())}


def environment_provenance() -> dict[str, Any]:
    """Versions and machine facts that can change a result. Reads metadata only; imports nothing heavy."""
    return {
        "harness_version": __version__,
        "git": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        **{name: _version_or_none(name) for name in ("torch", "transformers", "numpy", "pillow")},
    }


def truncate_partial_line(run_dir: Path) -> bool:
    """Cut a half-written last line (a run killed mid-write) off samples.jsonl, which the next record would
    be glued onto; True if one was cut."""
    path = run_dir / SAMPLES_FILE
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(keep)
    return True
