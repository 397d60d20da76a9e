"""Starting multiprocessing's fork server (and its resource tracker) safely, once.

Every process pool of parqctl that cannot fork directly (the console has threads) gets
its processes from this one server, so how it starts matters to all of them:

- They are handed ``sys.stderr``'s descriptor when they start; an application that
  replaced ``sys.stderr`` with an object without one (Textual does, to keep the screen
  clean) would make that fail: the real stderr is lent for the moment.
- They start with SIGHUP blocked (a signal mask survives fork and exec). When an SSH
  connection drops, the login shell sends SIGHUP to the whole job; the server and the
  workers it forks must outlive it, or a migration's workers die before the parent has
  stopped it at a safe point.
- They die with the parent, even one killed with SIGKILL. multiprocessing's server exits
  only once every process holding its "alive" pipe has gone, and the workers it forked
  hold it too (while they wait for the parent that will never send them work): left to
  itself, the server, its workers and the resource tracker would live on, re-parented to
  PID 1. So the server asks the kernel for a signal when its parent goes
  (PR_SET_PDEATHSIG) and exits on it; its children ask for SIGKILL when the server goes
  (core.migration.pool, tui.engine_process); and the resource tracker exits when the
  last of them has closed its pipe. The signal also comes when the *thread* that
  started the server ends (the console starts it from worker threads), so the server
  checks that its parent process is really gone before it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1
# What the kernel sends the server when its parent (thread) ends: not SIGHUP (blocked in
# the server), not SIGTERM (an operator's `kill` must still stop it at once).
PARENT_GONE_SIGNAL = signal.SIGUSR1

_lock = threading.Lock()


def context(preload: list[str] | None = None) -> multiprocessing.context.BaseContext:
    """The fork-server context, its server running. ``preload``: modules the server
    imports once for all its children; it takes effect only if the server is not running
    yet (there is one per process). This module is always imported first: importing it is
    what ties the server's life to its parent's (see the module docstring)."""
    ctx = multiprocessing.get_context("forkserver")
    with _lock:
        modules = preload if preload is not None else _current_preload()
        ctx.set_forkserver_preload([__name__, *(m for m in modules if m != __name__)])
        with _real_stderr(), _hangup_blocked():
            # Both return at once when their process is running (and restart a dead one).
            multiprocessing.resource_tracker.ensure_running()
            multiprocessing.forkserver.ensure_running()
    return ctx


def server_pid() -> int | None:
    """The pid of this process's fork server, if it started one (its children's parent)."""
    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)


def die_with_parent(parent: int | None, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent ends; if ``parent``
    (the pid it was forked from) is gone already, before the request took effect, exit
    now. Linux only; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(sig))
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _current_preload() -> list[str]:
    modules = getattr(multiprocessing.forkserver._forkserver, "_preload_modules", None)
    return ["__main__"] if modules is None else list(modules)


def _imported_by_fork_server(frame: FrameType | None) -> bool:
    """Whether this import runs in multiprocessing's fork server, as it preloads modules."""
    server_main = multiprocessing.forkserver.main.__code__
    while frame is not None:
        if frame.f_code is server_main:
            return True
        frame = frame.f_back
    return False


def _guard_server() -> None:
    """In the fork server: exit when the process that started it is gone."""
    parent, server = os.getppid(), os.getpid()

    def on_parent_gone(signum: int, frame: Any) -> None:
        if os.getpid() != server:  # a child of the server, which inherited the handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        # Also sent when only the thread that started the server ended: the parent
        # process (getppid names a process, never a thread) may well still be there.
        if os.getppid() != parent:
            os._exit(0)  # the children the server forked get SIGKILL from the kernel

    signal.signal(PARENT_GONE_SIGNAL, on_parent_gone)
    die_with_parent(parent, PARENT_GONE_SIGNAL)


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


if _imported_by_fork_server(sys._getframe()):
    # An error here would stop the server before it serves: it runs unguarded instead.
    with contextlib.suppress(Exception):
        _guard_server()


def may_start_workers() -> bool:
    """Whether this process may start a pool of worker processes: not when it is itself a
    daemonic worker (the console runs health and integrity in one), which multiprocessing
    forbids to have children; such a process does the work in threads instead."""
    return not multiprocessing.current_process().daemon
