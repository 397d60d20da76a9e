"""``parqctl integrity``: check every bar file and the metadata; optionally quarantine."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from core.store.workspace import Workspace
from tui.arguments import add_json_flag, iso_date
from tui.progress import stderr_progress
from tui.text import print_json

SHOWN_PER_CODE = 20


def register(commands) -> None:
    p = commands.add_parser(
        "integrity",
        help="check every bar file, stray temp files and the metadata; exit 0 no errors, 1 errors",
    )
    p.add_argument("--interval", "-i", help="only this interval's files (e.g. 1d)")
    p.add_argument(
        "--since", type=iso_date, help="only files that may hold bars on or after this date"
    )
    p.add_argument(
        "--deep", action="store_true", help="also decode every row group of every column"
    )
    p.add_argument(
        "--quarantine",
        action="store_true",
        help="move the files of error findings into quarantine (takes the run lock)",
    )
    p.add_argument(
        "--scan",
        action="store_true",
        help="look at every file's stat, old months too (by default: the hot months, new "
        "tickers and parqctl's own writes; every file when the last full scan is over 7 days old)",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def render(report) -> list[str]:
    from core.integrity.findings import Severity

    lines = [
        f"workspace  {report.root}",
        f"checked    {report.files:,} bar files in {report.elapsed_s:.1f}s: {report.rows_read:,} "
        f"read, {report.rows_cached:,} unchanged since their last check"
        + (" (deep)" if report.deep else ""),
    ]
    by_code = defaultdict(list)
    for finding in report.findings:
        by_code[(finding.severity, finding.code)].append(finding)
    for (severity, code), findings in by_code.items():
        lines.append("")
        lines.append(f"{severity.label.upper():<8}{code} ({len(findings):,})")
        for finding in findings[:SHOWN_PER_CODE]:
            lines.append(f"  {finding.path or '-'}: {finding.message}")
        if len(findings) > SHOWN_PER_CODE:
            lines.append(f"  ... and {len(findings) - SHOWN_PER_CODE:,} more (--json lists all)")
        lines.append(f"  what to do: {findings[0].advice}")
    for moved in report.quarantined:
        lines.append(f"quarantined {moved['path']} as {moved['id']}")
    counts = report.counts()
    lines.append("")
    lines.append(
        f"summary    {counts['error']:,} error(s), {counts['warning']:,} warning(s), "
        f"{counts['info']:,} info"
    )
    if report.count(Severity.ERROR) and not report.quarantined:
        lines.append("           `parqctl integrity --quarantine` moves the errors' files aside")
    return lines


def run(args: argparse.Namespace) -> int:
    from core.integrity import check as integrity
    from core.safety import run_lock

    ws = Workspace.open(args.workspace)
    if args.interval is not None:
        ws.require_interval(args.interval)
    with stderr_progress() as draw:
        report = integrity.check(
            ws,
            interval=args.interval,
            since=args.since,
            deep=args.deep,
            progress=draw,
            scan="all" if args.scan else "due",
        )
    skipped = []
    if args.quarantine and report.quarantinable():
        with run_lock.hold(ws.root, "parqctl integrity --quarantine") as lock:
            outcomes = integrity.quarantine_errors(ws, report, lock=lock)
        skipped = [o for o in outcomes if "skipped" in o]
    try:
        integrity.save_report(ws.root, report)
    except OSError as exc:
        print(f"parqctl: note: the report was not saved: {exc}", file=sys.stderr)
    if args.json:
        print_json({**report.as_dict(), "quarantine_skipped": skipped})
    else:
        print("\n".join(render(report)))
        for item in skipped:
            print(f"not quarantined {item['path']}: {item['skipped']}")
    return 1 if report.errors else 0
