"""The worker processes of the migration: started safely, dying with their parent.

Processes, not threads: per file the work is many small Python-level steps around short
pyarrow calls, which threads would serialise on the GIL. The parent (lock, plan, renames)
never imports pyarrow, so while it has a single OS thread it forks its workers (cheap);
otherwise (the console's worker thread) it uses a fork server.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from core import fork_server
from core.jobs import CancelToken


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _context() -> multiprocessing.context.BaseContext:
    if _single_threaded():
        return multiprocessing.get_context("fork")
    return fork_server.context()


def _init_worker(parent: int | None) -> None:
    # Ctrl-C and a terminal's hangup reach the whole process group: only the parent
    # decides what they mean (it stops at a safe point, then its workers go with it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A parent killed with SIGKILL cannot stop its workers: the kernel does. (A fork
    # server's workers: when the server goes, which goes with its own parent.) Exits now
    # if the parent died before the request took effect.
    fork_server.die_with_parent(parent, signal.SIGKILL)
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _WithoutPandas())
    import pyarrow as pa
    import pyarrow.compute as pc

    # One process per core already: pyarrow's own thread pools would only contend.
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    # Load the compute kernels now, while the parent is still listing the work.
    pc.equal(pa.array([0]), pa.array([0]))
    # The modules just imported live as long as the worker: the cyclic collector, which
    # runs often over the many small objects each file's work creates, need not walk them.
    gc.freeze()


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail in a worker, as if pandas were not installed.

    pyarrow imports pandas on its first conversion of Python or NumPy values, only to ask
    whether they are pandas objects. The workers never use pandas, and importing it costs
    more CPU than importing pyarrow, in every worker of every step.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"no pandas in migration workers ({name})", name=name)
        return None


@contextlib.contextmanager
def start(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` processes; with one worker, None: jobs run in this process."""
    if workers <= 1:
        yield None
        return
    context = _context()
    # A forked worker's parent is this process; a fork server's child's is the server.
    parent = os.getpid() if context.get_start_method() == "fork" else fork_server.server_pid()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(parent,)
    ) as executor:
        yield executor


def run_jobs(
    pool: ProcessPoolExecutor | None,
    fn: Callable[[Any], Any],
    jobs: Iterable[Any],
    token: CancelToken | None = None,
    in_flight: int = 8,
) -> Iterator[Any]:
    """Results of ``fn(job)`` in completion order, with at most ``in_flight`` jobs queued.

    Once ``token`` is cancelled no new job starts; jobs already running finish and their
    results are still yielded. A generator closed early cancels the jobs not started.
    """
    if pool is None:
        for job in jobs:
            if token and token.cancelled:
                return
            yield fn(job)
        return
    pending: set[Future] = set()
    queue = iter(jobs)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < in_flight and not (token and token.cancelled):
                job = next(queue, None)
                if job is None:
                    exhausted = True
                    break
                pending.add(pool.submit(fn, job))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            if token and token.cancelled:
                for future in list(pending):
                    if future.cancel():
                        pending.discard(future)
            for future in done:
                if not future.cancelled():
                    yield future.result()
    finally:
        for future in pending:
            future.cancel()
