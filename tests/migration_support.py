"""Shared helpers of the migration tests: demo workspaces and invariants to check."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

from core.store.demo import MIN_TICKERS, build_demo

END = date(2025, 12, 5)
BROKEN = ("truncated", "zero_byte")  # demo injections no migration can read


def build_source(root: Path):
    """A small demo workspace (14 tickers, 1d for 2 years, 1h for 1 year) and its report."""
    return build_demo(root, tickers=MIN_TICKERS, seed=3, end=END, years_1d=2, years_1h=1)


def copy_workspace(source: Path, target: Path, *, readable_only: bool, report=None) -> Path:
    shutil.copytree(source, target, symlinks=True)
    if readable_only:
        for injection in report.injections:
            if injection.kind in BROKEN:
                (target / injection.path.relative_to(source)).unlink()
    return target


def legacy_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.glob("stocks_*/*"))
        if p.is_file()
    }


def check_invariants(root: Path) -> None:
    """What must hold after any crash: the plan parses; the partitioned tree holds only
    complete data.parquet files; every ticker recorded done has all its files."""
    plan = json.loads((root / "migration_plan.json").read_text())
    tree = root / "data" / "us" / "yahoo"
    if tree.exists():
        stray = [p for p in tree.rglob("*") if p.is_file() and p.name != "data.parquet"]
        assert stray == [], stray
    import pyarrow.parquet as pq

    from core.migration import months as mo

    for venue in plan["venues"]:
        for name, interval in venue["intervals"].items():
            dataset = root / interval["partition_path"]
            for ticker, record in interval.get("parqctl", {}).get("tickers", {}).items():
                if record.get("state") != "done":
                    continue
                for month in mo.expand(record["created"]) + mo.expand(record["merged"]):
                    path = dataset / f"ticker={ticker}" / mo.relative_file(month)
                    assert pq.read_metadata(path).num_rows > 0, (name, ticker, month)
