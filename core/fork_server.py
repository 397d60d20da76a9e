"""Starting multiprocessing's fork server (and its resource tracker) safely, once.

Every process pool of parqctl that cannot fork directly (the console has threads) gets
its processes from this one server, so how it starts matters to all of them:

- They are handed ``sys.stderr``'s descriptor when they start; an application that
  replaced ``sys.stderr`` with an object without one (Textual does, to keep the screen
  clean) would make that fail: the real stderr is lent for the moment.
- They start with SIGHUP blocked (a signal mask survives fork and exec). When an SSH
  connection drops, the login shell sends SIGHUP to the whole job; the server and the
  workers it forks must outlive it, or a migration's workers die before the parent has
  stopped it at a safe point. They still die with the parent: the server exits when its
  parent does, and workers ask the kernel to kill them when the server goes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import signal
import sys
import threading
from collections.abc import Iterator

_lock = threading.Lock()


def context(preload: list[str] | None = None) -> multiprocessing.context.BaseContext:
    """The fork-server context, its server running. ``preload``: modules the server
    imports once for all its children; it takes effect only if the server is not running
    yet (there is one per process)."""
    ctx = multiprocessing.get_context("forkserver")
    with _lock:
        if preload is not None:
            ctx.set_forkserver_preload(preload)
        with _real_stderr(), _hangup_blocked():
            # Both return at once when their process is running (and restart a dead one).
            multiprocessing.resource_tracker.ensure_running()
            multiprocessing.forkserver.ensure_running()
    return ctx


@contextlib.contextmanager
def _real_stderr() -> Iterator[None]:
    try:
        usable = sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        usable = True  # multiprocessing skips a stream without a descriptor
    if usable or sys.__stderr__ is None:
        yield
        return
    replaced, sys.stderr = sys.stderr, sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = replaced


@contextlib.contextmanager
def _hangup_blocked() -> Iterator[None]:
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
