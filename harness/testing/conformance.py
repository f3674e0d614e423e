"""The classifier contract, checked: run any classifier plugin through it.

``check_classifier(MyClassifier, "model-id", options)`` returns a
`ConformanceReport` (``report.ok``, ``str(report)``, `ConformanceReport.raise_for_failures`).
It runs real `harness.run.runner.Run`s of the tiny benchmark (gate ``none``, so
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
(a started `harness.testing.loopback.LoopbackServer` that ``options`` point the
classifier at), the wire is faulted too (`harness.testing.conformance_wire`): ``wire-permanent`` (401),
``wire-transient`` (503 once per request), ``wire-malformed`` (a 200 that is
not JSON), ``wire-refusal`` (a refusal is ``refused``/``unparseable``, never a class).

The checks live in `conformance_checks` (no server) and `conformance_wire`
(with one), their report in `conformance_report`, the runs they share in
`conformance_context`; this module is the public home (``harness.conformance``
is kept for compatibility).
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness.classifiers import Classifier
from harness.testing.conformance_checks import (
    RATE_LIMIT_BUDGET_S, UNKNOWN_OPTION, check_declaration, check_injected_faults, check_no_secret, check_options,
    check_records_complete, check_retry_declarations,
)
from harness.testing.conformance_context import TEMPLATE, ConformanceContext
from harness.testing.conformance_report import RECORD_FIELDS, CheckResult, ConformanceReport
from harness.testing.conformance_wire import check_wire_faults, error_from_wire
from harness.testing.tiny_benchmark import tiny_prompt, write_tiny_benchmark

__all__ = [
    "RATE_LIMIT_BUDGET_S", "RECORD_FIELDS", "TEMPLATE", "UNKNOWN_OPTION", "CheckResult", "ConformanceReport",
    "ErrorLike", "check_classifier", "error_from_wire", "tiny_prompt",
]

ErrorLike = BaseException | Callable[[], BaseException]


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
        context = ConformanceContext(classifier, model_id, spec, options, root, work, report)
        if not check_declaration(context):
            return report  # the rest would only repeat the same failure
        check_options(context, bad_options)
        check_retry_declarations(context, transient, permanent)
        check_records_complete(context, server)
        check_injected_faults(context, transient, permanent)
        if server is not None:
            check_wire_faults(context, server)
        check_no_secret(context, [s for s in secrets if s])
    return report


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

