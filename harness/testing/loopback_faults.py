"""A loopback responder that fails a share of requests the way hosted APIs do, seeded and repeatable.

`fault_mix` wraps an answer (text, or a callable of the request) for a
`harness.testing.loopback.LoopbackServer`: each request fails with probability
``share``, with one of ``faults`` (by default 429 with and without
Retry-After, 500, 503, 529 and a dropped connection, equally likely).

Whether an arrival fails, and how, depends only on the seed, the request
(its path and JSON body) and how many times that same request arrived before,
never on the order in which concurrent requests happen to arrive. So a run
against it meets the same faults every time, and a retry of a request draws
afresh (as a real server's next answer would).

`first_listed_class` is an answer for such a server: the first candidate
class a prompt lists (``1. NAME: ...``), so the records of a run against it
are answered, whatever the benchmark.

Part of the test kit (tests and benchmarks/faults.py); the runtime never imports it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from typing import Callable, Sequence

from harness.testing.loopback_script import Fault, Outcome, Request, Responder

#: The faults of `fault_mix`, equally likely: four say "busy" (rate limiting and overload), two are broken replies.
DEFAULT_FAULTS: tuple[Fault, ...] = (
    Fault.rate_limited(retry_after=1),
    Fault.rate_limited(),
    Fault.server_error(500),
    Fault.server_error(503, "Service unavailable"),
    Fault.overloaded(),
    Fault.reset(),
)

_NUMBERED = re.compile(r"^\s*1\.\s+(.+?)\s*(?::|$)", re.MULTILINE)


def fault_mix(answer: Outcome | Callable[[Request], Outcome], *, share: float = 0.5, seed: int = 0,
              faults: Sequence[Outcome] = DEFAULT_FAULTS) -> Responder:
    """A responder failing about ``share`` of all arrivals with one of ``faults``, else answering ``answer``."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    if not faults:
        raise ValueError("fault_mix needs at least one fault")
    arrivals: Counter[str] = Counter()
    lock = threading.Lock()

    def respond(request: Request) -> Outcome:
        body = json.dumps(request.body, sort_keys=True, default=str)
        identity = hashlib.sha256(f"{request.path}\n{body}".encode()).hexdigest()
        with lock:
            arrivals[identity] += 1
            nth = arrivals[identity]
        draw = hashlib.sha256(f"{seed}:{identity}:{nth}".encode()).digest()
        if int.from_bytes(draw[:8], "big") / 2**64 < share:
            return faults[int.from_bytes(draw[8:16], "big") % len(faults)]
        return answer(request) if callable(answer) else answer

    return respond


def first_listed_class(request: Request) -> str:
    """The first class a prompt numbers (``1. NAME`` or ``1. NAME: description``); "good" when it lists none."""
    for text in request.texts():
        found = _NUMBERED.search(text)
        if found:
            return found.group(1)
    return "good"
