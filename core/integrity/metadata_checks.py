"""Findings about the metadata that routes bars, and about the run lock: tickers without
data, data without tickers, unlisted intervals, storage blocks that point where nothing is,
and a lock whose holder is gone."""

from __future__ import annotations

from collections import defaultdict

from core.integrity.findings import Finding, Scope, Severity
from core.safety import run_lock
from core.store.metadata import INTERVALS_FILE, TICKERS_FILE, TickerEntry
from core.store.routing import locate, routed_mode
from core.store.workspace import Workspace


def metadata_findings(ws: Workspace, files, interval: str | None) -> list[Finding]:
    legacy = set(files.filter(files["kind"] == "legacy").select("ticker", "interval").iter_rows())
    partitioned = set(
        files.filter(files["kind"] == "partitioned")
        .select("ticker", "interval", "venue")
        .iter_rows()
    )
    with_data = legacy | {(t, iv) for t, iv, _ in partitioned}
    findings = []
    for entry in ws.tickers.entries():
        for iv in entry.interval_names():
            if interval is not None and iv != interval:
                continue
            findings += _route_findings(ws, entry, iv, legacy, partitioned, with_data)
    unregistered: dict[str, list[str]] = defaultdict(list)
    for ticker, iv in sorted(with_data):
        if ticker not in ws.tickers:
            unregistered[ticker].append(iv)
    for ticker, intervals in unregistered.items():
        findings.append(
            Finding(
                Severity.WARNING,
                "metadata.unregistered",
                TICKERS_FILE,
                f"{ticker} has {', '.join(intervals)} bars but no entry in tickers.json",
                "the collector never updates it: add the ticker (the collector's `add` "
                "command) or quarantine its files if it does not belong here",
                scope=Scope.TICKER,
                ticker=ticker,
            )
        )
    findings += _legacy_home_findings(ws, files, interval)
    listed = set(ws.intervals)
    for iv in sorted({iv for _, iv in with_data} - listed):
        findings.append(
            Finding(
                Severity.WARNING,
                "metadata.interval_unlisted",
                INTERVALS_FILE,
                f"interval {iv} has bar files but is not in intervals.json",
                f"the collector does not update {iv}: add it to intervals.json if it should",
                scope=Scope.WORKSPACE,
                interval=iv,
            )
        )
    return findings


def _legacy_home_findings(ws: Workspace, files, interval: str | None) -> list[Finding]:
    """Legacy files in a home the collector never reads (``data/legacy/``, ``data/``)."""
    homes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path, ticker, iv in (
        files.filter(files["kind"] == "legacy").select("path", "ticker", "interval").iter_rows()
    ):
        if interval is None or iv == interval:
            homes[ticker, iv].append(path)
    findings = []
    for (ticker, iv), paths in sorted(homes.items()):
        read = f"stocks_{iv}/{ticker}.parquet"
        stranded = [p for p in paths if p != read]
        if not stranded:
            continue
        code = "metadata.legacy_stranded"
        if read in paths:
            code = "metadata.legacy_in_two_homes"
            message = (
                f"{ticker} {iv} has legacy files in two homes: the collector reads {read}; "
                f"{', '.join(stranded)} it never reads"
            )
            advice = (
                "compare them with `parqctl show`; once the stranded copy's bars are in the "
                "other, set it aside with `parqctl quarantine add`"
            )
        elif routed_mode(ws, ticker, iv) == "legacy":
            message = (
                f"{ticker} {iv}'s legacy file is {stranded[0]}, where the collector never "
                f"reads; it reads {read}, which does not exist"
            )
            advice = f"migrate the interval (`parqctl migrate plan --interval {iv}`), or move the file to stocks_{iv}/"
        else:
            continue  # partitioned now: the legacy file is what was migrated
        findings.append(
            Finding(
                Severity.WARNING,
                code,
                stranded[0],
                message,
                advice,
                scope=Scope.TICKER,
                ticker=ticker,
                interval=iv,
            )
        )
    return findings


def _route_findings(
    ws: Workspace,
    entry: TickerEntry,
    iv: str,
    legacy: set[tuple[str, str]],
    partitioned: set[tuple[str, str, str]],
    with_data: set[tuple[str, str]],
) -> list[Finding]:
    ticker = entry.name
    block = entry.storage(iv)
    if block is not None and block.mode == "partitioned" and block.venue is not None:
        if block.dataset == "stocks":
            routed = (ticker, iv, block.venue.id) in partitioned
        else:
            routed = bool(locate(ws, ticker, iv).partition_files())
        if routed:
            return []
        where = f"{block.venue.id} partitions under data/"
        if (ticker, iv) in legacy:
            return [
                Finding(
                    Severity.ERROR,
                    "metadata.storage_points_nowhere",
                    TICKERS_FILE,
                    f"{ticker} {iv} is routed to {where}, which hold nothing; its bars are in "
                    "the legacy file, so the collector reads none of them",
                    "finish migrating the ticker, or remove the interval's storage block so the "
                    "collector reads the legacy file again",
                    scope=Scope.TICKER,
                    ticker=ticker,
                    interval=iv,
                )
            ]
        return [
            Finding(
                Severity.WARNING,
                "metadata.storage_points_nowhere",
                TICKERS_FILE,
                f"{ticker} {iv} is routed to {where}, which hold nothing (nor does a legacy file)",
                "re-fetch the ticker, or remove it from tickers.json if it is gone",
                scope=Scope.TICKER,
                ticker=ticker,
                interval=iv,
            )
        ]
    if (ticker, iv) in with_data:
        return []
    state = (entry.interval(iv) or {}).get("status") or entry.status
    active = state in (None, "active")
    return [
        Finding(
            Severity.WARNING if active else Severity.INFO,
            "metadata.no_data",
            TICKERS_FILE,
            f"{ticker} {iv} is in tickers.json ({state or 'no status'}) but has no bar files",
            "the collector fetches it on its next run; if that keeps failing, check the symbol"
            if active
            else "nothing to do for a ticker Yahoo no longer serves",
            scope=Scope.TICKER,
            ticker=ticker,
            interval=iv,
        )
    ]


def lock_findings(lock: run_lock.LockStatus) -> list[Finding]:
    if lock.state in (run_lock.LockState.FREE, run_lock.LockState.LIVE):
        return []
    severity = Severity.INFO if lock.state is run_lock.LockState.FOREIGN else Severity.WARNING
    return [
        Finding(
            severity,
            f"lock.{lock.state.value}",
            str(lock.lock_dir.name),
            f"run lock of {lock.holder_summary()}: {lock.reason}",
            "the collector will not start while it is there: `parqctl lock status`, then "
            "`parqctl lock break` once its holder is confirmed gone",
            scope=Scope.WORKSPACE,
        )
    ]
