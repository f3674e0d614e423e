"""How long one request keeps trying: rate limiting against a time budget, other faults against a count.

The dispatcher (:mod:`harness.run.dispatch`) retries only errors the backend calls
transient (`Classifier.should_retry`). Of those:

- **rate limiting and overload** (429, 503, 529, with or without Retry-After;
  `Classifier.is_rate_limited`) are retried for as long as the request's
  ``rate_limit_budget_s`` allows (default 600 s), counted from its first
  attempt. A busy server is not a broken one: it says "later", and a count of
  four would give up on it after a few seconds of backoff. The request stops
  when the next wait would end past the budget.
- **other transient errors** (other 5xx, dropped connections, timeouts of one
  attempt, malformed 200 replies) are retried until ``max_attempts`` attempts
  have ended in one of them (default 10). Rate-limited attempts do not count.

Why 10: if a server fails a share ``q`` of requests that way, independently, a
request is lost with probability ``q ** max_attempts``
(`loss_probability`). At ``q = 1/4``, four attempts lose one request in 256
(0.39%: about one sample of a 300-call run); ten lose one in 1,048,576, so a
full MVTec-AD run with two models (about 2,500 calls) loses a sample with
probability 0.24%. Each attempt is still bounded by ``timeout_s``, so a
request that only ever hangs ends after ``max_attempts`` timeouts.

Between attempts the wait is exponential backoff with full jitter, or the
server's Retry-After when that is longer (capped by the dispatcher).
"""

from __future__ import annotations

from dataclasses import dataclass


def loss_probability(failure_share: float, max_attempts: int) -> float:
    """The chance that a request is lost when each attempt fails independently with ``failure_share``.

    >>> round(1 / loss_probability(0.25, 4))
    256
    >>> round(1 / loss_probability(0.25, 10))
    1048576
    """
    return failure_share ** max_attempts


@dataclass
class RetryBook:
    """One request's retries: which failures count against what, and why it stopped.

    `should_stop` is asked once after every transient failure (tenacity's stop
    callback, after the next wait is known) and keeps the counts.
    """

    max_attempts: int
    rate_limit_budget_s: float
    other_failures: int = 0
    rate_limited_failures: int = 0
    #: Seconds since the first attempt when the request stopped on a spent budget; None otherwise.
    budget_spent_after_s: float | None = None

    def should_stop(self, rate_limited: bool, elapsed_s: float, next_wait_s: float) -> bool:
        """True when a request must give up after this failure, ``elapsed_s`` after its first attempt began."""
        if rate_limited:
            self.rate_limited_failures += 1
            if elapsed_s + next_wait_s > self.rate_limit_budget_s:
                self.budget_spent_after_s = elapsed_s
                return True
            return False
        self.other_failures += 1
        return self.other_failures >= self.max_attempts

    def give_up_message(self, attempts: int) -> str:
        """The start of the record's error detail once the request gave up (the last error follows)."""
        if self.budget_spent_after_s is not None:
            return (
                f"gave up after {attempts} attempts: rate limited or overloaded for {self.budget_spent_after_s:.1f} s "
                f"({self.rate_limited_failures} such answers), and the next wait would pass "
                f"rate_limit_budget_s={self.rate_limit_budget_s:g}"
            )
        return f"gave up after {attempts} attempts"
