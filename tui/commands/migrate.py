"""``parqctl migrate <step>``: move a venue/interval from the legacy to the partitioned layout.

plan, estimate, dry-run, run, verify, activate, rollback, finalize, status; every step
takes ``--venue`` and ``--interval`` (repeatable; default: every planned interval).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from core.errors import ParqctlError
from core.store.layout import Venue
from core.store.workspace import Workspace
from tui.arguments import add_json_flag, positive_int
from tui.cancellation import cancellable
from tui.progress import stderr_progress
from tui.prompt import confirm
from tui.text import human_bytes, print_json

EXIT_FAILURES = 1
EXIT_CANCELLED = 130
MAX_LISTED = 20


def register(commands) -> None:
    p = commands.add_parser("migrate", help="migrate legacy bar files to the partitioned layout")
    steps = p.add_subparsers(dest="migrate_step", metavar="STEP", required=True)

    def step(name: str, help_text: str, run, workers: bool = False) -> argparse.ArgumentParser:
        q = steps.add_parser(name, help=help_text)
        q.add_argument(
            "--venue",
            type=Venue.parse,
            default=Venue("us", "yahoo"),
            help="market:source (default us:yahoo)",
        )
        q.add_argument(
            "--interval",
            action="append",
            metavar="IV",
            help="an interval such as 1d (repeatable; default: all planned)",
        )
        if workers:
            q.add_argument("--workers", type=positive_int, help="worker processes (default: cores)")
        add_json_flag(q)
        q.set_defaults(run=run)
        return q

    q = step("plan", "create, extend or trim migration_plan.json", run_plan)
    q.add_argument(
        "--force",
        action="store_true",
        help="reset intervals already planned; plan a venue that has no legacy data",
    )
    q.add_argument(
        "--drop",
        action="store_true",
        help="remove the venue's --interval targets (all of them when none is given) from "
        "the plan; refused once tickers are migrated there",
    )
    q.add_argument(
        "--restore",
        action="store_true",
        help="put back parqctl's records after another tool (yf-parqed-migrate) rewrote the plan",
    )
    q = step(
        "estimate",
        "projected size, duration and disk level (measured on a sample)",
        run_estimate,
        workers=True,
    )
    q.add_argument(
        "--sample",
        type=positive_int,
        default=12,
        help="tickers per interval to migrate for the measurement (default 12)",
    )
    step(
        "dry-run",
        "every file a run would write, conflicts, unreadable files; writes nothing",
        run_dry_run,
        workers=True,
    )
    q = step("run", "migrate in checkpointed batches (resumable)", run_run, workers=True)
    q.add_argument(
        "--batch-size", type=positive_int, default=100, help="tickers per checkpoint (default 100)"
    )
    step(
        "verify", "compare every ticker's partitions with its legacy file", run_verify, workers=True
    )
    step("activate", "route the collector to the partitioned layout (after verify)", run_activate)
    q = step("rollback", "route the collector back to the legacy files", run_rollback)
    q.add_argument(
        "--purge-partitioned",
        action="store_true",
        help="also delete the partition files this migration created",
    )
    q.add_argument(
        "--force",
        action="store_true",
        help="where a bar differs between the partitions and the legacy file, keep the "
        "partitions' value (what the collector reads now) instead of refusing",
    )
    q.add_argument(
        "--list-files",
        action="store_true",
        help="with --purge-partitioned: list every file that would be deleted before asking",
    )
    q.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (required with --json)"
    )
    q = step(
        "finalize",
        "delete the legacy files after activation and a fresh verify",
        run_finalize,
        workers=True,
    )
    q.add_argument(
        "--delete-legacy", action="store_true", required=True, help="required: what finalize does"
    )
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    step("status", "the migration plan: progress, failures, verification, activation", run_status)


def _ws(args) -> Workspace:
    return Workspace.open(args.workspace)


def _intervals(args) -> list[str] | None:
    if not args.interval:
        return None
    return [iv.strip() for arg in args.interval for iv in arg.split(",") if iv.strip()]


def _hint(args, step: str) -> str:
    ivs = "".join(f" --interval {iv}" for iv in _intervals(args) or [])
    return f"parqctl migrate {step} --venue {args.venue.id}{ivs}"


def _run_step(args, step, **options):
    """Run a long migration step on the chosen venue and intervals, with a progress line
    and Ctrl-C / SIGTERM stopping it at a safe point."""
    with stderr_progress() as draw, cancellable("after the tickers in progress") as token:
        return step(
            _ws(args),
            args.venue,
            _intervals(args),
            workers=args.workers,
            progress=draw,
            token=token,
            **options,
        )


# --- plan ---------------------------------------------------------------------------------


def run_plan(args) -> int:
    from core.migration.plan import drop_targets, plan_migration, restore_records

    if args.drop and (args.restore or args.force):
        raise ParqctlError(
            "--drop cannot be combined with --restore or --force",
            "run `parqctl migrate plan --drop --venue V --interval IV` on its own",
        )
    if args.drop:
        dropped = drop_targets(_ws(args), args.venue, _intervals(args))
        if args.json:
            print_json(asdict(dropped))
        else:
            gone = f"; {dropped.venue} has no target left" if dropped.venue_dropped else ""
            print(f"dropped {dropped.venue} {', '.join(dropped.intervals)} from the plan{gone}")
        return 0
    if args.restore:
        restored = restore_records(_ws(args))
        if args.json:
            print_json(asdict(restored))
        else:
            print(f"restored parqctl's records of {', '.join(restored.intervals)}")
            print(f"the rewritten plan is kept at {restored.kept_at}")
        return 0
    result = plan_migration(_ws(args), args.venue, _intervals(args), force=args.force)
    if args.json:
        print_json(asdict(result))
        return 0
    verb = "created" if result.created else "updated"
    print(f"{verb} {result.path} for {result.venue}")
    for iv in result.intervals:
        note = " (already planned; --force resets it)" if iv.action == "kept" else ""
        print(
            f"  {iv.interval:<4} {iv.action:<6} {iv.tickers:>6} tickers  "
            f"{iv.legacy_path} -> {iv.partition_path}{note}"
        )
        for stray in iv.strays[:MAX_LISTED]:
            print(f"       not a ticker file, left alone: {stray}")
    print(f"next: {_hint(args, 'estimate')}")
    return 0


# --- estimate -----------------------------------------------------------------------------


def run_estimate(args) -> int:
    from core.errors import DiskSpaceError
    from core.migration.estimate import estimate_migration

    with cancellable("after the tickers in progress") as token:
        e = estimate_migration(
            _ws(args),
            args.venue,
            _intervals(args),
            sample=args.sample,
            workers=args.workers,
            token=token,
        )
    if args.json:
        print_json({**asdict(e), "refused": e.refused})
    else:
        print(
            f"{e.venue} {', '.join(e.intervals)}: {e.tickers:,} tickers, {e.rows:,} rows, "
            f"legacy {human_bytes(e.legacy_bytes)}"
        )
        if e.unreadable:
            print(
                f"  unreadable legacy files ({len(e.unreadable)}): {', '.join(e.unreadable[:MAX_LISTED])}"
            )
            for ticker in e.unreadable[:MAX_LISTED]:
                if ticker in e.unreadable_reasons:
                    print(f"    {e.unreadable_reasons[ticker]}")
        print(
            f"  output: about {e.files:,} files, {human_bytes(e.projected_bytes)} on disk "
            f"({e.bytes_per_file:,.0f} B/file + {e.bytes_per_row:.1f} B/row, measured on "
            f"{e.sample_tickers} tickers / {e.sample_files} files)"
        )
        print(
            f"  disk: {human_bytes(e.disk_free)} free of {human_bytes(e.disk_total)}; "
            f"{e.percent_used:.1f}% used now, {e.percent_after:.1f}% after ({e.level_after})"
        )
        print(f"  duration: about {e.projected_seconds:,.0f} s with {e.workers} workers")
        ratios = ", ".join(f"{iv} x{r:.2f}" for iv, r in e.bytes_per_legacy_byte.items())
        if e.recorded:
            print(f"  output per legacy byte ({ratios}) recorded in the plan for `migrate run`")
        elif e.not_recorded:
            print(f"  output per legacy byte not recorded in the plan: {e.not_recorded}")
    if e.refused:
        raise DiskSpaceError(
            f"the migration would take the disk to {e.percent_after:.1f}% "
            f"(critical watermark {e.critical:g}%)",
            "free space first, or raise [watermarks] critical in .parqctl/config.toml",
        )
    return 0


# --- dry-run ------------------------------------------------------------------------------


def run_dry_run(args) -> int:
    from core.migration import months as mo
    from core.migration.dryrun import dry_run

    results = _run_step(args, dry_run)
    failures = sum(len(r.failures) for r in results)
    if args.json:
        print_json(
            [
                {
                    "venue": r.venue,
                    "interval": r.interval,
                    "strays": r.strays,
                    "tickers": [_outcome_dict(o, mo) for o in r.outcomes],
                }
                for r in results
            ]
        )
        return EXIT_FAILURES if failures else 0
    for r in results:
        files = sum(len(o.files) for o in r.outcomes if o.ok)
        print(f"{r.venue} {r.interval}: {len(r.outcomes)} tickers, {files:,} partition files")
        for o in r.outcomes:
            if not o.ok:
                print(f"  {o.ticker}: FAILS ({o.kind}) {o.message}")
                for c in o.conflicts[:5]:
                    print(f"      {c['date']}: {', '.join(c['columns'])}")
                continue
            for f in o.files:
                merge = f" merge with {f.existing_rows} stored rows" if f.action == "merge" else ""
                print(
                    f"  ticker={o.ticker}/{mo.relative_file(f.month)}  {f.rows} rows  "
                    f"{f.action}{merge}"
                )
            if o.collapsed:
                print(f"  {o.ticker}: {len(o.collapsed)} exact duplicate rows would be collapsed")
    print(f"{failures} tickers would fail" if failures else "no ticker would fail")
    return EXIT_FAILURES if failures else 0


def _outcome_dict(o, mo) -> dict:
    d = asdict(o)
    d["files"] = [
        {**asdict(f), "path": f"ticker={o.ticker}/{mo.relative_file(f.month)}"} for f in o.files
    ]
    return d


# --- run ----------------------------------------------------------------------------------


def run_run(args) -> int:
    from core.migration.run import run_migration

    result = _run_step(args, run_migration, batch_size=args.batch_size)
    failures = result.failures
    if args.json:
        print_json(asdict(result))
    else:
        for i in result.intervals:
            print(
                f"{i.venue} {i.interval}: {i.migrated} tickers migrated ({i.rows:,} rows, "
                f"{i.files:,} files, {i.merged_files} merged with existing files), "
                f"{i.skipped} already done, {len(i.failures)} failed"
            )
            for ticker, stamps in sorted(i.collapsed.items()):
                print(
                    f"  {ticker}: collapsed {len(stamps)} exact duplicate rows "
                    f"({', '.join(stamps[:3])})"
                )
            for ticker, columns in sorted(i.extra_columns.items()):
                print(f"  {ticker}: extra columns carried: {', '.join(columns)}")
            for f in i.failures[:MAX_LISTED]:
                print(f"  FAILED {f.ticker} ({f.kind}): {f.message}")
                for c in f.conflicts[:3]:
                    print(f"      {c['date']}: {', '.join(c['columns'])}")
                if f.kind == "unreadable" and f.path:
                    print(
                        f"      left in place; set it aside with `parqctl quarantine add {f.path}`"
                    )
        print(f"{result.elapsed_s:.1f} s")
    if result.cancelled:
        print(
            f"parqctl: cancelled; the work so far is checkpointed: resume with "
            f"`{_hint(args, 'run')}`",
            file=sys.stderr,
        )
        return EXIT_CANCELLED
    if failures:
        print(f"parqctl: completed with {len(failures)} failures", file=sys.stderr)
        return EXIT_FAILURES
    if not args.json:
        print(f"completed; next: {_hint(args, 'verify')}")
    return 0


# --- verify -------------------------------------------------------------------------------


def run_verify(args) -> int:
    from core.migration.verify import verify_migration

    result = _run_step(args, verify_migration)
    if args.json:
        print_json({**asdict(result), "ok": result.ok})
    else:
        for i in result.intervals:
            verdict = "PASSED" if i.ok else f"FAILED for {len(i.failures)} tickers"
            print(
                f"{i.venue} {i.interval}: {i.passed}/{i.tickers} tickers pass, "
                f"{i.files:,} files, {i.rows:,} rows: {verdict}"
            )
            for f in i.failures[:MAX_LISTED]:
                print(f"  {f.ticker}: {'; '.join(f.problems[:3])}")
            if len(i.failures) > MAX_LISTED:
                print(f"  ... and {len(i.failures) - MAX_LISTED} more (--json lists all)")
    if not result.ok:
        return EXIT_FAILURES
    if not args.json:
        print(f"next: {_hint(args, 'activate')}")
    return 0


# --- activate, rollback, finalize ---------------------------------------------------------


def run_activate(args) -> int:
    from core.migration.activate import activate_migration

    result = activate_migration(_ws(args), args.venue, _intervals(args))
    if args.json:
        print_json(asdict(result))
        return 0
    for i in result.intervals:
        if i.action == "already active":
            print(f"{result.venue} {i.interval}: already active; nothing changed")
            continue
        print(
            f"{result.venue} {i.interval}: {i.action}; {i.blocks_set:,} tickers routed to the "
            f"partitioned layout: {i.migrated:,} migrated"
            + (f", {len(i.without_legacy):,} with no legacy file" if i.without_legacy else "")
        )
        if i.without_legacy:
            print(
                f"  no legacy file to migrate, new bars go to the partitioned layout: "
                f"{', '.join(i.without_legacy[:MAX_LISTED])}"
            )
        if i.unregistered:
            print(
                f"  migrated but not in tickers.json (no block set): "
                f"{', '.join(i.unregistered[:MAX_LISTED])}"
            )
    if result.switch_set:
        print(f"storage_config.json: {result.venue} and the global switch now partitioned")
    return 0


def run_rollback(args) -> int:
    from core.migration.rollback import PurgePlan, rollback_migration

    if args.purge_partitioned and args.json and not args.yes:
        raise ParqctlError(
            "refusing to delete partition files without confirmation in --json mode",
            "pass --yes (run once without --json to see what would go)",
        )

    def ask(plan: PurgePlan) -> bool:
        if args.yes:
            return True
        if args.list_files:
            for path in plan.files:
                print(f"  {path}")
        kept = (
            f"; keeping {plan.kept_merged} merged files and the files of "
            f"{len(plan.kept_changed)} changed tickers"
            if plan.kept_merged or plan.kept_changed
            else ""
        )
        listing = "" if args.list_files else " (--list-files lists them)"
        question = (
            f"Delete {len(plan.files):,} partition files ({human_bytes(plan.bytes)}) this "
            f"migration created under {', '.join(str(d) for d in plan.directories)}"
            f"{listing}{kept}?"
        )
        return confirm(question, what="delete partition files")

    result = rollback_migration(
        _ws(args),
        args.venue,
        _intervals(args),
        purge=args.purge_partitioned,
        force=args.force,
        confirm_purge=ask,
    )
    if args.json:
        print_json(asdict(result))
        return 0
    print(
        f"{result.venue} {', '.join(result.intervals)}: back to legacy; "
        f"{result.blocks_removed} storage blocks removed or restored"
        + ("; storage_config.json restored" if result.switch_restored else "")
    )
    for carry in result.carried:
        moved = sum(t.moves for t in carry.tickers)
        if moved:
            print(
                f"  {carry.interval}: moved {moved:,} legacy files back to stocks_{carry.interval}/ "
                "at the workspace root, where the collector reads them"
            )
        written = [t for t in carry.tickers if t.added or (args.force and t.conflicts)]
        if written:
            print(
                f"  {carry.interval}: carried {carry.rows_added:,} bars the collector wrote into "
                f"partitions back into {len(written):,} legacy files (verified)"
            )
        for ticker in carry.conflicts[:MAX_LISTED]:
            print(f"  {ticker.ticker}: kept the partitions' values: {ticker.conflicts[0]}")
    if result.purge is not None:
        print(
            f"deleted {len(result.purge.files):,} partition files "
            f"({human_bytes(result.purge.bytes)})"
        )
        if args.list_files:
            for path in result.purge.files:
                print(f"  deleted {path}")
        for ticker in result.purge.kept_changed[:MAX_LISTED]:
            print(f"  kept {ticker}: its partition files changed since the migration")
    return 0


def run_finalize(args) -> int:
    from core.migration.finalize import DeletionPlan, finalize_migration

    def ask(plan: DeletionPlan) -> bool:
        dirs = ", ".join(str(d) for d in plan.directories)
        names = ", ".join(p.name for p in plan.files[:5])
        more = f" and {len(plan.files) - 5} more" if len(plan.files) > 5 else ""
        question = (
            f"Delete {len(plan.files):,} legacy files ({human_bytes(plan.bytes)}) in "
            f"{dirs}: {names}{more}? They cannot be recreated from here."
        )
        if args.yes:
            return True
        if args.json:
            raise ParqctlError("refusing to delete without confirmation", "pass --yes")
        return confirm(question, what="delete the legacy files")

    result = _run_step(args, finalize_migration, confirm=ask)
    if args.json:
        print_json(asdict(result))
    elif result.deleted:
        print(
            f"deleted {len(result.deletion.files):,} legacy files "
            f"({human_bytes(result.deletion.bytes)})"
        )
    else:
        print("nothing deleted")
    return 0 if result.deleted else EXIT_FAILURES


# --- status -------------------------------------------------------------------------------

# parqctl's stage of an interval, in words; the collector's status field is shown apart.
STAGE_WORDS = {
    "planned": "planned; nothing migrated yet",
    "migrating": "migrating; partly done (run again to resume)",
    "migrated": "migrated; not verified yet",
    "verified": "verified; not active yet",
    "active": "active: the collector reads and writes the partitioned files",
    "finalized": "finalized: the legacy files are deleted",
}


def describe_stage(s) -> str:
    if s.interrupted:
        return f"{s.stage}, interrupted"
    return STAGE_WORDS.get(s.stage, s.stage)


def run_status(args) -> int:
    from core.migration.status import migration_status

    statuses = migration_status(_ws(args), args.venue)
    wanted = _intervals(args)
    unplanned = sorted(set(wanted or ()) - {s.interval for s in statuses})
    if unplanned:  # asked about an interval the plan does not have: never an empty answer
        raise ParqctlError(
            f"{args.venue.id} {', '.join(unplanned)} is not in the migration plan",
            f"plan it with `parqctl migrate plan --venue {args.venue.id} --interval "
            f"{unplanned[0]}`",
        )
    statuses = [s for s in statuses if not wanted or s.interval in wanted]
    if args.json:
        print_json([{**asdict(s), "tickers": s.tickers, "pending": s.pending} for s in statuses])
        return 0
    for s in statuses:
        print(f"{s.venue} {s.interval}: {describe_stage(s)}")
        if s.collector_only:
            print(
                f"  {s.jobs_completed:,} of {s.jobs_total:,} tickers done (the collector's count)"
            )
        else:
            print(
                f"  {s.tickers:,} legacy files: {s.done:,} migrated, {s.failed:,} failed, "
                f"{s.promoting:,} in promotion, {s.pending:,} to do"
            )
        if s.gone:
            have = "ticker has" if len(s.gone) == 1 else "tickers have"
            print(
                f"  {len(s.gone):,} recorded {have} no legacy file now (quarantined or "
                f"removed): {', '.join(s.gone[:MAX_LISTED])}"
            )
        print(
            f"  rows: {s.legacy_rows or 0:,} legacy, {s.partition_rows or 0:,} in partitions; "
            f"the plan's status field (the collector's): {s.status or '-'}"
            + (f", resume at {s.resume_token}" if s.resume_token else "")
        )
        if s.estimated_at:
            print(f"  estimated {s.estimated_at}")
        if s.verify:
            verdict = "passed" if s.verify.get("passed") else f"failed for {s.verify.get('failed')}"
            print(f"  verify {s.verify.get('at')}: {verdict}")
        if s.activated_at:
            print(f"  active since {s.activated_at}")
        if s.legacy_deleted_at:
            print(f"  legacy files deleted {s.legacy_deleted_at}")
        if s.interrupted:
            print(f"  {s.interrupted} was interrupted; finish it with `{s.interrupted_hint}`")
        if s.records_lost_hint:
            print(f"  ! {s.records_lost_hint}")
        for f in s.failures[:MAX_LISTED]:
            print(f"  FAILED {f['ticker']} ({f['kind']}): {f['error']}")
    return 0
