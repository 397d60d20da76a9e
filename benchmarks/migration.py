"""The migration end to end through the CLI, against a bare one-process split.

    .venv/bin/python benchmarks/migration.py [--tickers 200] [--years-1d 5] [--years-1h 2] [--busy N]

Ours: `parqctl migrate plan`, `run`, `verify` as an operator runs them (durable, checked,
verified). Baseline, in the same run: one Python process that reads each legacy file with
pyarrow and writes its monthly files the same way (same codec), no fsync, no check.
Each side runs on its own fresh copy of the cached demo workspace (the demo's two
unreadable legacy files are removed from both). Peak memory is the largest resident set
of any process of that side (for ours: the CLI and its worker processes).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from workspace import CACHE, REPO, cached_workspace, scratch_copy

from core.store.layout import legacy_dataset_dir

PARQCTL = Path(sys.executable).with_name("parqctl")


def bare_split(root: Path, out: Path) -> tuple[int, int]:
    """The baseline: read each legacy file, write one gzip file per ticker-month."""
    import numpy as np
    import pyarrow.parquet as pq

    files = rows = 0
    for interval in ("1d", "1h"):
        for path in sorted(legacy_dataset_dir(root, interval).glob("*.parquet")):
            table = pq.read_table(path)
            rows += table.num_rows
            dates = table.column("date").to_numpy().astype("datetime64[M]").astype(np.int64)
            starts = np.r_[0, np.flatnonzero(dates[1:] != dates[:-1]) + 1, len(dates)]
            for start, stop in itertools.pairwise(starts):
                month = int(dates[start])
                target = (
                    out / f"stocks_{interval}" / f"ticker={path.stem}"
                    / f"year={1970 + month // 12:04d}" / f"month={month % 12 + 1:02d}"
                )  # fmt: skip
                target.mkdir(parents=True, exist_ok=True)
                pq.write_table(
                    table.slice(start, stop - start), target / "data.parquet", compression="gzip"
                )
                files += 1
    return files, rows


def _remove_unreadable(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    removed = []
    for path in sorted(root.glob("stocks_1[dh]/*.parquet")):
        try:
            pq.read_metadata(path)
        except Exception:
            path.unlink()
            removed.append(path.name)
    return removed


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return elapsed


def _peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=200)
    parser.add_argument("--years-1d", type=int, default=5)
    parser.add_argument("--years-1h", type=int, default=2)
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="keep N other processes spinning on the cores throughout (e.g. 1: one core busy)",
    )
    parser.add_argument("--baseline-only", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--ours-only", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_only:  # the baseline's own process
        root = Path(args.baseline_only)
        started = time.perf_counter()
        files, rows = bare_split(root, root / "bare-output")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"{time.perf_counter() - started:.3f} {files} {rows} {usage.ru_maxrss / 1024:.0f} {cpu:.1f}"
        )
        return
    if args.ours_only:  # runs the CLI steps, so that their peak memory is theirs alone
        cli = [str(PARQCTL), "-w", args.ours_only, "migrate"]
        plan = _timed([*cli, "plan", "--interval", "1d", "--interval", "1h"])
        run = _timed([*cli, "run"])
        verify = _timed([*cli, "verify"])
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        print(f"{plan:.3f} {run:.3f} {verify:.3f} {_peak_children_mb():.0f} {cpu:.1f}")
        return

    source = cached_workspace(args.tickers, args.years_1d, args.years_1h)
    print(
        f"workspace {source.name}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; "
        f"{args.busy} busy process(es) beside"
    )
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    try:
        compare(source)
    finally:
        for spinner in spinners:
            spinner.kill()


def compare(source: Path) -> None:
    """Both sides on fresh copies of ``source``, one after the other; prints the figures."""
    base_root = scratch_copy(source, "migration-baseline")
    removed = _remove_unreadable(base_root)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--baseline-only", str(base_root)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Its whole process, start-up and imports included, as each of our CLI steps is timed.
    base_wall = time.perf_counter() - started
    split_wall, files, rows, base_peak, base_cpu = (float(x) for x in result.stdout.split())
    files, rows = int(files), int(rows)
    shutil.rmtree(base_root)

    ours_root = scratch_copy(source, "migration-ours")
    _remove_unreadable(ours_root)
    result = subprocess.run(
        [sys.executable, __file__, "--ours-only", str(ours_root)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(result.stdout + result.stderr)
    plan, run, verify, ours_peak, ours_cpu = (float(x) for x in result.stdout.split())
    steps = {"plan": plan, "run": run, "verify": verify}
    ours_wall = plan + run + verify
    written = sum(1 for _ in (ours_root / "data/us/yahoo").rglob("data.parquet"))
    shutil.rmtree(ours_root)

    print(f"removed unreadable legacy files (both sides): {', '.join(removed) or 'none'}")
    print(f"{rows:,} rows -> {files:,} partition files (ours wrote {written:,})")
    print(
        f"baseline (bare split, 1 process, no fsync, no check): {base_wall:6.1f} s  "
        f"{rows / base_wall:9,.0f} rows/s  peak {base_peak:5.0f} MB  cpu {base_cpu:.1f} s  "
        f"(split alone, without start-up: {split_wall:.1f} s)"
    )
    detail = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
    print(
        f"ours (plan+run+verify via the CLI, durable):        {ours_wall:6.1f} s  "
        f"{rows / ours_wall:9,.0f} rows/s  peak {ours_peak:5.0f} MB  cpu {ours_cpu:.1f} s  ({detail})"
    )
    print(
        f"ratio ours/baseline: {ours_wall / base_wall:.2f} (target <= 1.0); cpu ratio "
        f"{ours_cpu / base_cpu:.2f} (<= 2.0 is <= 1.0 in wall time on two free cores)"
    )
    print(f"load average now {os.getloadavg()[0]:.1f}: other jobs on the cores slow both sides")
    print(f"(cache: {CACHE}; repo {REPO})")


if __name__ == "__main__":
    main()
