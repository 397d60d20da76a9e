"""How fast parqctl asks Yahoo: a token bucket, and exponential backoff with jitter when
Yahoo says "too many requests". Both run on an injected clock, so tests never sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from core.ingest.settings import IngestSettings
from core.ingest.yahoo import YahooRateLimited
from core.jobs import CancelToken

T = TypeVar("T")
_SLEEP_SLICE_S = 0.2  # a sleep wakes this often to see whether it was cancelled


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock; a sleep ends early once ``token`` is cancelled."""

    def __init__(self, token: CancelToken | None = None) -> None:
        self.token = token

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.token is not None and self.token.cancelled:
                return
            time.sleep(min(_SLEEP_SLICE_S, left))


class RateLimitExhausted(Exception):
    """Still rate limited after the last attempt."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason, self.attempts = reason, attempts


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; ``take`` waits for one."""

    def __init__(self, rate: float, capacity: int, clock: Clock) -> None:
        self.rate, self.capacity, self.clock = rate, float(capacity), clock
        self.tokens = float(capacity)
        self.stamp = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> float:
        """Take a token, sleeping until there is one; returns the seconds waited."""
        self._refill()
        waited = 0.0
        if self.tokens < 1:
            waited = (1 - self.tokens) / self.rate
            self.clock.sleep(waited)
            self._refill()
        self.tokens -= 1
        return waited


class Pacer:
    """Every request goes through ``call``: a token first, then the request; on "too many
    requests", a wait of ``backoff_seconds * 2**(attempt-1)`` (at most
    ``max_backoff_seconds``), jittered to between half and all of it, and another try, up
    to ``max_attempts``. ``on_wait`` hears each wait as one line."""

    def __init__(
        self,
        settings: IngestSettings,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        token: CancelToken | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.settings, self.clock = settings, clock
        self.rng = rng or random.Random()
        self.token = token
        self.on_wait = on_wait or (lambda line: None)
        self.bucket = TokenBucket(settings.requests_per_minute / 60.0, settings.burst, clock)
        self.requests = 0  # requests sent, retries included
        self.waited_s = 0.0  # time spent in backoff

    def backoff(self, attempt: int) -> float:
        """The wait after the ``attempt``-th try was rate limited."""
        s = self.settings
        full = min(s.max_backoff_seconds, s.backoff_seconds * 2 ** (attempt - 1))
        return full / 2 + self.rng.uniform(0, full / 2)

    def _check(self) -> None:
        if self.token is not None:
            self.token.raise_if_cancelled()

    def call(self, request: Callable[[], T]) -> T:
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            self._check()
            self.bucket.take()
            self._check()
            self.requests += 1
            try:
                return request()
            except YahooRateLimited as exc:
                if attempt == attempts:
                    raise RateLimitExhausted(exc.reason, attempts) from None
                delay = self.backoff(attempt)
                self.on_wait(
                    f"rate limited; retrying in {delay:.0f} s (attempt {attempt + 1}/{attempts})"
                )
                self.waited_s += delay
                self.clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
