"""A progress line on stderr for long CLI jobs; silent (or a log line a step) when stderr
is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from core.jobs import Progress, ProgressCallback, ignore_progress


def progress_line(progress: Progress, width: int = 30) -> str:
    filled = round(width * progress.fraction)
    eta = f"ETA {progress.eta_s:.0f}s" if progress.eta_s is not None else "ETA -"
    rows = f", {progress.rows_per_s:,.0f} rows/s" if progress.rows else ""
    return (
        f"{progress.job} [{'#' * filled}{'.' * (width - filled)}] "
        f"{progress.done:,}/{progress.total:,} {progress.unit}{rows}, "
        f"{progress.elapsed_s:.0f}s elapsed, {eta}"
    )


@contextlib.contextmanager
def stderr_progress(
    text: Callable[..., str] = progress_line, *, log_when_piped: bool = False
) -> Iterator[ProgressCallback]:
    """Yield a callback that redraws one line on stderr, at most 10 times a second; when
    stderr is not a terminal, nothing, or (``log_when_piped``) a line per step done, for
    logs. ``text(progress, width=...)`` makes the line (width 0: no bar)."""
    if not sys.stderr.isatty():
        if not log_when_piped:
            yield ignore_progress
            return
        shown = 0

        def log(progress: Progress) -> None:
            nonlocal shown
            if progress.done > shown:
                shown = progress.done
                what = f" {progress.message}" if progress.message else ""
                print(f"parqctl: {text(progress, width=0)}:{what}", file=sys.stderr, flush=True)

        yield log
        return
    last_draw = 0.0

    def draw(progress: Progress) -> None:
        nonlocal last_draw
        now = time.monotonic()
        if now - last_draw < 0.1 and progress.done < progress.total:
            return
        last_draw = now
        sys.stderr.write("\r" + text(progress) + " ")
        sys.stderr.flush()

    try:
        yield draw
    finally:
        sys.stderr.write("\n")
        sys.stderr.flush()
