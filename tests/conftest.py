from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from migration_support import build_source, copy_workspace

from core.safety.atomic import write_json
from core.store.bars import BAR_SCHEMA, write_bar_file

REPO = Path(__file__).resolve().parent.parent
PARQCTL = Path(sys.executable).with_name("parqctl")


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str | int) -> Iterator[Path]:
    """A real tmpfs of ``size`` (mount's syntax: "8m", or bytes) at ``mount``, for tests of
    a full or nearly full disk; the test is skipped, with the reason, where mounting is
    refused (CI runs as root; a developer's machine may not)."""
    mount.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or 'mount refused'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def bar_table(ticker: str, times: Iterable[datetime], start_price: float = 100.0) -> pa.Table:
    times = list(times)
    n = len(times)
    prices = [start_price + i for i in range(n)]
    return pa.table(
        {
            "stock": [ticker] * n,
            "date": times,
            "open": prices,
            "high": [p + 1 for p in prices],
            "low": [p - 1 for p in prices],
            "close": prices,
            "volume": list(range(1000, 1000 + n)),
            "sequence": [None] * n,
        },
        schema=BAR_SCHEMA,
    )


def write_bars(path: Path, ticker: str, times: Iterable[datetime]) -> pa.Table:
    table = bar_table(ticker, times)
    write_bar_file(path, table, durable=False)
    return table


def write_tickers(root: Path, tickers: dict[str, dict]) -> None:
    write_json(root / "tickers.json", tickers)


def ticker_entry(name: str, intervals: dict[str, dict] | None = None) -> dict:
    return {
        "ticker": name,
        "added_date": "2025-01-02",
        "status": "active",
        "last_checked": "2025-12-05",
        "intervals": intervals or {"1d": {"status": "active", "last_checked": "2025-12-05"}},
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small legacy workspace: AAPL and BRK-B with three daily bars each."""
    root = tmp_path / "ws"
    days = [datetime(2025, 12, d) for d in (1, 2, 3)]
    for ticker in ("AAPL", "BRK-B"):
        write_bars(root / "stocks_1d" / f"{ticker}.parquet", ticker, days)
    write_tickers(root, {t: ticker_entry(t) for t in ("AAPL", "BRK-B")})
    write_json(root / "intervals.json", ["1d"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, object]:
    """The migration tests' demo in the collector's legacy layout, built once a module,
    with its report (where the demo's injected damage is)."""
    root = tmp_path_factory.mktemp("migration-source") / "ws"
    return root, build_source(root)


@pytest.fixture
def clean(source, tmp_path: Path) -> Path:
    """A copy of ``source`` whose legacy files are all readable (the broken ones removed)."""
    root, report = source
    return copy_workspace(root, tmp_path / "ws", readable_only=True, report=report)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file below root with the sha256 of its content: compare before and after."""
    result = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            result[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run(
        [str(PARQCTL), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )
