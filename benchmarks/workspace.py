"""The cached demo workspaces benchmarks run on, built once under ``benchmarks/.cache/``.

    from benchmarks.workspace import cached_workspace   # or `import workspace` from a script
    root = cached_workspace(tickers=5000)               # 1d 10 years + 1h 2 years
    root = partitioned_workspace(tickers=5000)          # the same, migrated and activated

A workspace is built under a temporary name and renamed into place when complete, so an
interrupted build is never mistaken for a cached one. Benchmarks work on a hard-linked
copy (``scratch_copy``), never on the cached workspace itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: `python benchmarks/<name>.py`
    sys.path.insert(0, str(REPO))

from core.store.demo import build_demo  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
END = date(2025, 12, 5)  # fixed, so every run measures the same workspace
SEED = 7


def workspace_name(tickers: int, years_1d: int, years_1h: int) -> str:
    return f"demo-t{tickers}-d{years_1d}-h{years_1h}-s{SEED}-{END:%Y%m%d}"


def cached_workspace(tickers: int = 5000, years_1d: int = 10, years_1h: int = 2) -> Path:
    """The demo workspace of this size, built on first use (a few minutes at 5,000 tickers)."""
    target = CACHE / workspace_name(tickers, years_1d, years_1h)
    if (target / "tickers.json").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f".{target.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    started = time.perf_counter()
    print(f"building {target.name} (once; cached afterwards) ...", file=sys.stderr, flush=True)
    report = build_demo(
        building, tickers=tickers, seed=SEED, end=END, years_1d=years_1d, years_1h=years_1h
    )
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    print(
        f"built in {time.perf_counter() - started:.0f} s: {report.files:,} files, "
        f"{report.bytes / 1e6:,.0f} MB, {report.rows:,} rows",
        file=sys.stderr,
        flush=True,
    )
    return target


def scratch_copy(source: Path, name: str) -> Path:
    """A copy of a cached workspace beside it, for benchmarks that change files.

    Files are hard links (instant, no space): replace a file (write a new one and rename
    it over) rather than modify it in place, or the cached workspace changes too.
    parqctl's own state (``.parqctl``) is left out, so every copy starts without an index.
    """
    target = CACHE / f"scratch-{name}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        source, target, copy_function=os.link, ignore=shutil.ignore_patterns(".parqctl")
    )
    return target


def partitioned_workspace(tickers: int = 5000) -> Path:
    """The demo of this size migrated with parqctl's own CLI (plan, run, verify, activate),
    after quarantining the files the demo damaged on purpose (a migration refuses them):
    the store operators live with after a migration. Built once (about 15 minutes at 5,000
    tickers on 2 idle cores); files are hard links to the legacy demo's where unchanged."""
    target = CACHE / f"partitioned-{tickers}"
    if (target / "tickers.json").is_file():
        return target
    legacy = cached_workspace(tickers)
    building = CACHE / f".partitioned-{tickers}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(
        legacy, building, copy_function=os.link, ignore=shutil.ignore_patterns(".parqctl")
    )
    started = time.perf_counter()
    print(f"migrating a copy of {legacy.name} (once) ...", file=sys.stderr, flush=True)
    _parqctl(building, "integrity", "--quarantine", check=False)  # exit 1: it found errors
    _parqctl(building, "migrate", "plan")
    for step in ("run", "verify", "activate"):
        _parqctl(building, "migrate", step)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    print(f"migrated in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return target


def _parqctl(root: Path, *args: str, check: bool = True) -> str:
    command = [sys.executable, "-m", "tui.cli", "-w", str(root), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


if __name__ == "__main__":
    count = int(sys.argv[-1]) if sys.argv[-1].isdigit() else 5000
    if "--partitioned" in sys.argv:
        print(partitioned_workspace(count))
    else:
        print(cached_workspace(count))
