"""Ctrl-C and SIGTERM for long CLI jobs: the first asks the job to stop at its next safe
point (it checks a CancelToken), a second one aborts at once."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

from core.jobs import CancelToken


@contextlib.contextmanager
def cancellable(stopping: str) -> Iterator[CancelToken]:
    """``stopping`` says where the job stops, e.g. "after the request in progress"."""
    token = CancelToken()

    def on_signal(signum, frame) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print(f"\nparqctl: stopping {stopping} (again to abort)...", file=sys.stderr)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield token
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
