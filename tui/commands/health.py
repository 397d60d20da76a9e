"""``parqctl health``: the summary an operator runs first."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import NotAWorkspaceError, ParqctlError
from core.health import HealthReport, Verdict, health_report
from core.store.workspace import Workspace, resolve_root
from tui.arguments import add_json_flag
from tui.failure import report_failure
from tui.text import human_age, human_bytes, print_json


def render(report: HealthReport) -> list[str]:
    lines = [f"workspace  {report.root}"]
    intervals = ", ".join(report.intervals) or "none listed"
    lines.append(f"tickers    {report.tickers:,} in tickers.json; intervals.json: {intervals}")
    for interval, modes in report.storage_modes.items():
        counts = ", ".join(f"{n:,} {mode}" for mode, n in sorted(modes.items())) or "no tickers"
        lines.append(f"storage    {interval:<4} {counts}")
    if report.datasets:
        width = max(len(inv.dataset.label) for inv in report.datasets)
        for inv in report.datasets:
            stray = f", {len(inv.stray_files)} stray" if inv.stray_files else ""
            lines.append(
                f"dataset    {inv.dataset.label:<{width}}  {len(inv.groups):>6,} tickers "
                f"{inv.files:>8,} files {human_bytes(inv.bytes):>10}{stray}"
            )
    if report.index_refreshed_at is not None:
        full = report.index_full_scan_at
        lines.append(
            f"index      datasets as of {human_age(report.checked_at - report.index_refreshed_at)} "
            "ago (hot months, new tickers, parqctl's writes); every file as of "
            + (f"{human_age(report.checked_at - full)} ago" if full else "never")
        )
    for link in report.links:
        state = "declared in extra_roots" if link.declared else "NOT declared: ignored"
        lines.append(f"link       {link.path.relative_to(report.root)} -> {link.target} ({state})")
    lock = report.lock
    held = f" (age {human_age(lock.age_seconds)})" if lock.age_seconds is not None else ""
    lines.append(f"run lock   {lock.state.name}: {lock.reason}{held}")
    disk, marks = report.disk, report.disk.watermarks
    lines.append(
        f"disk       {disk.percent_used:.1f}% used of {human_bytes(disk.total)}, "
        f"{human_bytes(disk.free)} free: {disk.level.name} "
        f"(warn {marks.warn:g}%, critical {marks.critical:g}%, block {marks.block:g}%)"
    )
    for fs in report.filesystems:
        projection = report.projections.get(str(fs.mount))
        if len(report.filesystems) > 1:
            lines.append(
                f"filesystem {fs.mount} ({', '.join(fs.labels)}): "
                f"{fs.status.percent_used:.1f}% used, {fs.status.level.name}"
            )
        if projection is not None and projection.growth_bytes_per_day is not None:
            when = (
                f"critical around {projection.critical_on}"
                if projection.critical_on
                else projection.note
            )
            lines.append(
                f"growth     {fs.mount}: {human_bytes(projection.growth_bytes_per_day)}/day; {when}"
            )
    if report.quarantine is not None:
        q = report.quarantine
        lines.append(f"quarantine {q.entries:,} file(s), {human_bytes(q.bytes)}")
    summary = report.integrity
    if summary is None:
        lines.append("integrity  never checked (`parqctl integrity`)")
    else:
        age = human_age(report.checked_at - summary.checked_at)
        lines.append(
            f"integrity  {summary.open_errors:,} open error(s), {summary.warnings:,} warning(s) "
            f"in the last full check, {age} ago"
        )
    if report.gaps is None:
        lines.append(
            "gaps       not computed: no file index yet (`parqctl availability` builds it)"
        )
    else:
        for iv in report.gaps.intervals:
            lines.append(
                f"gaps       {iv.interval:<4} {iv.tickers_with_gaps:,} of {iv.tickers:,} tickers, "
                f"{iv.missing_sessions:,} sessions missing ({iv.lost_sessions:,} lost, "
                f"{iv.expiring_sessions:,} expiring within {report.gaps.horizon_days} days)"
            )
    if report.freshness_error:
        lines.append(f"freshness  not computed: {report.freshness_error}")
    elif report.freshness is None:
        lines.append(
            "freshness  not computed: no file index yet (`parqctl availability` builds it)"
        )
    else:
        several = len({iv.calendar for iv in report.freshness.intervals}) > 1
        for iv in report.freshness.intervals:
            where = f" ({iv.calendar})" if several else ""
            lines.append(f"freshness  {iv.interval:<4} {iv.summary()}{where}")
    for item in report.migration:
        failed = f", {item.failed:,} failed" if item.failed else ""
        lines.append(
            f"migration  {item.venue} {item.interval}: {item.stage or item.status}, "
            f"{item.completed:,}/{item.total:,} tickers migrated ({item.percent}%){failed}"
        )
    for problem in report.problems:
        lines.append(f"problem    {problem.verdict.name}: {problem.text}")
    lines.append(f"verdict    {report.verdict.name}")
    return lines


def register(commands) -> None:
    p = commands.add_parser(
        "health",
        help="one-screen summary; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 6 not a workspace",
    )
    add_json_flag(p)
    p.add_argument(
        "--prometheus",
        metavar="PATH",
        type=Path,
        help="also write the metrics for node_exporter's textfile collector (a .prom file)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = health_report(Workspace.open(args.workspace), record_disk_sample=True)
    except ParqctlError as exc:
        if args.prometheus:
            from core.monitoring import write_unknown

            write_unknown(args.prometheus, resolve_root(args.workspace))
        # Not a workspace: its own exit code, as in every command; else UNKNOWN.
        code = exc.exit_code if isinstance(exc, NotAWorkspaceError) else Verdict.UNKNOWN
        return report_failure(exc.one_line(), code, args.json, verdict=Verdict.UNKNOWN.name)
    if args.prometheus:
        from core.monitoring import write_textfile

        write_textfile(args.prometheus, report)
    if args.json:
        print_json(report.as_dict())
    else:
        print("\n".join(render(report)))
    return report.verdict
