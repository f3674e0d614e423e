"""Several OpenAI-compatible servers of one model (``base_url`` listing replicas), and which one a request goes to.

A replica is one server of the model, say one vLLM process per GPU. `split_base_urls` reads the
option or ``OPENAI_BASE_URL`` (a comma-separated string; a config file may give a list, which the
options join). `ReplicaPool` picks the replica of each request:

- the one with the fewest requests in flight, ties taken in turn (round robin);
- a replica whose request failed transiently (connection refused or reset, 5xx, 429: the backend's
  own classification; or no answer within the request timeout) *cools down*: no new request goes to it for `FIRST_COOLDOWN_S`, doubling with
  each further failure up to `MAX_COOLDOWN_S` (or the server's Retry-After when longer, within that
  cap), back to zero on its next success;
- when every replica is cooling, the one whose cooling began longest ago is tried.

The pool only steers: the retry of a failed request is the core's (`harness.run.dispatch`), and it
lands on another replica because the failed one is cooling. Outcomes of requests sent before a
replica's state last changed (its cooling began, or a success ended it) are old news and change
nothing: eight requests in flight on a replica that dies fail together, and count as one failure,
not eight doublings.

The pool is plain state, used from the event loop's thread only (no lock); the SDK clients that
reach each replica belong to the classifier (`harness_openai.classifier`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from harness.backend_kit import public_base_url
from harness.errors import HarnessError

#: Seconds a replica cools down after its first transient failure; doubled by each further one.
FIRST_COOLDOWN_S = 1.0
#: The longest cooldown, whatever the failures or the Retry-After.
MAX_COOLDOWN_S = 30.0


def split_base_urls(text: str | None, source: str) -> list[str]:
    """The base URLs of a comma-separated ``text`` (stripped), in order; ``source`` names where it came from.

    An empty entry (``a,,b``, a trailing comma) or the same server twice is a `HarnessError`: either
    is a slip, and a silently dropped or doubled replica would skew the load.
    """
    if text is None or not text.strip():
        return []
    urls = [part.strip() for part in text.split(",")]
    if any(not url for url in urls):
        raise HarnessError(f"{source}: an empty base URL in {_public_list(urls)!r}; separate replicas' URLs by single commas")
    seen: dict[str, str] = {}
    for url in urls:
        name = public_base_url(url)
        if name in seen:
            raise HarnessError(f"{source}: the replica {name} is listed twice")
        seen[name] = url
    return urls


def _public_list(urls: list[str]) -> str:
    return ",".join(public_base_url(url) if url else "" for url in urls)


def replica_set_name(urls: list[str]) -> str:
    """The replicas as one endpoint names them: public URLs, sorted, comma-separated (order-free, one key)."""
    return ",".join(sorted(public_base_url(url) for url in urls))


@dataclass
class Replica:
    """One server of the model and what the pool knows about it."""

    index: int
    url: str  # as configured, credentials included: what the SDK client is given
    name: str  # `public_base_url(url)`: what records and messages show
    in_flight: int = 0
    cooldown_s: float = 0.0  # length of the current (or last) cooling; 0: healthy
    cooling_since: float | None = None  # when the current cooling began; None: not cooling
    cooling_until: float = 0.0
    changed_at: float = float("-inf")  # when the cooling last began or ended: older requests' outcomes are stale

    def is_cooling(self, now: float) -> bool:
        return self.cooling_since is not None and now < self.cooling_until


@dataclass(frozen=True)
class Ticket:
    """One request sent to a replica: given back to `ReplicaPool.finished` with its outcome."""

    replica: Replica
    sent_at: float


class ReplicaPool:
    """Chooses a replica per request and keeps each one's load and cooldown (see the module docstring)."""

    def __init__(self, urls: list[str], *, clock: Callable[[], float] = time.monotonic,
                 first_cooldown_s: float = FIRST_COOLDOWN_S, max_cooldown_s: float = MAX_COOLDOWN_S):
        if not urls:
            raise ValueError("a replica pool needs at least one base URL")
        self.replicas = [Replica(i, url, public_base_url(url)) for i, url in enumerate(urls)]
        self._clock = clock
        self.first_cooldown_s = first_cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._turn = 0  # where the round robin among equally loaded replicas starts next

    def choose(self) -> Ticket:
        """The replica for the next request, counted as in flight until `finished`."""
        now = self._clock()
        ready = [r for r in self.replicas if not r.is_cooling(now)]
        if ready:
            fewest = min(r.in_flight for r in ready)
            count = len(self.replicas)
            # The first equally least loaded replica at or after the turn, so ties rotate.
            chosen = min((r for r in ready if r.in_flight == fewest), key=lambda r: (r.index - self._turn) % count)
            self._turn = (chosen.index + 1) % count
        else:
            chosen = min(self.replicas, key=lambda r: r.cooling_since)
        chosen.in_flight += 1
        return Ticket(chosen, now)

    def elapsed(self, ticket: Ticket) -> float:
        """Seconds since ``ticket``'s request was sent."""
        return self._clock() - ticket.sent_at

    def finished(self, ticket: Ticket, *, failed: bool = False, ok: bool = False,
                 retry_after_s: float | None = None) -> None:
        """A request ended: ``ok`` (an answer), ``failed`` (transiently: the replica cools down), or neither
        (a permanent error or a cancellation, which says nothing about the replica's health)."""
        replica = ticket.replica
        replica.in_flight -= 1
        if ticket.sent_at < replica.changed_at:
            return  # sent before the replica's state last changed: already accounted for
        now = self._clock()
        if ok and replica.cooling_since is not None:
            replica.cooldown_s, replica.cooling_since, replica.cooling_until = 0.0, None, 0.0
            replica.changed_at = now
        elif failed:
            grown = replica.cooldown_s * 2 if replica.cooldown_s else self.first_cooldown_s
            asked = min(retry_after_s, self.max_cooldown_s) if retry_after_s else 0.0
            replica.cooldown_s = max(min(grown, self.max_cooldown_s), asked)
            replica.cooling_since, replica.cooling_until = now, now + replica.cooldown_s
            replica.changed_at = now
