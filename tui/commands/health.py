"""``parqctl health``: the summary an operator runs first."""

from __future__ import annotations

import argparse
import sys

from core.errors import ParqctlError
from core.health import HealthReport, Verdict, health_report
from core.workspace import Workspace
from tui.arguments import add_json_flag
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
    lock = report.lock
    held = f" (age {human_age(lock.age_seconds)})" if lock.age_seconds is not None else ""
    lines.append(f"run lock   {lock.state.name}: {lock.reason}{held}")
    disk, marks = report.disk, report.disk.watermarks
    lines.append(
        f"disk       {disk.percent_used:.1f}% used of {human_bytes(disk.total)}, "
        f"{human_bytes(disk.free)} free: {disk.level.name} "
        f"(warn {marks.warn:g}%, critical {marks.critical:g}%, block {marks.block:g}%)"
    )
    for problem in report.problems:
        lines.append(f"problem    {problem.verdict.name}: {problem.text}")
    lines.append(f"verdict    {report.verdict.name}")
    return lines


def register(commands) -> None:
    p = commands.add_parser(
        "health", help="one-screen summary; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = health_report(Workspace.open(args.workspace))
    except ParqctlError as exc:
        if args.json:
            print_json({"verdict": Verdict.UNKNOWN.name, "error": exc.one_line()})
        print(f"parqctl: error: {exc.one_line()}", file=sys.stderr)
        return Verdict.UNKNOWN
    if args.json:
        print_json(report.as_dict())
    else:
        print("\n".join(render(report)))
    return report.verdict
