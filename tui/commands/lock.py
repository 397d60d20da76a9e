"""``parqctl lock status`` and ``parqctl lock break``."""

from __future__ import annotations

import argparse

from core.health import lock_as_dict
from core.safety import run_lock
from core.store.workspace import Workspace
from tui.arguments import add_json_flag
from tui.prompt import confirm
from tui.text import lock_lines, print_json

# Monitoring convention: a live holder is normal operation; anything needing a human is 1.
STATUS_EXIT = {
    run_lock.LockState.FREE: 0,
    run_lock.LockState.LIVE: 0,
    run_lock.LockState.STALE: 1,
    run_lock.LockState.FOREIGN: 1,
    run_lock.LockState.UNKNOWN: 1,
}


def register(commands) -> None:
    p = commands.add_parser("lock", help="inspect or break the workspace's run lock")
    actions = p.add_subparsers(dest="lock_command", metavar="ACTION", required=True)
    q = actions.add_parser(
        "status", help="who holds the lock; exit 0 free or live, 1 stale, foreign or unknown"
    )
    add_json_flag(q)
    q.set_defaults(run=status)
    q = actions.add_parser("break", help="remove a stale lock (never a live one)")
    q.add_argument(
        "--force",
        action="store_true",
        help="also break a lock held from another host or of unknown owner",
    )
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q.set_defaults(run=break_)


def status(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    result = run_lock.inspect(ws.root)
    if args.json:
        print_json(lock_as_dict(result))
    else:
        print("\n".join(lock_lines(result)))
    return STATUS_EXIT[result.state]


def break_(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    current = run_lock.inspect(ws.root)
    if run_lock.break_refusal(current, args.force) is not None:
        run_lock.break_lock(ws.root, force=args.force)  # raises, and audits the refusal
    print("\n".join(lock_lines(current)))
    question = (
        f"Remove {current.lock_dir} ({current.state.name.lower()} lock of pid {current.pid} "
        f"on {current.host})? The collector or parqctl can then take it."
    )
    if not args.yes and not confirm(question, what="break the lock"):
        print("left the lock as it is")
        return 1
    broken = run_lock.break_lock(ws.root, force=args.force)
    print(f"broke the {broken.state.name.lower()} lock of pid {broken.pid} on {broken.host}")
    return 0
