"""Benchmark of the integrity screen's saved findings at real scale: one finding per
partition file, as when a migration leaves one extra column in every file.

    .venv/bin/python benchmarks/saved_findings.py [--findings 740000]

Prints the time to save them (Parquet, atomic), the file's size, the time to load them
back, to group them by (code, ticker, interval), and the peak memory of the load. The
findings are made up (no workspace is read): 300 tickers x 2 intervals, the rest spread
over year and month partitions.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.integrity import saved_findings
from core.integrity.findings import Finding, Severity


def made_up(count: int) -> tuple[list[Finding], dict[str, tuple[int, int]]]:
    findings, stats = [], {}
    for i in range(count):
        ticker, interval = f"T{i % 300:03d}", ("1d", "1h")[(i // 300) % 2]
        year, month = 2000 + (i // 600) // 12 % 100, 1 + (i // 600) % 12
        path = (
            f"data/us/yahoo/stocks_{interval}/ticker={ticker}/year={year:04d}/"
            f"month={month:02d}/data.parquet"
        )
        findings.append(
            Finding(
                Severity.WARNING,
                "schema.extra_column",
                path,
                "column(s) not in the format: adjclose (double)",
                "the collector ignores it; rewrite the file without it when convenient",
                ticker=ticker,
                interval=interval,
            )
        )
        stats[path] = (40_000 + i % 1000, 1_700_000_000_000_000_000 + i)
    return findings, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=740_000)
    args = parser.parse_args()
    findings, stats = made_up(args.findings)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        saved_findings.save(root, findings, time.time(), stats)
        saved_s = time.perf_counter() - started
        size = os.path.getsize(root / saved_findings.LAST_FINDINGS)
        del findings, stats
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        loaded = saved_findings.load(root)
        load_s = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        groups = saved_findings.group_findings(loaded.findings)
        group_s = time.perf_counter() - started
    print(f"findings      {len(loaded.findings):,} in {len(groups):,} groups")
    print(f"save          {saved_s:.2f} s, {size / 1e6:.1f} MB on disk")
    print(
        f"load          {load_s:.2f} s (peak RSS {peak / 1024:.0f} MB, {before / 1024:.0f} MB before)"
    )
    print(f"group         {group_s:.2f} s")
    print(f"load average  {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
