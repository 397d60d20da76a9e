"""A progress line on stderr for long CLI jobs; silent when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stderr_progress(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback that redraws one line at most 10 times a second."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    started = time.monotonic()
    last_draw = 0.0

    def draw(done: int, total: int) -> None:
        nonlocal last_draw
        now = time.monotonic()
        if now - last_draw < 0.1 and done < total:
            return
        last_draw = now
        elapsed = now - started
        eta = elapsed / done * (total - done) if done else 0.0
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}"
            f" {elapsed:.0f}s elapsed, ETA {eta:.0f}s "
        )
        sys.stderr.flush()

    try:
        yield draw
    finally:
        sys.stderr.write("\n")
        sys.stderr.flush()
