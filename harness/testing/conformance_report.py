"""The conformance check's report, and the checks of records that every part of it shares.

`ConformanceReport` is what `harness.testing.conformance.check_classifier`
returns: one `CheckResult` per named check. A `Checker` collects the problems
of one check; `check_fields`, `check_records` and `check_never_scored` hold
a run's records to the public record contract: its JSON lines carry every
field, and the `Record`s read from them say what they should.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from typing import Any

from harness.record import RUN_FIELDS, Record
from harness.types import ERROR_KINDS

#: Fields every sample record must carry (the public record contract): every field of a `Record` that
#: `harness run` writes (harness/record.py).
RECORD_FIELDS = RUN_FIELDS


@dataclass
class CheckResult:
    """One named check: passed or not, and what broke (or a summary when it passed)."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    """The outcome of `check_classifier`: one `CheckResult` per check, in order."""

    classifier: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def names(self) -> list[str]:
        return [check.name for check in self.checks]

    def __str__(self) -> str:
        lines = [f"conformance of {self.classifier}: {'ok' if self.ok else f'{len(self.failures)} check(s) failed'}"]
        for check in self.checks:
            lines.append(f"  {'PASS' if check.passed else 'FAIL'} {check.name}" + (f": {check.detail}" if check.detail else ""))
        return "\n".join(lines)

    def raise_for_failures(self) -> "ConformanceReport":
        """Raise AssertionError listing every failed check (pytest shows the whole report)."""
        if not self.ok:
            raise AssertionError(str(self))
        return self


class Checker:
    """Collects the problems of one named check; `done` adds its result to the report."""

    def __init__(self, report: ConformanceReport, name: str):
        self.report, self.name, self.problems = report, name, []

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def done(self, passed_detail: str = "") -> None:
        detail = "; ".join(dict.fromkeys(self.problems)) if self.problems else passed_detail
        self.report.checks.append(CheckResult(self.name, not self.problems, detail[:2000]))


def check_fields(check: Checker, lines: list[dict[str, Any]]) -> None:
    """Every JSON line of samples.jsonl carries the contract's fields (a `Record` read back fills in what is missing)."""
    for line in lines:
        missing = [name for name in RECORD_FIELDS if name not in line]
        check.expect(not missing, f"record fields missing: {', '.join(missing)}")


def check_records(check: Checker, records: list[Record], labels: dict[str, list[str]]) -> None:
    """An answered record predicts a candidate and says if it is correct; a failed one is never scored."""
    for record in records:
        error, predicted = record.error, record.predicted_label
        check.expect(error is None or error in ERROR_KINDS, f"unknown error kind {error!r}")
        if error is None:
            check.expect(predicted in labels.get(record.category, []), f"predicted {predicted!r} is no candidate")
            check.expect(record.correct == (predicted == record.true_label), "correct disagrees with the labels")
            check.expect((record.latency_s or 0) >= 0 and (record.attempts or 0) >= 1, "latency or attempts missing")
        check.expect(record.called is True, "gate 'none' flags every image, but the model was not called")
    check_never_scored(check, records)


def check_never_scored(check: Checker, records: list[Record]) -> None:
    """No failed record has a prediction or counts as correct."""
    for record in records:
        if record.error is not None:
            check.expect(record.predicted_label is None and record.correct is False,
                         f"a failure ({record.error}) was scored as the answer {record.predicted_label!r}")


def error_summary(records: list[Record]) -> str:
    """``backend_error x3, timeout x1``: the error kinds of ``records``, most frequent first."""
    counts = Counter(r.error for r in records if r.error)
    return ", ".join(f"{kind} x{n}" for kind, n in counts.most_common())

