"""The console's responsiveness on the cached 5,000-ticker demo workspace, warm index.

    .venv/bin/python benchmarks/console.py [TICKERS] [--presses N]

Driven headless with ``App.run_test`` and the Pilot, timed with ``perf_counter``:

- launch: from creating the app to the dashboard's first complete paint (the health
  panels filled in), with the import of the console in a fresh interpreter beside it;
- heatmap, per keypress, for cursor moves and page scrolls (median and p95), two ways:
  ``pilot.press`` + ``pilot.pause()``, which includes the Pilot's idle detection (at least
  three 20 ms sleeps; its floor is shown, timed on a key bound to nothing), and "handled":
  the key event sent, every message it causes processed and the screen's dirty regions
  rendered, which is ``pilot.pause()`` without its sleeps (private Textual calls);
- event-loop lag while the integrity screen runs its check in a worker: a 10 ms interval
  timer in the app records how late each tick fires; a cold check (rows of every file
  read) and a warm one (from the caches); and, the same way, during the dashboard's
  health refresh (every 30 s in the console).

Works on a scratch copy (hard links; the console writes its index and caches under
``.parqctl/``). The machine is shared: figures move with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time

from textual import events
from workspace import REPO, cached_workspace, scratch_copy  # puts the repo on sys.path

from core.index import refresh_index
from core.workspace import Workspace
from screens.heatmap_grid import HeatmapGrid
from screens.integrity import IntegrityScreen
from tui.app import ParqctlApp

SIZE = (120, 36)
TICK_S = 0.01


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def import_time() -> float:
    """Seconds for a fresh interpreter to import the console (what `parqctl` pays first)."""
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


async def settle(app, pilot) -> None:
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return


async def launch(root) -> None:
    started = time.perf_counter()
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        first_frame = time.perf_counter() - started
        while app.health is None:
            await asyncio.sleep(0.002)
        await pilot.pause()
        painted = time.perf_counter() - started
        while app.health.gaps_pending:
            await asyncio.sleep(0.002)
        await pilot.pause()
        with_coverage = time.perf_counter() - started
        verdict = app.health.report.verdict.name if app.health.report else app.health.error
    print(f"launch: first frame (panels loading)      {ms(first_frame)}")
    print(f"launch: every panel painted but coverage  {ms(painted)}   target < 1500 ms")
    print(f"launch: coverage panel painted ({verdict})  {ms(with_coverage)}")


async def pilot_press(pilot, key: str) -> float:
    started = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    return time.perf_counter() - started


async def handled(pilot, key: str) -> float:
    """The key dispatched, the messages it causes (cursor moved, side panel updated)
    processed, and the screen's dirty regions rendered to the (headless) driver."""
    app = pilot.app
    started = time.perf_counter()
    app._driver.send_message(events.Key(key, None))
    for _ in range(3):
        await pilot._wait_for_screen()
    app.screen._on_timer_update()
    return time.perf_counter() - started


async def report_presses(pilot, label: str, keys: list[str]) -> None:
    for how, press, count in (
        ("pilot", pilot_press, len(keys) // 4),
        ("handled", handled, len(keys)),
    ):
        times = [await press(pilot, key) for key in keys[:count]]
        print(
            f"heatmap {label:<22} {how:<8} median {ms(statistics.median(times))}  "
            f"p95 {ms(quantile(times, 0.95))}  max {ms(max(times))}  ({len(times)} presses)"
        )


async def heatmap(root, count: int) -> None:
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        started = time.perf_counter()
        await pilot.press("2")
        await settle(app, pilot)
        grid = app.screen.query_one(HeatmapGrid)
        print(
            f"heatmap: open, {grid.rows:,} tickers x {grid.columns:,} weeks     "
            f"{ms(time.perf_counter() - started)}"
        )
        await pilot.press("home")
        await settle(app, pilot)
        floor = [await pilot_press(pilot, "f12") for _ in range(20)]
        print(f"heatmap Pilot floor (unbound key)  median {ms(statistics.median(floor))}")
        print("heatmap keypress target < 50 ms:")
        await report_presses(pilot, "cursor down", ["down"] * count)
        await report_presses(pilot, "cursor left/right", ["left", "right"] * (count // 2))
        await report_presses(pilot, "page down", ["pagedown"] * count)
        await pilot.press("z")  # day zoom: ~2,500 columns
        await settle(app, pilot)
        await report_presses(pilot, "page up (day zoom)", ["pageup"] * count)


async def event_loop_lag(root) -> None:
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("6")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, IntegrityScreen)
        last = [time.perf_counter()]
        lags: list[float] = []

        def tick() -> None:
            now = time.perf_counter()
            lags.append(max(now - last[0] - TICK_S, 0.0))
            last[0] = now

        app.set_interval(TICK_S, tick)
        await asyncio.sleep(1.0)
        idle, lags[:] = list(lags), []
        report_lag("idle", idle, None)
        for label in ("cold check", "warm check"):
            started = time.perf_counter()
            last[0] = started
            await pilot.press("c")
            while screen.cancel_token is not None:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            report_lag(label, list(lags), elapsed)
            summary = str(screen.query_one("#integrity-summary").render())
            print(f"        {summary}")
            await settle(app, pilot)  # the health refresh the check starts
            lags[:] = []
        started = last[0] = time.perf_counter()
        app.refresh_health()
        await app.workers.wait_for_complete()
        report_lag("health", list(lags), time.perf_counter() - started)


def report_lag(label: str, lags: list[float], elapsed: float | None) -> None:
    took = f" over {elapsed:5.1f} s" if elapsed is not None else ""
    print(
        f"event-loop lag, {label:<10}{took}: p50 {ms(quantile(lags, 0.5))}  "
        f"p95 {ms(quantile(lags, 0.95))}  p99 {ms(quantile(lags, 0.99))}  "
        f"max {ms(max(lags))}  ({len(lags)} ticks)   target p99 < 50 ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tickers", nargs="?", type=int, default=5000)
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args()
    root = scratch_copy(cached_workspace(args.tickers), "console")
    try:
        print(f"workspace {root} ({os.cpu_count()} CPUs)")
        started = time.perf_counter()
        index = refresh_index(root)
        print(
            f"index: cold build of {index.files.height:,} files "
            f"{time.perf_counter() - started:6.1f} s (then warm)"
        )
        print(f"import tui.app in a fresh interpreter     {ms(import_time())}")
        asyncio.run(launch(root))
        asyncio.run(launch(root))
        asyncio.run(heatmap(root, args.presses))
        asyncio.run(event_loop_lag(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
