"""The protocol every long job speaks: a progress callback and a cancel token.

A job calls ``tracker.advance(...)`` after each unit of work and
``token.raise_if_cancelled()`` between units; the CLI draws a progress line from the
``Progress`` it receives, the console posts it to the screen, and tests inject a clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ParqctlError


class JobCancelled(ParqctlError):
    """A job stopped at a safe point because it was asked to; its work so far is kept."""

    exit_code = 130


class CancelToken:
    """Set from any thread (a signal handler, the console's cancel button); read by the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, resume_hint: str = "run the same command again to resume") -> None:
        if self._event.is_set():
            raise JobCancelled("cancelled", resume_hint)


@dataclass(frozen=True)
class Progress:
    job: str
    done: int
    total: int
    unit: str
    elapsed_s: float
    rows: int = 0  # secondary measure, e.g. rows migrated
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def rate(self) -> float:
        """Units per second."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.done == 0 or self.elapsed_s <= 0:
            return None
        return (self.total - self.done) / self.rate


ProgressCallback = Callable[[Progress], None]


def ignore_progress(progress: Progress) -> None:
    """The callback for callers that do not show progress."""


class ProgressTracker:
    """Counts a job's units and reports them; ``clock`` is injectable for tests."""

    def __init__(
        self,
        job: str,
        total: int,
        unit: str,
        callback: ProgressCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job, self.total, self.unit = job, total, unit
        self.callback = callback or ignore_progress
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.rows = 0

    def snapshot(self, message: str = "") -> Progress:
        return Progress(
            self.job,
            self.done,
            self.total,
            self.unit,
            self.clock() - self.started,
            self.rows,
            message,
        )

    def advance(self, units: int = 1, rows: int = 0, message: str = "") -> Progress:
        self.done += units
        self.rows += rows
        progress = self.snapshot(message)
        self.callback(progress)
        return progress
