"""Calling a classifier: concurrency, per-request timeout, rate limits, retries, error kinds.

Backends only declare which errors are transient and which of those are rate limiting (429, 503,
529). Rate limiting is retried within ``rate_limit_budget_s`` from the first attempt (a busy server
says "later"); other transient errors until ``max_attempts`` attempts ended in one: at a failure
share q, a request is lost with probability q ** max_attempts (`loss_probability`; 10 attempts at
q = 1/4: one in a million). A failure becomes an error kind on the record, redacted, marked
transient (asked again on ``--resume``) or ``fatal`` (`harness.run.failfast`); never an answer.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from tenacity import AsyncRetrying, RetryError, retry_if_exception, wait_random_exponential

from harness.run.cache import ResponseCache, cache_keyer
from harness.classifiers import Classifier
from harness.errors import HarnessError
from harness.run.failfast import FailFast
from harness.run.redact import redact
from harness.types import KeyOnlyPrompt, Prompt, Response

MAX_DETAIL_CHARS = 500
#: The longest Retry-After the harness honours; a server asking for more gets this.
MAX_RETRY_AFTER_S = 300.0


def loss_probability(failure_share: float, max_attempts: int) -> float:
    """The chance that a request is lost when each attempt fails independently with ``failure_share``."""
    return failure_share ** max_attempts


@dataclass
class RetryBook:
    """One request's retries: which failures count against what, and why it stopped (see the module docstring)."""

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


WINDOW_S = 60.0


class RateLimiter:
    """Waits until a request fits under ``requests_per_minute`` and ``tokens_per_minute``, as providers count them.

    A sliding one-minute window: unlike a token bucket with a minute of burst, it never exceeds the limit
    over any 60 s. Tokens are known only after a call: a request is charged the last request's count when
    it starts, corrected by `settle` when it finishes.
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S):
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self.window_s = window_s
        self._starts: deque[float] = deque()
        self._tokens: deque[list[float]] = deque()  # [start time, tokens charged]
        self._lock = asyncio.Lock()
        self.last_tokens = 0.0

    @property
    def active(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def _forget_old(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= self.window_s:
            self._starts.popleft()
        while self._tokens and now - self._tokens[0][0] >= self.window_s:
            self._tokens.popleft()

    def _wait_needed(self, now: float, estimate: float) -> float:
        waits = [0.0]
        if self.requests_per_minute and len(self._starts) >= self.requests_per_minute:
            index = len(self._starts) - int(self.requests_per_minute)
            waits.append(self._starts[index] + self.window_s - now)
        if self.tokens_per_minute and self._tokens:
            used = sum(t for _, t in self._tokens)
            if used + estimate > self.tokens_per_minute:
                # Wait until enough of the oldest charges leave the window.
                excess = used + estimate - self.tokens_per_minute
                freed = 0.0
                for started, tokens in self._tokens:
                    freed += tokens
                    if freed >= excess:
                        waits.append(started + self.window_s - now)
                        break
        return max(waits)

    async def acquire(self) -> list[float] | None:
        """Wait for room; return the token charge to settle with `settle` (None when unlimited)."""
        if not self.active:
            return None
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = self._clock()
                self._forget_old(now)
                wait = self._wait_needed(now, self.last_tokens)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._starts.append(now)
            charge = [now, self.last_tokens]
            self._tokens.append(charge)
            return charge

    def settle(self, charge: list[float] | None, tokens_used: int | None) -> None:
        """Replace a request's estimated tokens with what it actually used."""
        if charge is None or tokens_used is None:
            return
        charge[1] = float(tokens_used)
        self.last_tokens = float(tokens_used)


@functools.cache  # once per process, so whatever garbage exists at that moment is kept at most once
def freeze_long_lived_objects() -> None:
    """Exclude the objects that exist now from the cyclic GC.

    When the first dispatcher is made, the heap holds what lives for the whole run (modules, plugins,
    SDKs, the data); the GC's full collections would walk it all again, stalling every request in flight.
    """
    gc.freeze()


@dataclass
class CallResult:
    """The outcome of one dispatched request, successful or not."""

    response: Response | None
    error: str | None  # "backend_error" | "timeout" | None
    detail: str | None
    attempts: int
    latency_s: float | None  # wall time of the successful attempt
    queued_s: float  # time spent waiting for a concurrency slot and the rate limit
    cached: bool = False  # answered from the response cache; latency and usage are the original call's
    transient: bool | None = None  # with an error: retries ran out or a timeout, so a resume asks again
    fatal: bool = False  # a permanent error saying no request of this model can succeed (harness/run/failfast.py)
    batch_id: str | None = None  # the provider batch that answered (harness/run/batch_mode.py); None: a live call


class Dispatcher:
    """Sends prompts to one classifier with bounded concurrency and retries."""

    def __init__(self, classifier: Classifier, *, cache: ResponseCache | None = None, wait_initial_s: float = 1.0,
                 wait_max_s: float = 60.0, failfast: FailFast | None = None):
        self.classifier = classifier
        #: Shared by a run's dispatchers: sees every call's outcome and refuses new requests once stopped.
        self.failfast = failfast
        self.options = classifier.options
        self.cache = cache if cache is not None and classifier.use_cache() else None
        self._keyed_options = None
        self._keyer = None
        # What answers (a server, a checkpoint): fixed when the classifier was made, so read once.
        self.endpoint = classifier.endpoint() if self.cache is not None else {}
        self.limiter = RateLimiter(self.options.requests_per_minute, self.options.tokens_per_minute)
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._backoff = wait_random_exponential(multiplier=wait_initial_s, max=wait_max_s)
        freeze_long_lived_objects()

    def _wait(self, retry_state) -> float:
        """Exponential backoff with jitter, or the server's Retry-After when it is longer (capped)."""
        backoff = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        asked = self.classifier.retry_after(error) if error is not None else None
        if asked is None:
            return backoff
        return max(backoff, min(float(asked), MAX_RETRY_AFTER_S))

    def cache_key(self, prompt: Prompt) -> str | None:
        """The response-cache key of ``prompt`` for this classifier and its endpoint; None when its answers are not cached."""
        if self.cache is None:
            return None
        options = self.classifier.answer_options()  # may change during a run (a kNN's support set does)
        if options != self._keyed_options:
            self._keyer = cache_keyer(self.classifier.plugin, self.classifier.model_id, options, endpoint=self.endpoint)
            self._keyed_options = options
        return self._keyer(prompt.request_hash)

    def is_cached(self, prompt: Prompt) -> bool:
        """Whether `call` would answer ``prompt`` from the cache, without asking the classifier."""
        key = self.cache_key(prompt)
        return key is not None and self.cache.contains(key)

    async def call(self, prompt: Prompt) -> CallResult:
        """Answer from the cache when allowed, else call the classifier (and cache a success)."""
        key = self.cache_key(prompt)
        if key is not None:
            hit = self.cache.get(key)  # a primary-key read: microseconds, cheaper than a thread hop
            if hit is not None:
                response, latency = hit
                return self._observed(CallResult(response, None, None, 0, latency, 0.0, cached=True))
        if isinstance(prompt, KeyOnlyPrompt):
            # Dispatched only after the cache was seen to hold its answer; here the cache lost it mid-run.
            raise HarnessError(f"the response cache no longer holds the answer to prompt {prompt.request_hash}; run again")
        queued_at = time.perf_counter()
        async with self._slots:
            if self.failfast is not None:
                self.failfast.check()  # the run stopped while this request waited for a slot: it is not sent
            result = await self._call_with_retries(prompt, queued_at)
        if key is not None and result.response is not None:
            await asyncio.to_thread(
                self.cache.put, key, self.classifier.plugin, self.classifier.model_id, result.response, result.latency_s,
                self.endpoint,
            )
        return self._observed(result)

    def _observed(self, result: CallResult) -> CallResult:
        if self.failfast is not None:
            self.failfast.observe(self.classifier.spec, result)
        return result

    async def _call_with_retries(self, prompt: Prompt, queued_at: float) -> CallResult:
        attempts = 0
        queued_s = 0.0
        latency: float | None = None
        book = RetryBook(self.options.max_attempts, self.options.rate_limit_budget_s)

        def stop(retry_state) -> bool:  # asked after each transient failure, once its next wait is known
            error = retry_state.outcome.exception()
            return book.should_stop(self._is_rate_limited(error), retry_state.seconds_since_start, retry_state.upcoming_sleep)

        retrying = AsyncRetrying(stop=stop, wait=self._wait, retry=retry_if_exception(self._is_transient), reraise=False)
        try:
            async for attempt in retrying:
                with attempt:
                    charge = await self.limiter.acquire()
                    if attempts == 0:
                        queued_s = time.perf_counter() - queued_at
                    attempts += 1
                    started = time.perf_counter()
                    async with asyncio.timeout(self.options.timeout_s):  # unlike wait_for, no extra task per call
                        response = await self.classifier.classify(prompt)
                    latency = time.perf_counter() - started
                    self.limiter.settle(charge, _total_tokens(response))
            return CallResult(response, None, None, attempts, latency, queued_s)
        except RetryError as exhausted:
            error = exhausted.last_attempt.exception()
            return self._failure(error, attempts, queued_s, gave_up=book.give_up_message(attempts))
        except Exception as error:  # a permanent error: recorded, never raised into the run
            return self._failure(error, attempts, queued_s, gave_up=None)

    def failure(self, error: BaseException, transient_note: str) -> CallResult:
        """The record fields of a request that failed once with ``error`` outside the retry loop (a batch's),
        classified as a live call's last error: ``transient_note`` starts the detail when it is transient."""
        return self._failure(error, 1, 0.0, gave_up=transient_note if self._is_transient(error) else None)

    def _is_transient(self, error: BaseException) -> bool:
        return isinstance(error, asyncio.TimeoutError) or self.classifier.should_retry(error)

    def _is_rate_limited(self, error: BaseException | None) -> bool:
        return error is not None and not isinstance(error, asyncio.TimeoutError) and self.classifier.is_rate_limited(error)

    def _failure(self, error: BaseException | None, attempts: int, queued_s: float, gave_up: str | None) -> CallResult:
        """The failed call's record fields; ``gave_up`` (the retry book's message) when transient errors ran out."""
        is_timeout = isinstance(error, asyncio.TimeoutError) or (error is not None and self.classifier.is_timeout(error))
        kind = "timeout" if is_timeout else "backend_error"
        if isinstance(error, asyncio.TimeoutError):
            message = f"no answer within {self.options.timeout_s:g} s"
        else:
            message = f"{type(error).__name__}: {error}"
        if gave_up is not None:
            message = f"{gave_up}; last: {message}"
        transient = gave_up is not None or is_timeout  # a timeout is the server's state, not the request's fault
        # A transient error is never fatal, whatever its status says. (An error that reaches here without
        # ``gave_up`` was not retried, so it is not transient: ``transient`` alone says so.)
        fatal = error is not None and not transient and self.classifier.is_fatal(error)
        return CallResult(None, kind, redact(message)[:MAX_DETAIL_CHARS], attempts, None, queued_s,
                          transient=transient, fatal=fatal)


def _total_tokens(response: Response) -> int | None:
    if response.tokens_in is None and response.tokens_out is None:
        return None
    return (response.tokens_in or 0) + (response.tokens_out or 0)
