"""The conformance checks that need no server: declaration, options, declared retries, records and injected faults.

Errors are injected by a subclass of the classifier (`faulty`) whose
``classify`` raises, or sleeps, before delegating to the real one, so the
classifier's own ``should_retry`` and ``is_timeout`` decide what happens.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections import Counter
from typing import Any, Callable, Iterable, Mapping

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.options import validate_options
from harness.plugins import load_registry
from harness.run.runner import Run, RunConfig
from harness.testing.conformance_context import (
    TEMPLATE, ConformanceContext, answer_first_candidate, run_or_fail, tiny_plugin,
)
from harness.testing.conformance_report import (
    Checker, check_fields, check_never_scored, check_records, error_summary,
)
from harness.testing.tiny_benchmark import TinyBenchmark
from harness.types import Prompt

UNKNOWN_OPTION = "conformance_no_such_option"
#: The rate-limit budget of the transient-exhausted check for rate-limiting errors (seconds).
RATE_LIMIT_BUDGET_S = 0.05


def check_records_complete(context: ConformanceContext, server: Any = None) -> None:
    """``records-complete``: one real run gives every sample a well-formed record (``server``: answers a listed class)."""
    check = Checker(context.report, "records-complete")
    original = server.responder if server is not None else None
    try:
        if server is not None:
            server.responder = answer_first_candidate(context)
        folder = context.run(context.classifier)
        records, run = folder.typed_records(), folder.run
    except Exception as error:
        check.expect(False, f"the run failed: {type(error).__name__}: {error}")
        return check.done()
    finally:
        if server is not None:
            server.responder = original
    expected = sum(c["n_test"] for c in run["benchmark"]["categories"].values())
    check.expect(len(records) == expected, f"{len(records)} records for {expected} samples")
    check.expect(len({r.sample_id for r in records}) == len(records), "a sample has more than one record")
    check_fields(check, folder.records)
    check_records(check, records, context.labels)
    answered = [r for r in records if r.error is None]
    check.expect(bool(answered), "no sample was answered: " + error_summary(records))
    check.expect(run.get("status") == "finished", f"run.json status is {run.get('status')!r}")
    check.expect(context.spec in (run.get("metrics") or {}), "run.json has no metrics for the model")
    check.expect(context.spec in run["provenance"]["classifiers"], "describe() is missing from the provenance")
    check.done(f"{len(records)} records, {len(answered)} answered, errors: {error_summary(records) or 'none'}")


def check_declaration(context: ConformanceContext) -> bool:
    """``declaration``: the class declares what the harness reads; False stops the other checks."""
    check = Checker(context.report, "declaration")
    cls = context.classifier
    check.expect(inspect.isclass(cls) and issubclass(cls, Classifier), "not a harness.classifiers.Classifier subclass")
    if not check.problems:
        plugin = getattr(cls, "plugin", "")
        check.expect(isinstance(plugin, str) and bool(re.fullmatch(r"[^\s:,]+", plugin or "")),
                     f"plugin {plugin!r} must be a non-empty spec prefix without ':', ',' or spaces")
        check.expect(bool(cls.description), "description is empty (harness list shows it)")
        check.expect(inspect.isclass(cls.Options) and issubclass(cls.Options, ClassifierOptions),
                     "Options must subclass harness.classifiers.ClassifierOptions")
        check.expect(isinstance(cls.capabilities, Capabilities), "capabilities must be a Capabilities")
        check.expect(inspect.iscoroutinefunction(cls.classify), "classify must be `async def`")
        check.expect(not (cls.requires_model_id and not context.model_id), "requires_model_id, but no model_id was given")
    check.done()
    return not check.problems


def check_options(context: ConformanceContext, bad_options: Iterable[Mapping[str, Any]]) -> None:
    """``options``: unknown and bad options are rejected by name, also by a run; every option is described."""
    check = Checker(context.report, "options")
    Options = context.classifier.Options
    try:
        validate_options(Options, context.options, context.spec)
    except HarnessError as error:
        check.expect(False, f"the given options are rejected: {error}")
    for bad in [{UNKNOWN_OPTION: 1}, *bad_options]:
        try:
            validate_options(Options, {**context.options, **bad}, context.spec)
            check.expect(False, f"{dict(bad)} was accepted")
        except HarnessError as error:
            named = all(key in str(error) for key in bad)
            check.expect(named, f"the error for {dict(bad)} does not name the option: {error}")
    try:  # a bad option must stop a run before it starts, naming the model
        plugin = tiny_plugin(context.classifier, TinyBenchmark(context.root))
        registry = load_registry(extra_plugins=[("harness-conformance", plugin)], entry_points=False)
        Run(RunConfig(benchmark="tiny", models=[context.spec], gate="none", prompt=TEMPLATE.name,
                      model_options={context.spec: {**context.options, UNKNOWN_OPTION: 1}},
                      shots=1 if context.classifier.needs_support else 0, results_dir=context.work), registry)
        check.expect(False, "a run with an unknown option was built")
    except HarnessError as error:
        check.expect(context.spec in str(error) and UNKNOWN_OPTION in str(error),
                     f"the run's error names neither model nor option: {error}")
    undocumented = [name for name, f in Options.model_fields.items() if not (f.description or "").strip()]
    check.expect(not undocumented, f"options without a description: {', '.join(undocumented)}")
    check.done(f"{len(Options.model_fields)} options, all described")


def check_retry_declarations(context: ConformanceContext, transient: list[BaseException],
                             permanent: list[BaseException]) -> None:
    """``retries-declared``: should_retry, is_timeout, is_rate_limited, is_fatal and retry_after answer as declared."""
    check = Checker(context.report, "retries-declared")
    try:
        instance = context.instance()
    except Exception as error:
        check.expect(False, f"cannot be built with the given options: {type(error).__name__}: {error}")
        return check.done()
    bug = ValueError("conformance: a programming error")
    for error in [*transient, *permanent, bug]:
        name = type(error).__name__
        retry = instance.should_retry(error)
        check.expect(isinstance(retry, bool), f"should_retry({name}) returned {retry!r}, not a bool")
        if error in transient:
            check.expect(retry is True, f"should_retry({name}) is {retry}, but it is a transient error")
        else:
            check.expect(retry is False, f"should_retry({name}) is {retry}: permanent errors and bugs must not be retried")
        timeout = instance.is_timeout(error)
        check.expect(isinstance(timeout, bool), f"is_timeout({name}) returned {timeout!r}, not a bool")
        limited = instance.is_rate_limited(error)
        check.expect(isinstance(limited, bool), f"is_rate_limited({name}) returned {limited!r}, not a bool")
        fatal = instance.is_fatal(error)
        check.expect(isinstance(fatal, bool), f"is_fatal({name}) returned {fatal!r}, not a bool")
        if error in transient or error is bug:
            check.expect(fatal is False, f"is_fatal({name}) is {fatal}: only errors no retry can fix are fatal")
        after = instance.retry_after(error)
        check.expect(after is None or (isinstance(after, (int, float)) and after >= 0),
                     f"retry_after({name}) returned {after!r}, not None or seconds")
    check.done(f"{len(transient)} transient and {len(permanent)} permanent error(s) declared as such")


def check_injected_faults(context: ConformanceContext, transient: list[BaseException],
                          permanent: list[BaseException]) -> None:
    """``permanent-error``, ``transient-retried``, ``transient-exhausted`` and ``timeout``, by injected errors."""
    fast = {**context.options, "max_attempts": 2}
    for error in permanent:
        check = Checker(context.report, "permanent-error")
        kind = "timeout" if context.instance().is_timeout(error) else "backend_error"
        records = run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e), fast)
        for record in records:
            check.expect(record.error == kind, f"recorded {record.error!r}, expected {kind!r}")
            check.expect(record.attempts == 1, f"a permanent error was tried {record.attempts} times")
            check.expect(type(error).__name__ in (record.error_detail or ""), "error_detail does not name the error")
        check_never_scored(check, records)
        check.done(f"{type(error).__name__} -> {kind} after 1 attempt")
    for error in transient:
        check = Checker(context.report, "transient-retried")
        records = run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e if n == 1 else None), fast)
        for record in records:
            check.expect(record.attempts == 2, f"attempts {record.attempts}, expected 2 (one failure, one retry)")
            check.expect(record.error not in ("backend_error", "timeout"), f"still failed: {record.error_detail}")
        check.done(f"{type(error).__name__} once -> answered on attempt 2")
        check = Checker(context.report, "transient-exhausted")
        # Rate limiting is retried for a time budget, not a count: a small budget ends it.
        limited = context.instance().is_rate_limited(error)
        options = {**fast, "rate_limit_budget_s": RATE_LIMIT_BUDGET_S} if limited else fast
        records = run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e), options)
        for record in records:
            check.expect(record.error in ("backend_error", "timeout"), f"recorded {record.error!r} after retries")
            check.expect(record.error_transient is True, "a failure after retries is not marked error_transient")
            if limited:
                check.expect("rate_limit_budget_s" in (record.error_detail or ""),
                             f"a rate-limited request did not end on its budget: {record.error_detail}")
            else:
                check.expect(record.attempts == 2, f"attempts {record.attempts}, expected max_attempts=2")
        check_never_scored(check, records)
        check.done(f"{type(error).__name__} always -> error " + ("when the rate-limit budget is spent" if limited else "after 2 attempts"))
    check = Checker(context.report, "timeout")
    slow = _faulty(context.classifier, lambda n: 5.0)  # sleeps 5 s; timeout_s is 0.05 s
    records = run_or_fail(check, context, slow, {**fast, "timeout_s": 0.05})
    for record in records:
        check.expect(record.error == "timeout", f"recorded {record.error!r}, expected 'timeout'")
    check_never_scored(check, records)
    check.done("a request past timeout_s -> timeout")


def check_no_secret(context: ConformanceContext, secrets: list[str]) -> None:
    """``no-secret`` (only when secrets are given): no file the runs wrote holds one."""
    if not secrets:
        return
    check = Checker(context.report, "no-secret")
    files = [p for p in context.work.rglob("*") if p.is_file()]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in secrets:
            check.expect(secret not in text, f"a secret is written in {path.name}")
    check.done(f"{len(files)} files of {context.runs} runs hold no secret")


def _faulty(classifier: type[Classifier], fault: Callable[[int], BaseException | float | None]) -> type[Classifier]:
    """A subclass whose n-th attempt at a request first does ``fault(n)``: raise it, sleep that long, or nothing."""

    class Faulty(classifier):  # type: ignore[valid-type, misc]
        async def classify(self, prompt: Prompt) -> Any:
            attempts = self.__dict__.setdefault("_conformance_attempts", Counter())
            attempts[prompt.request_hash] += 1
            action = fault(attempts[prompt.request_hash])
            if isinstance(action, BaseException):
                raise action
            if isinstance(action, (int, float)):
                await asyncio.sleep(action)
            return await super().classify(prompt)

    Faulty.__name__ = Faulty.__qualname__ = f"Faulty{classifier.__name__}"
    return Faulty

