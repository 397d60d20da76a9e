"""Plain-text formatting shared by the CLI and the console."""

from __future__ import annotations

import json
from typing import Any

from core import run_lock


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def human_bytes(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def human_age(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``."""
    if seconds is None:
        return "unknown age"
    s = max(0, int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s % 60}s"
    return f"{s}s"


def lock_lines(status: run_lock.LockStatus) -> list[str]:
    """The run lock as the CLI prints it and the console shows it."""
    lines = [f"lock     {status.lock_dir}", f"verdict  {status.state.name}: {status.reason}"]
    if status.state is run_lock.LockState.FREE:
        return lines
    if status.pid_alive is None:
        process = "cannot be checked from this host"
    elif not status.pid_alive:
        process = "not running"
    else:
        process = {
            True: "running, the same process",
            False: "running, but a different process",
        }.get(status.same_process, "running")
    lines += [
        f"holder   pid {status.pid} on {status.host} ({process})",
        f"writer   {status.writer or 'collector'}{f': {status.command}' if status.command else ''}",
        f"age      {human_age(status.age_seconds)}",
    ]
    if status.cwd:
        lines.append(f"cwd      {status.cwd}")
    return lines
