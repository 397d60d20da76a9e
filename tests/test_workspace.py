from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from conftest import write_bars, write_tickers

from core.errors import WorkspaceError
from core.store.layout import Venue
from core.store.workspace import Workspace, discover_datasets, inventory, resolve_root


def test_open_resolves_explicit_then_env_then_cwd(workspace: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PARQCTL_WORKSPACE", str(workspace))
    assert Workspace.open().root == workspace
    assert Workspace.open(workspace).root == workspace
    monkeypatch.delenv("PARQCTL_WORKSPACE")
    monkeypatch.chdir(workspace)
    assert Workspace.open().root == workspace
    assert resolve_root("~") == Path(os.path.expanduser("~"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is not a directory"),
        (lambda p: p.mkdir(), "is not a parqctl workspace"),
    ],
)
def test_open_refuses_what_is_not_a_workspace(tmp_path: Path, make, message: str):
    target = tmp_path / "target"
    make(target)
    with pytest.raises(WorkspaceError, match=message) as err:
        Workspace.open(target)
    assert str(target) in err.value.message
    assert err.value.hint


def test_a_data_dir_alone_is_a_workspace(tmp_path: Path):
    (tmp_path / "data").mkdir()
    ws = Workspace.open(tmp_path)
    assert len(ws.tickers) == 0 and ws.intervals == [] and ws.migration_plan is None


def test_discovers_every_kind_of_dataset(tmp_path: Path):
    day = [datetime(2025, 3, 3)]
    write_bars(tmp_path / "data/legacy/stocks_1d/AAPL.parquet", "AAPL", day)
    write_bars(tmp_path / "data/stocks_1h/AAPL.parquet", "AAPL", day)  # older workspaces
    for month in (2, 3):
        write_bars(
            tmp_path
            / f"data/us/yahoo/stocks_1d/ticker=MSFT/year=2025/month={month:02d}/data.parquet",
            "MSFT",
            [datetime(2025, month, 3)],
        )
    write_bars(
        tmp_path / "data/us/yahoo/stocks_1d/ticker=^GSPC/year=2025/month=03/data.parquet",
        "^GSPC",
        day,
    )
    trades = tmp_path / "data/de/xetra/trades/venue=XETR/year=2025/month=03/day=03/trades.parquet"
    trades.parent.mkdir(parents=True)
    trades.write_bytes(b"x" * 10)
    stray = (
        tmp_path / "data/us/yahoo/stocks_1d/ticker=MSFT/year=2025/month=03/data.parquet.tmp-1-2-abc"
    )
    stray.write_bytes(b"partial")
    (tmp_path / "data/legacy/stocks_1d/ZZZ.parquet.tmp").write_bytes(b"partial")
    (tmp_path / "data/legacy/notes").mkdir()

    found = {(d.kind, d.interval, d.venue): d for d in discover_datasets(tmp_path)}
    us = Venue("us", "yahoo")
    assert set(found) == {
        ("legacy", "1d", None),
        ("legacy", "1h", None),
        ("partitioned", "1d", us),
        ("trades", None, Venue("de", "xetra")),
    }

    partitioned = inventory(found[("partitioned", "1d", us)])
    assert {t: g.files for t, g in partitioned.groups.items()} == {"MSFT": 2, "^GSPC": 1}
    msft_bytes = sum(
        p.stat().st_size
        for p in (tmp_path / "data/us/yahoo/stocks_1d/ticker=MSFT").rglob("data.parquet")
    )
    assert partitioned.groups["MSFT"].bytes == msft_bytes
    assert partitioned.stray_files == [stray]

    legacy = inventory(found[("legacy", "1d", None)])
    assert list(legacy.groups) == ["AAPL"]
    assert [p.name for p in legacy.stray_files] == ["ZZZ.parquet.tmp"]

    trade_inv = inventory(found[("trades", None, Venue("de", "xetra"))])
    assert {v: (g.files, g.bytes) for v, g in trade_inv.groups.items()} == {"XETR": (1, 10)}


def test_legacy_homes_collector_root_first(tmp_path: Path):
    write_tickers(tmp_path, {})
    day = [datetime(2025, 3, 3)]
    write_bars(tmp_path / "data/stocks_1d/A.parquet", "A", day)
    ws = Workspace.open(tmp_path)
    assert [d.path for d in ws.legacy_homes("1d")] == [tmp_path / "data/stocks_1d"]
    write_bars(tmp_path / "data/legacy/stocks_1d/A.parquet", "A", day)
    write_bars(tmp_path / "stocks_1d/A.parquet", "A", day)
    homes = ws.legacy_homes("1d")
    assert [d.home for d in homes] == [".", "data/legacy", "data"]
    assert [d.read_by_collector for d in homes] == [True, False, False]
    assert [d.label for d in homes] == [
        "legacy 1d",
        "legacy 1d in data/legacy/",
        "legacy 1d in data/",
    ]
    assert ws.legacy_homes("1m") == []
    assert {(d.kind, d.home) for d in ws.datasets()} == {
        ("legacy", "."),
        ("legacy", "data/legacy"),
        ("legacy", "data"),
    }
