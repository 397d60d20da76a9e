"""Helpers of the console's Pilot tests: demo copies, waiting for workers, reading widgets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from textual.app import App
from textual.widgets import Static
from textual.worker import WorkerCancelled


def plain(content: object, width: int = 200) -> str:
    """A Static's content (str, Text, or any Rich renderable) as plain text."""
    if isinstance(content, str):
        return content
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    with console.capture() as captured:
        console.print(content)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def shown(app: App, selector: str) -> str:
    """The text of the Static at ``selector`` on the current screen."""
    return plain(app.screen.query_one(selector, Static).content)


def copy_demo(root: Path, report, target: Path):
    """A fresh copy of a module's demo workspace, and its report with the injections'
    paths in the copy."""
    shutil.copytree(root, target)
    injections = [
        replace(i, path=target / i.path.relative_to(root)) if i.path else i
        for i in report.injections
    ]
    return target, replace(report, root=target, injections=injections)


async def settle(pilot, rounds: int = 50) -> None:
    """Until no worker runs: a finished worker's message may start the next one."""
    app = pilot.app
    for _ in range(rounds):
        with contextlib.suppress(WorkerCancelled):  # a refresh replaced by a newer one
            await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return


async def settle_health(pilot, rounds: int = 400) -> None:
    """Until the first health refresh is complete and no worker runs: a snapshot taken in
    the lull between the saved summary's paint and the fresh one differs on a busy machine."""
    for _ in range(rounds):
        await settle(pilot)
        health = getattr(pilot.app, "health", None)
        if health is not None and health.final:
            return
        await asyncio.sleep(0.05)


def status(app: App, area: str) -> str:
    """The dashboard's status lines of ``area`` (health, lock, disk, interval, integrity,
    quarantine, migration, datasets) as plain text."""
    from screens.dashboard import StatusBlock

    return app.screen.query_one(StatusBlock).line_text(area)
