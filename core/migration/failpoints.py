"""Named points in the migration where the crash tests kill (or stop) the process.

``PARQCTL_FAILPOINT=kill@N`` sends SIGKILL to this process at the N-th point reached,
``stop@N`` sends SIGSTOP; ``PARQCTL_FAILPOINT_TRACE=FILE`` appends every point reached to
FILE. Without these variables a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "PARQCTL_FAILPOINT"
TRACE_ENV = "PARQCTL_FAILPOINT_TRACE"
_ACTIONS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}
_reached = 0


def failpoint(name: str) -> None:
    spec, trace = os.environ.get(FAILPOINT_ENV), os.environ.get(TRACE_ENV)
    if not spec and not trace:
        return
    global _reached
    _reached += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(f"{_reached} {name}\n")
    action, _, at = (spec or "").partition("@")
    if action in _ACTIONS and at.isdigit() and int(at) == _reached:
        os.kill(os.getpid(), _ACTIONS[action])
