"""``parqctl quarantine list | add | restore | purge``."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from core.errors import LockHeldError, ParqctlError
from core.integrity import quarantine
from core.safety import run_lock
from core.store.workspace import Workspace
from tui.arguments import add_json_flag
from tui.prompt import confirm
from tui.text import human_age, human_bytes, print_json

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([hdw]?)$")
_AGE_UNIT_DAYS = {"h": 1 / 24, "d": 1.0, "": 1.0, "w": 7.0}


def age_in_days(text: str) -> float:
    """``30d``, ``12h``, ``2w`` or a plain number of days."""
    match = _AGE.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h or 2w")
    return float(match.group(1)) * _AGE_UNIT_DAYS[match.group(2)]


def register(commands) -> None:
    p = commands.add_parser("quarantine", help="list, add, restore or purge quarantined files")
    actions = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)

    q = actions.add_parser("list", help="the quarantined files (reconciles interrupted moves)")
    add_json_flag(q)
    q.set_defaults(run=list_)

    q = actions.add_parser("add", help="move a data file into quarantine")
    q.add_argument(
        "path", metavar="PATH", help="a file under data/ (relative to the workspace, or absolute)"
    )
    q.add_argument("--reason", required=True, help="why it is quarantined (kept in its record)")
    add_json_flag(q)
    q.set_defaults(run=add)

    q = actions.add_parser("restore", help="put a quarantined file back where it was")
    q.add_argument("id", metavar="ID", help="the entry's id (or a unique start of it)")
    q.add_argument(
        "--to",
        metavar="PATH",
        help="restore here instead, relative to the workspace or absolute (the original is taken)",
    )
    add_json_flag(q)
    q.set_defaults(run=restore)

    q = actions.add_parser("purge", help="delete quarantined files for good")
    q.add_argument("ids", metavar="ID", nargs="*", help="entries to delete")
    q.add_argument(
        "--older-than",
        type=age_in_days,
        metavar="AGE",
        help="every entry quarantined at least this long ago (30d, 12h, 2w)",
    )
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_json_flag(q)
    q.set_defaults(run=purge)


def entry_line(entry: quarantine.QuarantineEntry, now: float) -> str:
    if not entry.valid:
        state = f" [invalid: {entry.problem}]"
    else:
        state = "" if entry.condition == "ok" else f" [{entry.condition}]"
    return (
        f"{entry.id}  {human_age(now - entry.quarantined_at):>7} ago  "
        f"{human_bytes(entry.size):>10}  {entry.original_path}{state}  ({entry.reason})"
    )


def warn_invalid(found: list[quarantine.QuarantineEntry]) -> int:
    """One line on stderr per invalid entry; 1 if there was any, else 0."""
    invalid = [e for e in found if not e.valid]
    for entry in invalid:
        print(
            f"parqctl: warning: {entry.directory / quarantine.MANIFEST} is not a quarantine "
            f"manifest parqctl can trust ({entry.problem}): entry {entry.id} is left alone; "
            "inspect it by hand",
            file=sys.stderr,
        )
    return 1 if invalid else 0


def list_(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when an entry is invalid (listed with its reason, never acted on)."""
    ws = Workspace.open(args.workspace)
    reconciled, note = [], None
    if any(e.pending for e in quarantine.entries(ws.root)):
        try:
            with run_lock.hold(ws.root, "parqctl quarantine list") as lock:
                reconciled = quarantine.reconcile(ws.root, lock=lock)
        except LockHeldError as exc:
            note = f"interrupted moves are reconciled once the run lock is free ({exc.message})"
    found = quarantine.entries(ws.root)
    if args.json:
        print_json(
            {
                "entries": [e.as_dict() for e in found],
                "reconciled": [vars(r) for r in reconciled],
                "note": note,
            }
        )
        return warn_invalid(found)
    for item in reconciled:
        print(f"reconciled {item.id} ({item.was}): {item.outcome}, {item.detail}")
    if note:
        print(f"parqctl: note: {note}", file=sys.stderr)
    if not found:
        print("quarantine is empty")
        return 0
    now = time.time()
    for entry in found:
        print(entry_line(entry, now))
    total = sum(e.size for e in found if e.valid and e.payload_present)
    print(f"{len(found)} file(s), {human_bytes(total)}")
    return warn_invalid(found)


def add(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    with run_lock.hold(ws.root, "parqctl quarantine add") as lock:
        quarantine.reconcile(ws.root, lock=lock)
        entry = quarantine.add(ws.root, Path(args.path), args.reason, lock=lock)
    if args.json:
        print_json(entry.as_dict())
    else:
        print(f"quarantined {entry.original_path} as {entry.id} ({human_bytes(entry.size)})")
    return 0


def restore(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    with run_lock.hold(ws.root, "parqctl quarantine restore") as lock:
        quarantine.reconcile(ws.root, lock=lock)
        entry, target = quarantine.restore(
            ws.root, args.id, lock=lock, to=Path(args.to) if args.to else None
        )
    if args.json:
        print_json({**entry.as_dict(), "restored_to": str(target)})
    else:
        print(f"restored {entry.id} to {target}")
    return 0


def purge(args: argparse.Namespace) -> int:
    """Exit 0; 1 when ``--older-than`` left invalid entries alone (each named on stderr)."""
    ws = Workspace.open(args.workspace)
    if not args.ids and args.older_than is None:
        raise ParqctlError("nothing to purge named", "give entry ids or --older-than AGE")
    now = time.time()
    chosen = {quarantine.find(ws.root, i).id: None for i in args.ids}
    left_alone = 0
    if args.older_than is not None:
        found = quarantine.entries(ws.root)
        old = quarantine.older_than(found, args.older_than, now)
        chosen.update({e.id: None for e in old})
        left_alone = warn_invalid(found)  # never purged: their age is not known either
    entries = [quarantine.find(ws.root, i) for i in chosen]
    invalid = [e for e in entries if not e.valid]
    if invalid:
        raise quarantine.invalid_error(invalid[0])
    if not entries:
        print("nothing in quarantine is that old")
        return left_alone
    if not args.yes:
        listing = "\n".join(f"  {entry_line(e, now)}" for e in entries)
        total = human_bytes(sum(e.size for e in entries))
        out = sys.stderr if args.json else sys.stdout
        print(
            f"These {len(entries)} quarantined file(s), {total}, would be deleted for good:",
            file=out,
        )
        print(listing, file=out)
        if not confirm("Delete them? They cannot be restored afterwards.", what="purge"):
            print("nothing was deleted")
            return 1
    with run_lock.hold(ws.root, "parqctl quarantine purge") as lock:
        quarantine.reconcile(ws.root, lock=lock)
        purged = quarantine.purge(ws.root, list(chosen), lock=lock)
    if args.json:
        print_json({"purged": [e.as_dict() for e in purged]})
    else:
        for entry in purged:
            print(f"purged {entry.id} ({entry.original_path}, {human_bytes(entry.size)})")
    return left_alone
