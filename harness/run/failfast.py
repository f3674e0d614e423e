"""Runs whose requests fail: stop early when none can succeed, and say so on exit.

When a model's first `EARLY_STOP_AFTER` requests all fail fatally (401, 403, 404: a wrong key, no
access, a misspelled model or URL), `FailFast` stops the run with `EarlyStop` (exit code 2) instead
of sending the rest the same way; any other outcome ends the watch for that model. On exit,
`call_failures` counts the calls that produced no answer, and `check_answered` raises
`NoAnswersError` (exit code 1) when a model never answered: its figures would rest on the gate alone.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError
from harness.record import Record
from harness.run.run_identity import CALL_ERRORS  # error kinds of a call that produced no answer

#: HTTP statuses that say no request of this model can succeed as configured.
FATAL_STATUSES = frozenset({401, 403, 404})
#: A model whose first this-many requests of a run all fail fatally stops the run.
EARLY_STOP_AFTER = 8
#: Longest example error detail quoted in run.json and messages.
EXAMPLE_CHARS = 300


def http_status(error: BaseException | None) -> int | None:
    """The HTTP status an SDK exception carries (``status_code`` or ``status``, on it or its response), if any."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


class EarlyStop(HarnessError):
    """A model's first requests all failed fatally; the run stopped before sending the rest."""

    exit_code = 2

    def __init__(self, model: str, requests: int, detail: str | None, run_dir: Path | None = None):
        self.model, self.requests, self.detail = model, requests, detail
        where = f"; what was recorded is kept in {run_dir}" if run_dir is not None else ""
        super().__init__(
            f"stopped early: the first {requests} requests to model {model!r} all failed with an error that "
            f"retrying cannot fix (last: {detail or 'no detail'}); check its API key, model name and base URL{where}"
        )

    def as_json(self) -> dict[str, Any]:
        """What run.json keeps under ``stopped_early``."""
        return {"model": self.model, "requests": self.requests, "error": self.detail}


class FailFast:
    """Watches each model's first requests of a run; `check` raises `EarlyStop` once one model's all failed fatally."""

    def __init__(self, after: int = EARLY_STOP_AFTER):
        self.after = after
        self.run_dir: Path | None = None  # named in the message when set
        self._fatal: dict[str, int] = {}  # model -> fatal failures so far, while every request so far was one
        self._cleared: set[str] = set()  # models that have had any other outcome
        self.stopped: EarlyStop | None = None

    def observe(self, model: str, call: Any) -> None:
        """Take one finished call (a `harness.run.dispatch.CallResult`) of ``model`` into account."""
        if model in self._cleared or self.stopped is not None:
            return
        if not getattr(call, "fatal", False):
            self._cleared.add(model)
            self._fatal.pop(model, None)
            return
        self._fatal[model] = self._fatal.get(model, 0) + 1
        if self._fatal[model] >= self.after:
            self.stopped = EarlyStop(model, self._fatal[model], call.detail, self.run_dir)

    def check(self) -> None:
        """Raise the `EarlyStop` once some model's first requests all failed fatally."""
        if self.stopped is not None:
            raise self.stopped


# --------------------------------------------------------------------------- on exit


def call_failures(records: Iterable[Record], models: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per model: ``calls`` (records of a model call, cached ones included), ``failed`` (no answer),
    ``errors`` (failed calls by error kind) and ``example`` (the first failure's redacted detail, or None)."""
    records = list(records)
    summary: dict[str, dict[str, Any]] = {
        model: {"calls": 0, "failed": 0, "errors": Counter(), "example": None}
        for model in [*models, *(r.model for r in records)]
    }
    for record in records:
        if not record.called:
            continue
        entry = summary[record.model]
        entry["calls"] += 1
        if record.error in CALL_ERRORS:
            entry["failed"] += 1
            entry["errors"][record.error] += 1
            if entry["example"] is None and record.error_detail:
                entry["example"] = str(record.error_detail)[:EXAMPLE_CHARS]
    for entry in summary.values():
        entry["errors"] = dict(sorted(entry["errors"].items()))
    return summary


def warnings(failures: dict[str, dict[str, Any]]) -> list[str]:
    """One line per model with failed calls: how many of how many, by error kind, with an example."""
    lines = []
    for model, entry in failures.items():
        if entry["failed"]:
            kinds = ", ".join(f"{kind} {count}" for kind, count in entry["errors"].items())
            example = f"; e.g. {entry['example']}" if entry.get("example") else ""
            lines.append(f"model {model!r}: {entry['failed']} of {entry['calls']} calls failed ({kinds}){example}")
    return lines


class NoAnswersError(HarnessError):
    """Some model was asked and never answered: its figures count only the images the gate passed."""

    exit_code = 1


def check_answered(failures: dict[str, dict[str, Any]], run_id: str) -> None:
    """Raise `NoAnswersError` when a model was called at all and every one of its calls failed."""
    silent = [model for model, entry in failures.items() if entry["calls"] and entry["failed"] == entry["calls"]]
    if silent:
        names = ", ".join(repr(m) for m in silent)
        raise NoAnswersError(
            f"no call to {names} succeeded: the figures of run {run_id} for {'it' if len(silent) == 1 else 'them'} "
            "count only the images the gate passed; fix the cause (see the warnings above) and run again"
        )
