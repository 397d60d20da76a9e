"""Integrity, disk breakdown and health on the 5,000-ticker benchmark workspace.

    .venv/bin/python benchmarks/integrity.py [TICKERS]

Works on a scratch copy (integrity writes its index and caches under ``.parqctl/``).
Measures: a cold check (no index, no row-check cache), a warm check of the unchanged
workspace (the nightly case), a check after touching 1% of the files, a deep check, the
disk breakdown, and ``health --prometheus``. Figures depend on what else the machine runs.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time

from workspace import cached_workspace, scratch_copy  # puts the repo on sys.path

from core.disk.usage import disk_usage
from core.health import health_report
from core.integrity import check as integrity
from core.monitoring import write_textfile
from core.store.workspace import Workspace


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"{label:<34} {time.perf_counter() - started:8.2f} s", flush=True)
    return result


def check(ws: Workspace, label: str, **options) -> None:
    report = timed(label, lambda: integrity.check(ws, **options))
    print(
        f"{'':<34} {report.files:,} files; index opened {report.index.opened:,}; "
        f"rows read {report.rows_read:,}, cached {report.rows_cached:,}; "
        f"{report.errors} errors, {len(report.findings)} findings",
        flush=True,
    )


def main() -> None:
    tickers = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    root = scratch_copy(cached_workspace(tickers), "integrity")
    shutil.rmtree(root / ".parqctl", ignore_errors=True)
    ws = Workspace.open(root)
    print(f"workspace {root} ({os.cpu_count()} CPUs)")
    check(ws, "cold check (index + rows)")
    check(ws, "warm check, nothing changed")
    files = sorted((root / "data").rglob("*.parquet"))
    for path in files[::100]:
        os.utime(path)
    check(ws, f"after touching {len(files[::100]):,} files (1%)")
    check(ws, "deep check (every row group)", deep=True)
    usage = timed("disk breakdown (directory walk)", lambda: disk_usage(ws))
    print(f"{'':<34} {usage.total_bytes / 1e9:.2f} GB in {len(usage.buckets)} buckets")
    report = timed("health", lambda: health_report(ws, record_disk_sample=True))
    timed("health --prometheus write", lambda: write_textfile(root / "parqctl.prom", report))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
