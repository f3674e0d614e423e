"""The classifier contract, checked: run any classifier plugin through it.

``check_classifier(MyClassifier, "model-id", options)`` returns a
`ConformanceReport` (``report.ok``, ``str(report)``, `ConformanceReport.raise_for_failures`).
It runs real `harness.runner.Run`s of the tiny benchmark (gate ``none``, so
every image reaches the classifier) and checks, by name:

- ``declaration``: ``plugin`` (a spec prefix without ``:`` ``,`` or spaces),
  ``description``, ``Options`` (a `ClassifierOptions` subclass), ``capabilities``,
  an ``async def classify``;
- ``options``: an unknown option and each of ``bad_options`` are rejected with
  a `HarnessError` that names the option, also when a run is built; every
  option has a description (``harness list --verbose`` shows them);
- ``retries-declared``: ``should_retry`` says yes to each ``transient_errors``
  and no to each ``permanent_errors`` and to a plain bug (``ValueError``);
  ``is_timeout``, ``is_rate_limited``, ``is_fatal`` and ``retry_after`` answer with a bool and
  None-or-seconds (``is_fatal`` never yes to a transient error or a bug);
- ``records-complete``: one record per sample with every contract field, an
  error kind from the fixed list or none, a predicted class from the
  category's labels only when there is no error, ``correct`` only then, at
  least one answer parsed, run.json finished with metrics;
- ``permanent-error``: an injected permanent error becomes ``backend_error``
  after one attempt, with no prediction;
- ``transient-retried`` / ``transient-exhausted``: a transient error on the
  first attempt is retried and answered; one on every attempt ends as an error
  marked ``error_transient`` after ``max_attempts``, or, when ``is_rate_limited``
  says it is rate limiting, once a small ``rate_limit_budget_s`` is spent;
- ``timeout``: a request that outlives ``timeout_s`` is recorded as ``timeout``;
- ``no-secret``: none of ``secrets`` appears in any file a run wrote.

Errors are injected by a subclass whose ``classify`` raises before delegating
to yours, so ``should_retry`` and ``is_timeout`` are your own. With ``server``
(a started `harness.loopback.LoopbackServer` that ``options`` point the
classifier at), the wire is faulted too (`harness.conformance_wire`): ``wire-permanent`` (401),
``wire-transient`` (503 once per request), ``wire-malformed`` (a 200 that is
not JSON), ``wire-refusal`` (a refusal is ``refused``/``unparseable``, never a class).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.options import validate_options
from harness.plugins import load_registry
from harness.runner import Run, RunConfig
from harness.tiny_benchmark import CATEGORIES, TINY_TEMPLATE, TinyBenchmark, write_tiny_benchmark
from harness.types import ERROR_KINDS, Prompt

#: Fields every sample record must carry (the public record contract).
RECORD_FIELDS = (
    "sample_id", "benchmark", "category", "image", "true_label", "gate", "model", "served_model", "prompt",
    "prompt_images", "response", "predicted_label", "answer_rule", "correct", "error", "latency_s", "attempts",
    "tokens_in", "tokens_out", "cost_usd", "error_transient", "attempts_total",
)
UNKNOWN_OPTION = "conformance_no_such_option"
#: The rate-limit budget of the transient-exhausted check for rate-limiting errors (seconds).
RATE_LIMIT_BUDGET_S = 0.05

TEMPLATE = TINY_TEMPLATE

ErrorLike = BaseException | Callable[[], BaseException]


@dataclass
class CheckResult:
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


class _Checker:
    """Collects failures of one named check."""

    def __init__(self, report: ConformanceReport, name: str):
        self.report, self.name, self.problems = report, name, []

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def done(self, passed_detail: str = "") -> None:
        detail = "; ".join(dict.fromkeys(self.problems)) if self.problems else passed_detail
        self.report.checks.append(CheckResult(self.name, not self.problems, detail[:2000]))


def check_classifier(
    classifier: type[Classifier] | object,
    model_id: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    transient_errors: Iterable[ErrorLike] = (),
    permanent_errors: Iterable[ErrorLike] = (),
    bad_options: Iterable[Mapping[str, Any]] = (),
    server: Any = None,
    secrets: Iterable[str] = (),
    data_root: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> ConformanceReport:
    """Run ``classifier`` (the class a plugin registers) through the contract; see the module docstring.

    ``classifier`` may also be the plugin itself (a module or object with a
    ``register_classifiers`` hook) when it registers exactly one classifier.
    ``options`` must make it work offline (e.g. ``base_url`` of a loopback
    server); ``transient_errors`` / ``permanent_errors`` are exceptions (or
    factories of them) that your backend really raises; ``data_root`` is a
    folder for the tiny benchmark (default: a temporary one); with
    ``work_dir``, the runs are kept in a new folder inside it (default: a
    temporary folder, deleted afterwards).
    """
    classifier = _the_classifier(classifier)
    options = dict(options or {})
    plugin = getattr(classifier, "plugin", None) or getattr(classifier, "__name__", repr(classifier))
    spec = f"{plugin}:{model_id}" if model_id else str(plugin)
    report = ConformanceReport(spec)
    transient = [_make(e) for e in transient_errors]
    permanent = [_make(e) for e in permanent_errors] or [RuntimeError("conformance: injected permanent failure")]
    with tempfile.TemporaryDirectory(prefix="harness-conformance-") as scratch:
        root = write_tiny_benchmark(Path(data_root) if data_root else Path(scratch) / "tiny")
        if work_dir:  # a fresh folder per check: run ids repeat from one check to the next
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="conformance-", dir=work_dir))
        else:
            work = Path(scratch) / "runs"
        context = _Context(classifier, model_id, spec, options, root, work, report)
        if not _check_declaration(context):
            return report  # the rest would only repeat the same failure
        _check_options(context, bad_options)
        _check_retry_declarations(context, transient, permanent)
        context.run_answers(server)
        _check_injected_faults(context, transient, permanent)
        if server is not None:
            from harness.conformance_wire import check_wire_faults

            check_wire_faults(context, server)
        _check_no_secret(context, [s for s in secrets if s])
    return report


class _Context:
    """What every check needs, and a way to run the tiny benchmark through a variant of the classifier."""

    def __init__(self, classifier, model_id, spec, options, root, work, report):
        self.classifier, self.model_id, self.spec, self.options = classifier, model_id, spec, options
        self.root, self.work, self.report = root, work, report
        self.runs = 0
        self.labels = {name: ["good", *classes] for name, (_, classes) in CATEGORIES.items()}

    def instance(self) -> Classifier:
        return self.classifier(self.model_id, validate_options(self.classifier.Options, self.options, self.spec))

    def run(self, classifier: type[Classifier], options: Mapping[str, Any] | None = None,
            limit: int | None = None) -> tuple[list[dict], dict]:
        """One real run of the tiny benchmark; returns (records, run.json)."""
        self.runs += 1
        plugin = _plugin(classifier, TinyBenchmark(self.root))
        registry = load_registry(extra_plugins=[("harness-conformance", plugin)], entry_points=False)
        config = RunConfig(
            benchmark="tiny", models=[self.spec], gate="none", prompt=TEMPLATE.name,
            model_options={self.spec: dict(options if options is not None else self.options)},
            limit=limit, shots=1 if classifier.needs_support else 0, results_dir=self.work,
            run_id=f"conformance-{self.runs}", use_cache=False, n_boot=20, retry_initial_s=0.001, retry_max_s=0.01,
        )
        result = Run(config, registry).execute()
        return result.records, result.run

    def run_answers(self, server: Any = None) -> None:
        check = _Checker(self.report, "records-complete")
        original = server.responder if server is not None else None
        try:
            if server is not None:
                from harness.conformance_wire import answer_first_candidate

                server.responder = answer_first_candidate(self)
            records, run = self.run(self.classifier)
        except Exception as error:
            check.expect(False, f"the run failed: {type(error).__name__}: {error}")
            return check.done()
        finally:
            if server is not None:
                server.responder = original
        expected = sum(c["n_test"] for c in run["benchmark"]["categories"].values())
        check.expect(len(records) == expected, f"{len(records)} records for {expected} samples")
        check.expect(len({r["sample_id"] for r in records}) == len(records), "a sample has more than one record")
        _check_records(check, records, self.labels)
        answered = [r for r in records if r["error"] is None]
        check.expect(bool(answered), "no sample was answered: " + _error_summary(records))
        check.expect(run.get("status") == "finished", f"run.json status is {run.get('status')!r}")
        check.expect(self.spec in (run.get("metrics") or {}), "run.json has no metrics for the model")
        check.expect(self.spec in run["provenance"]["classifiers"], "describe() is missing from the provenance")
        check.done(f"{len(records)} records, {len(answered)} answered, errors: {_error_summary(records) or 'none'}")


def _check_declaration(context: _Context) -> bool:
    check = _Checker(context.report, "declaration")
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


def _check_options(context: _Context, bad_options: Iterable[Mapping[str, Any]]) -> None:
    check = _Checker(context.report, "options")
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
        plugin = _plugin(context.classifier, TinyBenchmark(context.root))
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


def _check_retry_declarations(context: _Context, transient: list[BaseException], permanent: list[BaseException]) -> None:
    check = _Checker(context.report, "retries-declared")
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


def _check_injected_faults(context: _Context, transient: list[BaseException], permanent: list[BaseException]) -> None:
    fast = {**context.options, "max_attempts": 2}
    for error in permanent:
        check = _Checker(context.report, "permanent-error")
        kind = "timeout" if context.instance().is_timeout(error) else "backend_error"
        records = _run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e), fast)
        for record in records:
            check.expect(record["error"] == kind, f"recorded {record['error']!r}, expected {kind!r}")
            check.expect(record["attempts"] == 1, f"a permanent error was tried {record['attempts']} times")
            check.expect(type(error).__name__ in (record.get("error_detail") or ""), "error_detail does not name the error")
        _check_never_scored(check, records)
        check.done(f"{type(error).__name__} -> {kind} after 1 attempt")
    for error in transient:
        check = _Checker(context.report, "transient-retried")
        records = _run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e if n == 1 else None), fast)
        for record in records:
            check.expect(record["attempts"] == 2, f"attempts {record['attempts']}, expected 2 (one failure, one retry)")
            check.expect(record["error"] not in ("backend_error", "timeout"), f"still failed: {record.get('error_detail')}")
        check.done(f"{type(error).__name__} once -> answered on attempt 2")
        check = _Checker(context.report, "transient-exhausted")
        # Rate limiting is retried for a time budget, not a count: a small budget ends it.
        limited = context.instance().is_rate_limited(error)
        options = {**fast, "rate_limit_budget_s": RATE_LIMIT_BUDGET_S} if limited else fast
        records = _run_or_fail(check, context, _faulty(context.classifier, lambda n, e=error: e), options)
        for record in records:
            check.expect(record["error"] in ("backend_error", "timeout"), f"recorded {record['error']!r} after retries")
            check.expect(record.get("error_transient") is True, "a failure after retries is not marked error_transient")
            if limited:
                check.expect("rate_limit_budget_s" in (record.get("error_detail") or ""),
                             f"a rate-limited request did not end on its budget: {record.get('error_detail')}")
            else:
                check.expect(record["attempts"] == 2, f"attempts {record['attempts']}, expected max_attempts=2")
        _check_never_scored(check, records)
        check.done(f"{type(error).__name__} always -> error " + ("when the rate-limit budget is spent" if limited else "after 2 attempts"))
    check = _Checker(context.report, "timeout")
    slow = _faulty(context.classifier, lambda n: 5.0)  # sleeps 5 s; timeout_s is 0.05 s
    records = _run_or_fail(check, context, slow, {**fast, "timeout_s": 0.05})
    for record in records:
        check.expect(record["error"] == "timeout", f"recorded {record['error']!r}, expected 'timeout'")
    _check_never_scored(check, records)
    check.done("a request past timeout_s -> timeout")


def _check_no_secret(context: _Context, secrets: list[str]) -> None:
    if not secrets:
        return
    check = _Checker(context.report, "no-secret")
    files = [p for p in context.work.rglob("*") if p.is_file()]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in secrets:
            check.expect(secret not in text, f"a secret is written in {path.name}")
    check.done(f"{len(files)} files of {context.runs} runs hold no secret")


# ----------------------------------------------------------------------------- helpers


def _check_records(check: _Checker, records: list[dict], labels: dict[str, list[str]]) -> None:
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
    _check_never_scored(check, records)


def _check_never_scored(check: _Checker, records: list[dict]) -> None:
    for record in records:
        if record.get("error") is not None:
            check.expect(record.get("predicted_label") is None and record.get("correct") is False,
                         f"a failure ({record['error']}) was scored as the answer {record.get('predicted_label')!r}")


def _run_or_fail(check: _Checker, context: _Context, classifier: type[Classifier], options: dict,
                 limit: int | None = 1) -> list[dict]:
    try:
        records, _ = context.run(classifier, options, limit=limit)
    except Exception as error:
        check.expect(False, f"the run failed: {type(error).__name__}: {error}")
        return []
    check.expect(bool(records), "the run wrote no records")
    return records


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


def _plugin(classifier: type[Classifier], benchmark: TinyBenchmark) -> object:
    from harness.testing import plugin_of  # testing imports this module lazily; no cycle at import time

    return plugin_of(classifiers=[classifier], benchmarks=[benchmark], templates=[TEMPLATE])


def _the_classifier(given: Any) -> Any:
    """The class itself, or the one class a plugin's ``register_classifiers`` registers."""
    if inspect.isclass(given) or not hasattr(given, "register_classifiers"):
        return given
    registered: list[Any] = []
    given.register_classifiers(register=registered.append)
    if len(registered) != 1:
        names = ", ".join(getattr(c, "plugin", repr(c)) for c in registered) or "none"
        raise ValueError(f"the plugin registers {len(registered)} classifiers ({names}); pass the one to check")
    return registered[0]


def _make(error: ErrorLike) -> BaseException:
    return error if isinstance(error, BaseException) else error()


def _error_summary(records: list[dict]) -> str:
    counts = Counter(r["error"] for r in records if r["error"])
    return ", ".join(f"{kind} x{n}" for kind, n in counts.most_common())


def __getattr__(name: str) -> Any:
    # The wire helpers live in harness.conformance_wire (imported on first use); this is their public home.
    if name in ("error_from_wire", "tiny_prompt"):
        from harness import conformance_wire

        return getattr(conformance_wire, name)
    raise AttributeError(f"module 'harness.conformance' has no attribute {name!r}")
