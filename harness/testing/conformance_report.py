"""The conformance check's report, and the checks of records that every part of it shares.

`ConformanceReport` is what `harness.testing.conformance.check_classifier`
returns: one `CheckResult` per named check. A `Checker` collects the problems
of one check; `check_records` and `check_never_scored` hold records to the
public record contract.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.record import RUN_FIELDS
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


def check_records(check: Checker, records: list[dict], labels: dict[str, list[str]]) -> None:
    """Every record carries the contract's fields; an answered one predicts a candidate and says if it is correct."""
    for record in records:
        missing = [name for name in RECORD_FIELDS if name not in record]
        check.expect(not missing, f"record fields missing: {', '.join(missing)}")
        error, predicted = record.get("error"), record.get("predicted_label")
        check.expect(error is None or error in ERROR_KINDS, f"unknown error kind {error!r}")
        if error is None:
            check.expect(predicted in labels.get(record.get("category"), []), f"predicted {predicted!r} is no candidate")
            check.expect(record.get("correct") == (predicted == record.get("true_label")), "correct disagrees with the labels")
            check.expect((record.get("latency_s") or 0) >= 0 and record.get("attempts", 0) >= 1, "latency or attempts missing")
        check.expect(record.get("called") is True, "gate 'none' flags every image, but the model was not called")
    check_never_scored(check, records)


def check_never_scored(check: Checker, records: list[dict]) -> None:
    """No failed record has a prediction or counts as correct."""
    for record in records:
        if record.get("error") is not None:
            check.expect(record.get("predicted_label") is None and record.get("correct") is False,
                         f"a failure ({record['error']}) was scored as the answer {record.get('predicted_label')!r}")


def error_summary(records: list[dict]) -> str:
    """``backend_error x3, timeout x1``: the error kinds of ``records``, most frequent first."""
    counts = Counter(r["error"] for r in records if r["error"])
    return ", ".join(f"{kind} x{n}" for kind, n in counts.most_common())

