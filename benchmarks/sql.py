"""Benchmark of ``parqctl sql`` (core.sql) on a demo workspace, legacy and partitioned.

    .venv/bin/python benchmarks/sql.py [--tickers 1000] [--rounds 5]
    .venv/bin/python benchmarks/sql.py --legacy DIR --partitioned DIR   # existing workspaces

Prints, per layout:
- open: opening the engine (connection, lock-down, views declared; no file is opened);
- first use of bars_1d and bars_1h: listing their files as routing picks them, and the
  pyarrow dataset over them (once per engine: the console keeps it, the CLI pays it per run);
- the ticker query ``SELECT * FROM bars_1d WHERE ticker = ... AND date BETWEEN ...`` on an
  open engine (warm), and the same through the CLI in a fresh process;
- the full scan ``SELECT ticker, count(*) FROM bars_1h GROUP BY ALL`` against the same
  query written by hand with ``read_parquet`` over the same files (ticker from the file
  name), in a plain DuckDB connection: wall and CPU seconds, and their ratio.

The legacy workspace is the cached demo (benchmarks/workspace.py); the partitioned one is
made from it once, each legacy file split by month into ``data/us/yahoo/stocks_<iv>/``
with the global switch on (what the collector reads after a migration). Timings are the
best and median of ``--rounds``; the machine may be shared, so compare figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from workspace import CACHE, REPO, cached_workspace

from core.availability.index import refresh_index
from core.sql import SqlEngine

TICKER_QUERY = (
    "SELECT * FROM bars_1d WHERE ticker = '{ticker}' AND date BETWEEN '2024-03-01' AND '2024-03-31'"
)
SCAN_QUERY = "SELECT ticker, count(*) AS n FROM bars_1h GROUP BY ALL"
HAND_QUERY = """
import json, sys, time, duckdb
paths, kind = json.loads(sys.stdin.read())
ticker = (
    "regexp_extract(filename, '/ticker=([^/]+)/year=', 1)" if kind == "partitioned"
    else "regexp_extract(filename, '/([^/]+)\\\\.parquet$', 1)"
)
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
times = []
for _ in range(int(sys.argv[1])):
    wall, cpu = time.perf_counter(), time.process_time()
    rows = con.execute(
        f"SELECT {ticker} AS ticker, count(*) AS n FROM read_parquet($paths, filename = true) "
        "GROUP BY ALL", {"paths": paths}
    ).fetchall()
    times.append((time.perf_counter() - wall, time.process_time() - cpu, len(rows)))
print(json.dumps(times))
"""


def rounds_of(fn: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """(best wall, median wall, best cpu) seconds over ``rounds`` calls."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(walls), min(cpus)


def _split_one(job: tuple[str, str, str, str]) -> int:
    """Write one legacy file's rows as month partitions; returns the files written."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from core.store.bars import write_bar_file

    source, target_root, interval, ticker = job
    table = pq.read_table(source)
    months = pc.strftime(table["date"], "%Y-%m")
    written = 0
    for month in pc.unique(months).to_pylist():
        part = table.filter(pc.equal(months, month))
        year, mm = month.split("-")
        path = (
            Path(target_root)
            / f"data/us/yahoo/stocks_{interval}/ticker={ticker}/year={year}/month={mm}/data.parquet"
        )
        write_bar_file(path, part, durable=False, compression_level=1)
        written += 1
    return written


def partitioned_copy(legacy: Path) -> Path:
    """The legacy workspace split by month into partitions, built once beside it."""
    target = CACHE / f"{legacy.name}-partitioned"
    if (target / "tickers.json").is_file():
        return target
    building = CACHE / f".{target.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for name in ("tickers.json", "intervals.json"):
        shutil.copy2(legacy / name, building / name)
    (building / "storage_config.json").write_text(
        json.dumps({"partitioned": True, "markets": {}, "sources": {}})
    )
    jobs = []
    for interval in ("1d", "1h"):
        for path in sorted((legacy / f"stocks_{interval}").glob("*.parquet")):
            jobs.append((str(path), str(building), interval, path.stem))
    started = time.perf_counter()
    print(f"splitting {len(jobs):,} legacy files by month (once) ...", file=sys.stderr)
    files = failed = 0
    with ProcessPoolExecutor() as pool:
        futures = [pool.submit(_split_one, job) for job in jobs]
        for future in futures:
            try:
                files += future.result()
            except Exception:  # the demo's damaged files: left out, as a failed migration
                failed += 1
    building.rename(target)
    print(
        f"wrote {files:,} partition files in {time.perf_counter() - started:.0f} s "
        f"({failed} unreadable legacy files left out)",
        file=sys.stderr,
    )
    return target


def hand_written(paths: list[str], kind: str, rounds: int) -> tuple[float, float, float]:
    """The scan by hand with read_parquet over ``paths``, in a process of its own."""
    run = subprocess.run(
        [sys.executable, "-c", HAND_QUERY, str(rounds)],
        input=json.dumps([paths, kind]),
        capture_output=True,
        text=True,
        check=True,
    )
    times = json.loads(run.stdout.strip().splitlines()[-1])
    walls = [t[0] for t in times]
    return min(walls), statistics.median(walls), min(t[1] for t in times)


def measure(label: str, root: Path, rounds: int, refresh: bool = True) -> None:
    print(f"\n== {label}: {root}")
    if refresh:
        # As after `parqctl availability`: the index knows the demo's damaged files, which
        # the bars views then leave out (not timed; quick when it is up to date).
        wall = time.perf_counter()
        refresh_index(root, sessions=False)
        print(f"index refresh (not part of the figures)    {time.perf_counter() - wall:6.3f} s")

    def open_close() -> None:
        SqlEngine.open(root).close()

    best, median, _ = rounds_of(open_close, rounds)
    print(f"open (views declared, no file opened)      best {best:6.3f} s  median {median:6.3f} s")

    engine = SqlEngine.open(root)
    for interval in ("1d", "1h"):
        wall = time.perf_counter()
        engine.execute(f"SELECT * FROM bars_{interval} LIMIT 0").fetch(1)
        files = engine.catalog.bar_files[interval]
        print(
            f"first use of bars_{interval} (list + dataset)    {time.perf_counter() - wall:6.3f} s"
            f"  {len(files.paths):,} files of {len(files.sources):,} tickers"
        )
    ticker = (
        "AAPL"
        if "AAPL" in engine.catalog.bar_files["1d"].sources
        else sorted(engine.catalog.bar_files["1d"].sources)[0]
    )
    query = TICKER_QUERY.format(ticker=ticker)
    rows = engine.execute(query).fetch(10**9).num_rows
    best, median, _ = rounds_of(lambda: engine.execute(query).fetch(10**9), rounds)
    print(
        f"ticker query, open engine (warm)           best {best:6.3f} s  median {median:6.3f} s"
        f"  ({rows} rows of {ticker})"
    )

    def cli() -> None:
        subprocess.run(
            [str(REPO / ".venv/bin/parqctl"), "-w", str(root), "sql", query, "--format", "csv"],
            capture_output=True,
            check=True,
        )

    best, median, _ = rounds_of(cli, max(1, rounds // 2))
    print(f"ticker query, CLI in a fresh process       best {best:6.3f} s  median {median:6.3f} s")

    engine.execute(SCAN_QUERY).fetch(10**9)  # warm the page cache for both
    view_best, view_median, view_cpu = rounds_of(
        lambda: engine.execute(SCAN_QUERY).fetch(10**9), rounds
    )
    files = engine.catalog.bar_files["1h"]
    kind = "partitioned" if "partitioned" in set(files.sources.values()) else "legacy"
    hand_best, hand_median, hand_cpu = hand_written(files.paths, kind, rounds)
    engine.close()
    print(
        f"full scan bars_1h, view                    best {view_best:6.3f} s  median "
        f"{view_median:6.3f} s  cpu {view_cpu:6.3f} s"
    )
    print(
        f"full scan, read_parquet by hand            best {hand_best:6.3f} s  median "
        f"{hand_median:6.3f} s  cpu {hand_cpu:6.3f} s"
    )
    print(
        f"ratio view / by hand                       wall {view_best / hand_best:5.2f}x"
        f"  cpu {view_cpu / hand_cpu:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--legacy", type=Path, help="an existing legacy workspace")
    parser.add_argument("--partitioned", type=Path, help="an existing partitioned workspace")
    parser.add_argument("--skip", choices=("legacy", "partitioned"), action="append", default=[])
    parser.add_argument(
        "--no-index-refresh",
        action="store_true",
        help="do not bring the file index up to date first (the split copy has no damaged "
        "file to leave out)",
    )
    args = parser.parse_args()
    legacy = args.legacy or cached_workspace(args.tickers, years_1d=5, years_1h=2)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if "legacy" not in args.skip:
        measure("legacy", legacy, args.rounds, not args.no_index_refresh)
    if "partitioned" not in args.skip:
        partitioned = args.partitioned or partitioned_copy(legacy)
        measure("partitioned", partitioned, args.rounds, not args.no_index_refresh)


if __name__ == "__main__":
    main()
