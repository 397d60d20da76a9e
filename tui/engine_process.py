"""Engine jobs in a child process, so the console's event loop never waits for the GIL.

A core job's Python-level steps (decoding tickers.json, building thousands of records and
findings, the garbage collections they trigger) hold the GIL for tens of milliseconds at
a time; in a thread of the console they stall its event loop. Here the job runs in a
process of its own, forked from a server that has the engine imported already
(multiprocessing's fork server), and the console receives only the job's progress and its
result:

    report = run_in_child(check, Workspace(root), progress=on_progress, cancel=token)

The job speaks core.jobs' protocol. ``progress`` receives its Progress reports (at most
one every PROGRESS_EVERY_S); ``cancel`` is a CancelToken: once it is set, the child is
asked to stop at its next safe point, as it would in a thread (its work so far is kept),
and run_in_child raises JobCancelled. A child still running CANCEL_GRACE_S later is
terminated (SIGTERM unwinds it, removing its temp files), then killed. A ParqctlError
raised by the job is raised here with its message and hint; any other failure as
EngineJobFailed. A ``clock`` keyword (tests fix the time) is read once, here.

The child sees the console's environment (time zone) and host name, which tests fix; it
runs niced (CHILD_NICENESS), so that on a busy machine the console's event loop gets a
core first; its output goes nowhere (it would be drawn over the console's screen); and it
dies with the console: its parent, the fork server, exits when the console does, and the
kernel then kills the child (PR_SET_PDEATHSIG). This module imports no UI: the child
imports it.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from core import fork_server
from core.errors import ParqctlError
from core.jobs import CancelToken, JobCancelled, Progress, ProgressCallback

T = TypeVar("T")

# What the fork server imports once, so that a job's child starts with the engine loaded
# (if this module starts the server: there is one per process, shared with other pools).
PRELOAD = [
    "tui.engine_process",
    "core.health",
    "core.availability.gap_watch",
    "core.availability.gaps",
    "core.integrity.check",
    "core.availability.saved_gaps",
    "polars",
]
PROGRESS_EVERY_S = 0.05
CHILD_NICENESS = 10
CANCEL_GRACE_S = 5.0  # for the job to reach a safe point and save its work
TERMINATE_GRACE_S = 1.0
FORKED_TIMEOUT_S = 60
_POLL_S = 0.05

_running_lock = threading.Lock()
_running: set[CancelToken] = set()


class EngineJobFailed(ParqctlError):
    """The job failed in its child process with an error that is not a ParqctlError."""


def start_server() -> multiprocessing.context.BaseContext:
    """The fork server's context, the server started if it is not running (core.fork_server):
    it imports the engine (a second or so) while the caller goes on."""
    return fork_server.context(PRELOAD)


@dataclass(frozen=True)
class _FixedClock:
    """The time a caller's clock showed when the job started (picklable, unlike a lambda)."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class _Surroundings:
    """What a job may read from its process besides its arguments."""

    environ: dict[str, str]
    host: str

    @classmethod
    def here(cls) -> _Surroundings:
        return cls(dict(os.environ), socket.gethostname())

    def apply(self) -> None:
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
            time.tzset()
        if socket.gethostname() != self.host:
            # The run lock is judged by host name (core.safety.run_lock): the same one as the console.
            socket.gethostname = lambda: self.host


def run_in_child(
    job: Callable[..., T],
    *args: Any,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    **kwargs: Any,
) -> T:
    """``job(*args, **kwargs)`` in a child process; see the module docstring.

    ``job`` and the arguments are pickled (a module-level function, plain values);
    ``progress`` and ``cancel`` are passed on to the job only when given here.
    """
    if callable(kwargs.get("clock")):
        kwargs["clock"] = _FixedClock(kwargs["clock"]())
    stop = cancel or CancelToken()  # cancel_all() stops jobs that take no token, too
    context = start_server()
    here, there = context.Pipe(duplex=True)
    process = context.Process(
        target=_child_main,
        args=(there, job, args, kwargs, progress is not None, cancel is not None),
        kwargs={"surroundings": _Surroundings.here(), "parent": fork_server.server_pid()},
        name=f"parqctl-{getattr(job, '__name__', 'job')}",
        daemon=True,  # terminated, not waited for, if the console exits past its clean-up
    )
    with _running_lock:
        _running.add(stop)
    try:
        process.start()
        there.close()
        return _relay(here, process, progress, stop)
    finally:
        with _running_lock:
            _running.discard(stop)
        if process.exitcode is None and process.pid is not None:  # left early: stop it
            with contextlib.suppress(OSError):
                here.send("cancel")
            _stop(process)
        here.close()
        process.close()


class ForkedJob:
    """A job already running in a copy of this process (see ``fork_job``)."""

    def __init__(self, pid: int, reading: int) -> None:
        self.pid, self._reading = pid, reading

    def result(self) -> Any:
        """The job's result (blocks until it is there), or its ParqctlError raised here."""
        with os.fdopen(self._reading, "rb") as pipe:
            data = pipe.read()
        os.waitpid(self.pid, 0)
        if not data:
            raise EngineJobFailed("the forked job ended without a result", "run it again")
        kind, payload = pickle.loads(data)
        if kind == "error":
            raise _rebuilt(*payload)
        if kind == "failed":
            raise EngineJobFailed(f"the forked job failed: {payload}", "run it again")
        return payload

    def abandon(self) -> None:
        """Kill the job and forget it (it writes nothing but its result)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self._reading)


def fork_job(job: Callable[..., Any], *args: Any, **kwargs: Any) -> ForkedJob | None:
    """``job(*args, **kwargs)`` started now in a fork of this process, to run on another
    core while this one goes on; None when this process has threads (forking it would
    be unsafe: a lock another thread holds stays locked in the copy).

    For a short job that writes nothing, such as the first health report while the
    console starts: its result is read once, with ``ForkedJob.result``.
    """
    if not _single_threaded():
        return None
    reading, writing = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.close(writing)
        return ForkedJob(pid, reading)
    try:  # the copy: never returns into the caller's code
        os.close(reading)
        _quiet()
        fork_server.die_with_parent(parent)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(FORKED_TIMEOUT_S)  # a result nobody reads must not keep it forever
        try:
            message: tuple[str, Any] = ("result", job(*args, **kwargs))
        except ParqctlError as exc:
            message = ("error", (type(exc), exc.message, exc.hint))
        except Exception as exc:
            message = ("failed", "".join(traceback.format_exception_only(exc)).strip())
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        os._exit(0)


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def cancel_all() -> None:
    """Ask every running child to stop (the console does as it exits)."""
    with _running_lock:
        running = list(_running)
    for token in running:
        token.cancel()


def _relay(
    here: multiprocessing.connection.Connection,
    process: multiprocessing.process.BaseProcess,
    progress: ProgressCallback | None,
    cancel: CancelToken,
) -> Any:
    deadline: float | None = None
    while True:
        if here.poll(_POLL_S):
            try:
                with _no_collection():
                    kind, payload = here.recv()
            except EOFError:
                break
            if kind == "progress" and progress is not None:
                progress(payload)
            elif kind == "result":
                return payload
            elif kind == "error":
                raise _rebuilt(*payload)
            elif kind == "failed":
                raise EngineJobFailed(f"the {process.name} process failed: {payload}")
        elif not process.is_alive():
            if here.poll(0):  # its last message arrived as it exited
                continue
            break
        if cancel.cancelled and deadline is None:
            with contextlib.suppress(OSError):
                here.send("cancel")
            deadline = time.monotonic() + CANCEL_GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            _stop(process, grace=0.0)
            raise JobCancelled("cancelled", "the job did not stop in time and was terminated")
    if cancel.cancelled:
        raise JobCancelled("cancelled", "run it again")
    process.join(TERMINATE_GRACE_S)
    raise EngineJobFailed(
        f"the {process.name} process ended without a result (exit code {process.exitcode})",
        "run it again; if it keeps failing, run the same command from the CLI to see why",
    )


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection while a result is unpickled: its objects all stay alive, and
    a full pass among them would hold the GIL for tens of milliseconds more."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stop(process: multiprocessing.process.BaseProcess, grace: float | None = None) -> None:
    """Wait ``grace`` (default CANCEL_GRACE_S) for the child to end, then terminate it,
    then kill it."""
    process.join(CANCEL_GRACE_S if grace is None else grace)
    if process.exitcode is None:
        process.terminate()
        process.join(TERMINATE_GRACE_S)
    if process.exitcode is None:
        process.kill()
        process.join()


def _rebuilt(kind: type[ParqctlError], message: str, hint: str) -> ParqctlError:
    try:
        return kind(message, hint)
    except TypeError:  # a subclass with a constructor of its own
        return ParqctlError(message, hint)


# --- in the child -------------------------------------------------------------------------


def _child_main(
    there: multiprocessing.connection.Connection,
    job: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    wants_progress: bool,
    wants_cancel: bool,
    *,
    surroundings: _Surroundings,
    parent: int | None = None,
) -> None:
    # Its parent is the fork server, which exits when the console does (core.fork_server).
    fork_server.die_with_parent(parent)
    _quiet()
    # On a busy machine the console's event loop gets a core before its jobs do.
    os.nice(CHILD_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the console's to handle
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    surroundings.apply()
    token = CancelToken()
    sending = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with sending:
            there.send(message)

    threading.Thread(target=_listen, args=(there, token), daemon=True).start()
    if wants_progress:
        kwargs["progress"] = _Throttled(send)
    if wants_cancel:
        kwargs["cancel"] = token
    try:
        result = job(*args, **kwargs)
    except ParqctlError as exc:
        send(("error", (type(exc), exc.message, exc.hint)))
    except Exception as exc:
        send(("failed", "".join(traceback.format_exception_only(exc)).strip()))
    else:
        send(("result", result))


def _quiet() -> None:
    """Output to the console's terminal would be drawn over its screen: none goes there."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (1, 2):
        os.dup2(devnull, stream)
    os.close(devnull)


def _exit_on_terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: atomic writes remove their temp files


def _listen(there: multiprocessing.connection.Connection, token: CancelToken) -> None:
    """Cancel the job when the console asks, or when it is gone."""
    while True:
        try:
            message = there.recv()
        except (EOFError, OSError):
            token.cancel()
            return
        if message == "cancel":
            token.cancel()


class _Throttled:
    """Progress sent to the console at most every PROGRESS_EVERY_S, and the last one."""

    def __init__(self, send: Callable[[tuple[str, Any]], None]) -> None:
        self.send = send
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or progress.done >= progress.total:
            self.last = now
            self.send(("progress", progress))
