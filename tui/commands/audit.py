"""``parqctl audit``: the audit log, newest first: who did what to the workspace, when,
and with what result."""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime, timedelta

from core.store.workspace import Workspace
from tui.arguments import add_json_flag, positive_int
from tui.text import print_json

_AGO = re.compile(r"^(?P<count>[0-9]+)(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_moment(text: str, now: float | None = None) -> datetime:
    """``--since``: a time ago (``30m``, ``12h``, ``7d``, ``2w``), a date (local midnight)
    or an ISO date and time (local unless it names its zone)."""
    match = _AGO.match(text.strip())
    if match:
        ago = timedelta(**{_UNITS[match["unit"]]: int(match["count"])})
        return datetime.fromtimestamp(time.time() if now is None else now, UTC) - ago
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write 7d, 12h, 30m, 2w, 2025-12-31 or 2025-12-31T08:00"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def register(commands) -> None:
    p = commands.add_parser(
        "audit", help="the audit log, newest first: who did what to the workspace, and when"
    )
    p.add_argument(
        "--since",
        type=since_moment,
        metavar="WHEN",
        help="only records from then on: 7d, 12h, 30m, 2w, a date or an ISO date and time",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=200,
        metavar="N",
        help="at most N records, the newest (default 200)",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def line(record) -> str:
    """One record as a line of text: when, who, what, result, and its details."""
    if record.raw is None:
        return f"?  (byte {record.offset:,}) {record.problem}: {record.text[:80]!r}"
    who = "@".join(part for part in (record.field("user"), record.field("host")) if part)
    details = " ".join(f"{key}={value}" for key, value in record.details.items())
    return "  ".join(
        part
        for part in (record.field("ts") or "?", who, record.action, record.result, details)
        if part
    )


def run(args: argparse.Namespace) -> int:
    from core.safety import audit

    ws = Workspace.open(args.workspace)
    page = audit.read_newest(ws.root, limit=args.limit, since=args.since)
    if args.json:
        print_json(
            {
                "workspace": str(ws.root),
                "records": [record.as_dict() for record in page.records],
                "complete": page.complete,
                "log_bytes": page.size,
            }
        )
        return 0
    if not page.records:
        print("no audit records" + (" since then" if args.since else ""))
    for record in page.records:
        print(line(record))
    if not page.complete:
        stopped_by = "--limit" if len(page.records) == args.limit else "--since"
        print(f"(older records not shown: {stopped_by} stops here)")
    return 0
