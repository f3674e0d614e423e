"""The conformance check's wire half: fault a loopback server under an HTTP backend.

`check_wire_faults` is what `harness.testing.conformance.check_classifier` runs when
it is given a ``server``; `error_from_wire` gets the exceptions an SDK really
raises for a fault, to declare as ``transient_errors`` / ``permanent_errors``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any, Callable

from harness.classifiers import Classifier
from harness.testing.conformance_context import ConformanceContext, answer_first_candidate, run_or_fail
from harness.testing.conformance_report import Checker, check_never_scored
from harness.testing.loopback_script import Answer, Fault
from harness.testing.tiny_benchmark import tiny_prompt
from harness.types import Prompt

__all__ = ["answer_first_candidate", "check_wire_faults", "error_from_wire", "tiny_prompt"]


def error_from_wire(classifier: Classifier, server: Any, fault: Any, prompt: Prompt) -> BaseException:
    """The exception ``classifier`` raises when ``server`` answers ``fault`` (a loopback `Fault`).

    For ``transient_errors`` / ``permanent_errors``: the SDK's own exception
    objects, raised by the real client, rather than hand-built imitations.
    Raises AssertionError when the classifier returns instead of raising.
    """
    original = server.responder
    server.responder = lambda request: fault

    async def call() -> Any:
        try:
            return await classifier.classify(prompt)
        finally:
            await classifier.aclose()

    try:
        response = asyncio.run(call())
    except Exception as error:  # what we came for
        return error
    finally:
        server.responder = original
    raise AssertionError(f"{classifier.spec} returned {response!r} for {fault!r} instead of raising")


def check_wire_faults(context: ConformanceContext, server: Any) -> None:
    """Script ``server`` with faults, run the tiny benchmark against it, and check each record; restore it after."""
    answer = answer_first_candidate(context)
    original = server.responder
    fast = {**context.options, "max_attempts": 2}
    seen: set[str] = set()
    lock = threading.Lock()

    def once(fault: Any) -> Callable:
        def respond(request):
            key = hashlib.sha256(repr(request.body).encode()).hexdigest()
            with lock:
                first = key not in seen
                seen.add(key)
            return fault if first else answer(request)
        return respond

    scenarios = [
        ("wire-permanent", Fault.unauthorized, {"backend_error"}, 1),
        ("wire-transient", once(Fault.server_error(503)), None, 2),
        ("wire-malformed", lambda request: Fault.malformed(), {"backend_error"}, None),
        ("wire-refusal", lambda request: Answer(refusal="I'm sorry, I can't help with that."), {"refused", "unparseable"}, 1),
    ]
    try:
        for name, responder, errors, attempts in scenarios:
            check = Checker(context.report, name)
            server.responder = responder
            before = len(server.requests)
            records = run_or_fail(check, context, context.classifier, fast, limit=1)
            check.expect(len(server.requests) > before, "the classifier sent nothing to the server (check base_url)")
            for record in records:
                if errors is None:
                    check.expect(record.error not in ("backend_error", "timeout"), f"not retried: {record.error_detail}")
                else:
                    check.expect(record.error in errors, f"recorded {record.error!r}, expected one of {sorted(errors)}")
                if attempts is not None:
                    check.expect(record.attempts == attempts, f"attempts {record.attempts}, expected {attempts}")
            if errors is not None:
                check_never_scored(check, records)
            check.done(f"{len(records)} records")
    finally:
        server.responder = original
