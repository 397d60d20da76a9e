"""The console's responsiveness on the cached 5,000-ticker demo workspace, warm index.

    .venv/bin/python benchmarks/console.py [TICKERS] [--presses N] [--launches N]
                                           [--parts launch,heatmap,lag]

Driven headless with ``App.run_test`` and the Pilot, timed with ``perf_counter``:

- launch, in a fresh interpreter (what `parqctl` pays), from starting it to the
  dashboard's first complete paint: every panel filled in, coverage included (from the
  gap summary saved at the last refresh, core.availability.saved_gaps), and on to the paint of the
  report the child process recomputed. Twice: as an operator meets it (the console was
  opened before, so a summary is saved) and with no saved summary (the first start after
  an index build). A state counts as painted once the screen has been rendered with it;
  the same from creating the app in this process, modules already imported;
- heatmap, per keypress, for cursor moves and page scrolls (median and p95), two ways:
  ``pilot.press`` + ``pilot.pause()``, which includes the Pilot's idle detection (at least
  three 20 ms sleeps; its floor is shown, timed on a key bound to nothing), and "handled":
  the key event sent, every message it causes processed and the screen's dirty regions
  rendered, which is ``pilot.pause()`` without its sleeps (private Textual calls);
- event-loop lag while the integrity screen runs its check in a worker: a 10 ms interval
  timer in the app records how late each tick fires; a cold check (rows of every file
  read) and a warm one (from the caches); and, the same way, during the dashboard's
  health refresh (every 30 s in the console). Beside each, the part of the lag during
  which this process itself was running (process CPU time over the tick): the rest is
  time it waited for a core that the rest of a busy machine had.

Works on a scratch copy (hard links; the console writes its index and caches under
``.parqctl/``). The machine is shared: figures move with whatever else runs on it.

Textual, the console and the demo builder are imported inside the functions: a timed
launch imports only what `parqctl` does, and the engine's child processes
(tui.engine_process) import this script again as their ``__main__``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

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


async def launch_marks(root: Path, started: float) -> dict[str, float]:
    """Seconds from ``started`` (time.monotonic) to each step of the console's start."""
    from core.store.workspace import Workspace
    from tui.app import ParqctlApp

    marks = {"imported": time.monotonic() - started}
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        marks["first frame"] = time.monotonic() - started
        seen = None
        while "fresh coverage" not in marks:
            state = app.health
            if state is None or state is seen:
                await asyncio.sleep(0.001)
                continue
            seen = state
            await pilot._wait_for_screen()  # the state's messages handled, then drawn
            app.screen._on_timer_update()
            now = time.monotonic() - started
            marks.setdefault("panels", now)
            if not state.gaps_pending:
                marks.setdefault("complete", now)
            if state.final:
                marks["fresh coverage"] = now
        report = app.health.report
        marks["verdict"] = report.verdict.name if report else app.health.error
    return marks


LAUNCH_STEPS = {
    "imported": "imports done",
    "first frame": "first frame (panels loading)",
    "panels": "panels painted (coverage maybe pending)",
    "complete": "first complete paint, coverage included",
    "fresh coverage": "recomputed report painted",
}


def report_launches(label: str, runs: list[dict[str, float]]) -> None:
    print(f"launch, {label} ({len(runs)} runs; median, max):")
    for key, text in LAUNCH_STEPS.items():
        values = [run[key] for run in runs if key in run]
        target = "   target < 1500 ms" if key == "complete" else ""
        print(f"    {text:<42} {ms(statistics.median(values))}  {ms(max(values))}{target}")
    print(f"    verdicts {sorted({run['verdict'] for run in runs})}")


def fresh_launches(root: Path, count: int, saved: bool) -> list[dict[str, float]]:
    from core.availability.saved_gaps import SAVED_FILE

    runs = []
    for _ in range(count):
        if not saved:
            (root / SAVED_FILE).unlink(missing_ok=True)
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, __file__, "--launch-once", str(root), "--started", repr(started)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


async def launch(root: Path, count: int) -> None:
    runs = []
    for _ in range(count):
        runs.append(await launch_marks(root, time.monotonic()))
    report_launches("in this process, from creating the app", runs)


async def pilot_press(pilot, key: str) -> float:
    started = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    return time.perf_counter() - started


async def handled(pilot, key: str) -> float:
    """The key dispatched, the messages it causes (cursor moved, side panel updated)
    processed, and the screen's dirty regions rendered to the (headless) driver."""
    from textual import events

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
    from core.store.workspace import Workspace
    from screens.heatmap_grid import HeatmapGrid
    from tui.app import ParqctlApp

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
    from core.store.workspace import Workspace
    from screens.integrity import IntegrityScreen
    from tui.app import ParqctlApp

    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("6")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, IntegrityScreen)
        last = [time.perf_counter(), time.process_time()]
        lags: list[tuple[float, float]] = []

        def tick() -> None:
            now, cpu = time.perf_counter(), time.process_time()
            lag = max(now - last[0] - TICK_S, 0.0)
            # At most this much of the lag this process spent running (a thread holding
            # the GIL); the rest it waited for a core that other processes had.
            lags.append((lag, min(lag, cpu - last[1])))
            last[:] = [now, cpu]

        app.set_interval(TICK_S, tick)
        await asyncio.sleep(1.0)
        idle, lags[:] = list(lags), []
        report_lag("idle", idle, None)
        for label in ("cold check", "warm check"):
            started = time.perf_counter()
            last[:] = [started, time.process_time()]
            await pilot.press("c")
            while screen.cancel_token is not None:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            report_lag(label, list(lags), elapsed)
            summary = str(screen.query_one("#integrity-summary").render())
            print(f"        {summary}")
            await settle(app, pilot)  # the health refresh the check starts
            lags[:] = []
        started = time.perf_counter()
        last[:] = [started, time.process_time()]
        app.refresh_health()
        await app.workers.wait_for_complete()
        report_lag("health", list(lags), time.perf_counter() - started)


def report_lag(label: str, ticks: list[tuple[float, float]], elapsed: float | None) -> None:
    took = f" over {elapsed:5.1f} s" if elapsed is not None else ""
    lags, busy = [lag for lag, _ in ticks], [part for _, part in ticks]
    print(
        f"event-loop lag, {label:<10}{took}: p50 {ms(quantile(lags, 0.5))}  "
        f"p95 {ms(quantile(lags, 0.95))}  p99 {ms(quantile(lags, 0.99))}  "
        f"max {ms(max(lags))}  ({len(lags)} ticks)   target p99 < 50 ms\n"
        f"        of which this process running: p99 {ms(quantile(busy, 0.99))}  "
        f"max {ms(max(busy))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tickers", nargs="?", type=int, default=5000)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--parts", default="launch,heatmap,lag")
    parser.add_argument("--launch-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.launch_once:  # one launch in this fresh interpreter, for the parent to time
        print(json.dumps(asyncio.run(launch_marks(args.launch_once, args.started))))
        return
    from workspace import cached_workspace, scratch_copy

    from core.availability.index import refresh_index

    parts = set(args.parts.split(","))
    root = scratch_copy(cached_workspace(args.tickers), "console")
    try:
        print(f"workspace {root} ({os.cpu_count()} CPUs)")
        started = time.perf_counter()
        index = refresh_index(root)
        print(
            f"index: cold build of {index.files.height:,} files "
            f"{time.perf_counter() - started:6.1f} s (then warm)"
        )
        if "launch" in parts:
            print(f"import tui.app in a fresh interpreter     {ms(import_time())}")
            report_launches(
                "fresh interpreter, no saved gap summary",
                fresh_launches(root, max(args.launches // 2, 1), saved=False),
            )
            report_launches(
                "fresh interpreter, console opened before",
                fresh_launches(root, args.launches, saved=True),
            )
            asyncio.run(launch(root, args.launches))
        if "heatmap" in parts:
            asyncio.run(heatmap(root, args.presses))
        if "lag" in parts:
            asyncio.run(event_loop_lag(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
