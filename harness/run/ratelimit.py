"""Requests-per-minute and tokens-per-minute limits, as providers count them.

A sliding one-minute window: a request starts only when the requests, and the
tokens, started in the last 60 seconds leave room for it. Unlike a token bucket
with a full minute of burst, this never exceeds the limit over any 60-second
window, while still letting a run go as fast as the limit allows.

Tokens are known only after a call; a request is charged an estimate when it
starts (the last request's actual count) and corrected when it finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable

WINDOW_S = 60.0


class RateLimiter:
    """Waits until a request fits under ``requests_per_minute`` and ``tokens_per_minute``."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = WINDOW_S,
    ):
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
