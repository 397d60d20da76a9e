"""Benchmark of the availability engine on the cached 5,000-ticker demo workspace.

    .venv/bin/python benchmarks/availability.py [--tickers 5000] [--rounds 2]

Measures, in one run: the cold index build against a DuckDB yardstick doing the raw work
(``read_parquet`` over the same files, grouped by ticker and day), a warm refresh with
nothing changed, a refresh after 1% of the files were rewritten, availability for every
ticker from a warm index, the heatmap matrix, and peak memory: of this whole run, and of
two realistic uses each in a fresh process (the yardstick runs in a child process of its
own). Timings are the best of ``--rounds``; the machine is shared, so compare figures of
one run with each other.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from workspace import REPO, cached_workspace, scratch_copy

from core.availability.coverage import coverage_grid
from core.availability.gaps import availability
from core.availability.heatmap import HeatmapSource
from core.availability.index import load_index, refresh_index
from core.safety.atomic import atomic_path
from core.store.workspace import Workspace

TODAY = date(2025, 12, 8)  # fixed, like the workspace's end, so runs compare
YARDSTICK = """
import sys, time, duckdb
paths = sys.stdin.read().split("\\n")
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
rows = con.execute(
    "SELECT stock, CAST(date AS DATE) AS day, count(*) AS bars "
    "FROM read_parquet($paths) GROUP BY ALL", {"paths": paths}
).fetchall()
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(time.perf_counter() - started, len(rows), int(status) / 1024)
"""


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def best(fn: Callable[[], object], rounds: int) -> tuple[float, float, object]:
    """(best, median) seconds over ``rounds`` calls, and the last result."""
    times, result = [], None
    for _ in range(rounds):
        elapsed, result = timed(fn)
        times.append(elapsed)
    return min(times), statistics.median(times), result


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM: unlike ru_maxrss, a child started
    from here does not inherit the parent's figure)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def duckdb_yardstick(root: Path, paths: list[str]) -> tuple[float, int, float]:
    run = subprocess.run(
        [sys.executable, "-c", YARDSTICK],
        input="\n".join(str(root / p) for p in paths),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    seconds, groups, peak = run.stdout.split()
    return float(seconds), int(groups), float(peak)


def rewrite(path: Path) -> None:
    """What the collector does to a file it updates: a new file renamed over the old one."""
    data = path.read_bytes()
    with atomic_path(path, durable=False) as tmp:
        tmp.write_bytes(data)


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>10}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scenario", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(peak_of_scenario(args.scenario[0], Path(args.scenario[1])))
        return

    source = cached_workspace(args.tickers)
    root = scratch_copy(source, "availability")
    ws = Workspace.open(root)
    load = os.getloadavg()
    print(
        f"availability benchmark: {args.tickers:,} tickers, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} at start (a shared machine: figures vary run to run)"
    )

    cold_times, yard_times = [], []
    for _ in range(args.rounds):
        # The yardstick first in each round, so both read files already in the page cache.
        readable = load_index(root).readable["path"].to_list()
        if readable:
            seconds, groups, yard_peak = duckdb_yardstick(root, readable)
            yard_times.append(seconds)
        index = None  # one index in memory at a time, as in the console
        elapsed, index = timed(lambda: refresh_index(root, full=True))
        cold_times.append(elapsed)
        if not readable:
            seconds, groups, yard_peak = duckdb_yardstick(root, index.readable["path"].to_list())
            yard_times.append(seconds)
    files, size = index.files.height, sum(index.files["size"].to_list())
    cold, yard = min(cold_times), min(yard_times)
    print(f"  {files:,} bar files, {size / 1e6:,.0f} MB; DuckDB grouped {groups:,} ticker-days")
    line("cold index build (all files)", f"{cold:.2f} s", f"rounds: {_list(cold_times)}")
    line(
        "DuckDB yardstick (same files, ticker x day)",
        f"{yard:.2f} s",
        f"rounds: {_list(yard_times)}",
    )
    line("  ratio", f"{cold / yard:.2f}x", "target <= 1.5x")

    index = None
    warm, warm_median, index = best(lambda: refresh_index(root), max(args.rounds, 3))
    assert index.stats.opened == 0
    line(
        "warm refresh, nothing changed",
        f"{warm:.3f} s",
        f"median {warm_median:.3f} s; target < 1 s",
    )
    in_memory, _, _ = best(lambda: refresh_index(root, previous=index), 3)
    line("  the same, index already in memory (console)", f"{in_memory:.3f} s")

    chosen = random.Random(7).sample(sorted(index.files["path"].to_list()), max(1, files // 100))
    for path in chosen:
        rewrite(root / path)
    elapsed, index = timed(lambda: refresh_index(root))
    assert index.stats.opened == len(chosen), index.stats
    line(f"refresh after rewriting 1% ({len(chosen)} files)", f"{elapsed:.3f} s", "")

    first, report = timed(lambda: availability(ws, index, today=TODAY))
    warm_av, warm_av_median, report = best(lambda: availability(ws, index, today=TODAY), 3)
    tickers = sum(len(iv.tickers) for iv in report.intervals.values())
    line(
        f"availability, all {tickers:,} ticker-intervals",
        f"{warm_av:.3f} s",
        f"median {warm_av_median:.3f} s; target < 0.5 s "
        f"(first call, calendar cache cold: {first:.2f} s)",
    )
    loaded, _ = timed(lambda: load_index(root))
    end_to_end, _ = timed(lambda: availability(ws, refresh_index(root), today=TODAY))
    line("  load index / refresh + availability", f"{loaded:.3f} s", f"/ {end_to_end:.3f} s")

    for interval in ("1d", "1h"):
        build, grid = timed(lambda iv=interval: coverage_grid(ws, index, iv))
        prepare, heat = timed(lambda g=grid: HeatmapSource(g))
        line(f"heatmap {interval}: grid + prepare (once per index)", f"{build + prepare:.3f} s", "")
        span_end = heat.span[1]
        views = {
            "week, whole span": {"zoom": "week"},
            "month, whole span": {"zoom": "month"},
            "day, last year": {"zoom": "day", "start": span_end - timedelta(days=365)},
            "day, whole span": {"zoom": "day"},
            "week, sort worst, only gaps": {"zoom": "week", "sort": "coverage", "only_gaps": True},
            "week, pattern A*, sort recent gap": {
                "zoom": "week",
                "sort": "recent_gap",
                "pattern": "A*",
            },
        }
        for name, view in views.items():
            seconds, _, matrix = best(lambda v=view, h=heat: h.matrix(**v), 3)
            line(
                f"  matrix {name}",
                f"{seconds:.3f} s",
                f"{len(matrix.tickers):,} x {len(matrix.bucket_starts):,}; target < 0.5 s",
            )

    peak = peak_rss_mb()
    line("peak memory (RSS), this whole benchmark", f"{peak:,.0f} MB", "target < 1 GB")
    for kind, label in SCENARIOS.items():
        run = subprocess.run(
            [sys.executable, __file__, "--scenario", kind, str(root)],
            capture_output=True,
            text=True,
            check=True,
        )
        line(f"  {label}", f"{float(run.stdout):,.0f} MB", "(a fresh process)")
    line("  DuckDB yardstick process", f"{yard_peak:,.0f} MB", "")


SCENARIOS = {
    "cli": "availability --refresh (cold + report)",
    "console": "refresh, report, 1d+1h heatmaps, all zooms",
}


def peak_of_scenario(kind: str, root: Path) -> float:
    """Peak RSS (MB) of one realistic use, run in a fresh process by ``main``."""
    ws = Workspace.open(root)
    index = refresh_index(root, full=kind == "cli")
    availability(ws, index, today=TODAY)
    if kind == "console":
        for interval in ("1d", "1h"):
            heat = HeatmapSource(coverage_grid(ws, index, interval))
            for zoom in ("day", "week", "month"):
                heat.matrix(zoom)
    return peak_rss_mb()


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
