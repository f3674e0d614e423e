"""What ``harness run --resume`` asks again, with exactly one record per (sample, model, repeat) kept.

A resume asks again every record whose failure was transient (``error_transient``), and with
``--retry-errors`` every other failed record but ``bad_input`` (asking again cannot read the image).
Before anything is asked, those records 1. are added to ``superseded.jsonl`` (one line each:
``resume`` number, ``why``, ``record``), 2. leave ``samples.jsonl``. Each file is replaced
atomically, so a kill leaves the old file or the new one. A kill between the steps leaves a record
in both: the next resume finds it still in ``samples.jsonl`` and drops its history entry, so no
record is held twice. A new record's ``attempts_total`` adds that of the record it replaces.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.results import SAMPLES_FILE, read_jsonl

SUPERSEDED_FILE = "superseded.jsonl"

Key = tuple[str, str, int]  # (sample_id, model, repeat)


def record_key(record: dict[str, Any]) -> Key:
    """The (sample, model, repeat) a record (its JSON line) answers; a run holds one record per key. A record
    written before repeats existed is repeat 0."""
    return record["sample_id"], record["model"], int(record.get("repeat") or 0)


def failure_is_transient(record: dict[str, Any]) -> bool:
    """True when the record's failure was transient, so asking again may succeed.

    Records from before ``error_transient``: a ``timeout``, or a ``backend_error`` that "gave up after" retries.
    """
    error = record.get("error")
    if error is None:
        return False
    flag = record.get("error_transient")
    if flag is not None:
        return bool(flag)
    detail = record.get("error_detail") or ""
    return error == "timeout" or (error == "backend_error" and detail.startswith("gave up after"))


def ask_again_reason(record: dict[str, Any], retry_errors: bool) -> str | None:
    """``"transient"``, ``"retry_errors"`` (a permanent failure, asked again on request) or None (kept)."""
    error = record.get("error")
    if error is None or error == "bad_input":  # bad_input: the data's fault, the same image fails again
        return None
    if failure_is_transient(record):
        return "transient"
    return "retry_errors" if retry_errors else None


def attempts_total(record: dict[str, Any]) -> int:
    """Every attempt spent on the record's key across resumes (``attempts`` for records without the field)."""
    total = record.get("attempts_total")
    return int(total if total is not None else record.get("attempts") or 0)


@dataclass
class ResumePlan:
    """The records a resume keeps, those it asks again, and the attempts already spent on those."""

    kept: list[dict[str, Any]]
    asked_again: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (record, reason)
    #: key -> attempts_total of the latest replaced record, for keys that have no record now.
    earlier_attempts: dict[Key, int] = field(default_factory=dict)

    def summary(self, retry_errors: bool) -> dict[str, Any]:
        """What run.json's ``resumed`` entry says about the records asked again."""
        return {
            "records_kept": len(self.kept),
            "asked_again": len(self.asked_again),
            "asked_again_why": dict(Counter(reason for _, reason in self.asked_again)),
            "asked_again_errors": dict(Counter(record["error"] for record, _ in self.asked_again)),
            "retry_errors": retry_errors,
        }


def prepare_resume(run_dir: Path, records: list[dict[str, Any]], retry_errors: bool, resume_number: int) -> ResumePlan:
    """Decide what to ask again, move it from samples.jsonl to superseded.jsonl, and return the plan.

    A key recorded twice (older runs) keeps its first record. ``resume_number``: 0 for a run's first resume.
    """
    plan = ResumePlan(kept=[])
    current: dict[Key, dict[str, Any]] = {}
    for record in records:
        key = record_key(record)
        if key in current:
            continue
        current[key] = record
        reason = ask_again_reason(record, retry_errors)
        if reason is None:
            plan.kept.append(record)
        else:
            plan.asked_again.append((record, reason))
    superseded_path = run_dir / SUPERSEDED_FILE
    history = read_jsonl(superseded_path)
    # An entry whose record samples.jsonl still holds was written by a resume killed before its
    # rewrite: that record was never replaced. Drop it; it is added again below if it goes now.
    updated = [e for e in history if current.get(record_key(e["record"])) != e["record"]]
    updated += [{"resume": resume_number, "why": reason, "record": record} for record, reason in plan.asked_again]
    if updated != history:
        write_jsonl_atomic(superseded_path, updated)  # step 1: the dropped records are safe first
    if len(plan.kept) != len(records):
        write_jsonl_atomic(run_dir / SAMPLES_FILE, plan.kept)  # step 2
    kept_keys = {record_key(r) for r in plan.kept}
    for entry in updated:
        key = record_key(entry["record"])
        if key not in kept_keys:
            plan.earlier_attempts[key] = max(plan.earlier_attempts.get(key, 0), attempts_total(entry["record"]))
    return plan


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records`` as JSON lines: temp file beside it, fsync, rename, fsync the folder."""
    tmp = path.with_name(path.name + ".tmp")  # a stale one from a killed resume is simply overwritten
    text = "".join(json.dumps(record, default=str) + "\n" for record in records)
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # makes the rename durable on POSIX; elsewhere the rename is what we have
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
