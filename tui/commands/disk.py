"""``parqctl disk``: filesystems against the watermarks, usage by dataset, growth."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core.disk import history as disk_history
from core.disk.usage import DiskUsage, disk_usage
from core.disk.watermarks import Level
from core.health import disk_as_dict
from core.store.workspace import Workspace
from tui.arguments import add_json_flag
from tui.text import human_bytes, print_json

if TYPE_CHECKING:
    from core.disk.tree_cache import TreeTotals

LEVEL_EXIT = {Level.OK: 0, Level.WARN: 1, Level.CRITICAL: 2, Level.BLOCK: 2}


def register(commands) -> None:
    p = commands.add_parser(
        "disk",
        help="disk usage by filesystem and dataset, growth and projection; "
        "exit 0 OK, 1 warn, 2 critical or block",
    )
    add_json_flag(p)
    p.add_argument(
        "--refresh",
        action="store_true",
        help="check every directory now (by default months before the previous one are "
        "checked once a day and after parqctl itself writes)",
    )
    p.set_defaults(run=run)


def projection_text(projection: disk_history.Projection, critical: float) -> str:
    if projection.growth_bytes_per_day is None:
        return f"growth     unknown ({projection.note})"
    text = (
        f"growth     {human_bytes(projection.growth_bytes_per_day)}/day over "
        f"{projection.span_days:.1f} days ({projection.samples} samples)"
    )
    if projection.critical_on is not None:
        when = (
            "reached"
            if projection.days_to_critical == 0
            else f"around {projection.critical_on} (in {projection.days_to_critical:.0f} days)"
        )
        return f"{text}; critical {critical:g}% {when}"
    return f"{text}; {projection.note}"


def freshness_text(totals: TreeTotals) -> str:
    if totals.checked == "recent months":
        return (
            "partitioned datasets: from the previous month on checked now, older months as of "
            f"{totals.all_checked_iso} (`parqctl disk --refresh` checks them now)"
        )
    return "every directory checked now"


def render(usage: DiskUsage, projections: dict[str, disk_history.Projection]) -> list[str]:
    lines = []
    for fs in usage.filesystems:
        st, marks = fs.status, fs.status.watermarks
        lines += [
            f"filesystem {fs.mount}  (holds {', '.join(fs.labels)})",
            f"usage      {st.percent_used:.1f}% of {human_bytes(st.total)} used, "
            f"{human_bytes(st.free)} free: {st.level.name} "
            f"(warn {marks.warn:g}%, critical {marks.critical:g}%, block {marks.block:g}%)",
            projection_text(projections[str(fs.mount)], marks.critical),
            "",
        ]
    total = usage.total_bytes or 1
    lines.append(
        f"workspace  {human_bytes(usage.total_bytes)} on disk "
        f"({human_bytes(usage.total_apparent_bytes)} apparent)"
    )
    if usage.freshness is not None:
        lines.append(f"counted    {freshness_text(usage.freshness)}")
    width = max(len(b.label) for b in usage.buckets)
    for bucket in sorted(usage.buckets, key=lambda b: -b.bytes):
        lines.append(
            f"  {bucket.label:<{width}}  {human_bytes(bucket.bytes):>10}  "
            f"{bucket.files:>9,} files  {100 * bucket.bytes / total:5.1f}%"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    usage = disk_usage(ws, refresh=args.refresh)
    if usage.freshness and usage.freshness.cache_note:
        print(f"parqctl: note: {usage.freshness.cache_note}", file=sys.stderr)
    try:
        disk_history.record(ws.root, usage.filesystems, "disk", usage.total_bytes)
    except OSError as exc:
        print(f"parqctl: note: disk history not recorded: {exc}", file=sys.stderr)
    history = disk_history.load(ws.root)
    projections = {str(fs.mount): disk_history.project(history, fs) for fs in usage.filesystems}
    if args.json:
        print_json(
            {
                "workspace": str(ws.root),
                "bytes": usage.total_bytes,
                "apparent_bytes": usage.total_apparent_bytes,
                "checked": usage.freshness.checked,
                "all_directories_checked_at": usage.freshness.all_checked_iso,
                "filesystems": [
                    {
                        "mount": str(fs.mount),
                        "holds": list(fs.labels),
                        "workspace_bytes": fs.workspace_bytes,
                        **disk_as_dict(fs.status),
                        "projection": projections[str(fs.mount)].as_dict(),
                    }
                    for fs in usage.filesystems
                ],
                "breakdown": [
                    {
                        "label": b.label,
                        "kind": b.kind,
                        "path": str(b.path.relative_to(ws.root)),
                        "bytes": b.bytes,
                        "apparent_bytes": b.apparent_bytes,
                        "files": b.files,
                        "mount": str(b.mount),
                    }
                    for b in usage.buckets
                ],
            }
        )
    else:
        print("\n".join(render(usage, projections)))
    return max(LEVEL_EXIT[fs.status.level] for fs in usage.filesystems)
