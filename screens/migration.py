"""Migration: the guided move from the legacy layout to the partitioned one.

One row per planned venue/interval with its stage; the steps line marks what was done for
the selected row and the wizard line says which step comes next and its key. Every step is
the engine's own (``core.migration``), run in a thread worker with progress and a cancel
token: the screen only confirms, starts and reports. The rows are read live (a stat of the
plan and of the run lock every couple of seconds), so a run started here or by the CLI in
another process shows its checkpoints as they are written. Deleting the legacy files
(finalize) and purging partition files stay CLI-only steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static
from textual.worker import Worker, WorkerState

from core.errors import ParqctlError
from core.jobs import CancelToken, JobCancelled, Progress
from core.migration.plan import LEGACY_VENUE, legacy_intervals
from core.migration.status import IntervalStatus, migration_status
from core.safety import run_lock
from core.store.layout import Venue
from core.store.metadata import MIGRATION_PLAN_FILE
from core.store.workspace import Workspace
from tui.advice import console_wording
from tui.text import human_age, human_bytes, printable
from tui.widgets.confirm import ConfirmScreen

LIVE_POLL_S = 1.5
# The steps line: (key, step) in the order a migration takes them.
STEPS = (
    ("p", "plan"),
    ("e", "estimate"),
    ("d", "dry-run"),
    ("r", "run"),
    ("v", "verify"),
    ("a", "activate"),
)
# What comes after each stage: (key, step, why). A planned interval goes through estimate
# and dry-run first (see _next_step).
NEXT_STEP = {
    "planned": ("r", "run", "migrate in checkpointed batches; escape stops at a safe point"),
    "migrating": ("r", "run", "resumes where it stopped; tickers already done are skipped"),
    "migrated": ("v", "verify", "compare every ticker's partitions with its legacy file"),
    "verified": ("a", "activate", "switch the collector and readers to the partitioned files"),
    "active": ("", "", "done; `parqctl migrate finalize --delete-legacy` removes legacy files"),
    "finalized": ("", "", "done: the legacy files are deleted"),
}
MAX_REPORTED = 8


class StepProgress(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepProgress)


# How a step ended.
DONE, STOPPED, REFUSED, FAILURES, CRASHED = "done", "stopped", "refused", "failures", "crashed"


class StepFinished(Message):
    def __init__(self, step: str, target: Target, lines: list[str], outcome: str) -> None:
        super().__init__()
        self.step, self.target, self.lines, self.outcome = step, target, lines, outcome


class StatusLoaded(Message):
    def __init__(
        self,
        rows: list[IntervalStatus],
        legacy: list[str],
        lock: run_lock.LockStatus | None,
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.rows, self.legacy, self.lock, self.error = rows, legacy, lock, error


class StepRefused(Exception):
    """A step that decided not to act (a disk projection past critical): its reason."""

    def __init__(self, lines: list[str], reason: str) -> None:
        super().__init__(reason)
        self.lines, self.reason = lines, reason


@dataclass(frozen=True)
class Target:
    """The venue and intervals a step acts on."""

    venue: Venue
    intervals: list[str] | None  # None: every planned interval of the venue

    @property
    def label(self) -> str:
        return f"{self.venue.id} {', '.join(self.intervals) if self.intervals else 'all intervals'}"


class MigrationScreen(Screen):
    HELP = """# Migration

Moves a venue/interval from the legacy layout (one file per ticker) to the partitioned
one (ticker/year/month), the way `parqctl migrate` does, step by step. Every key is on
the steps line under the table, the main ones in the footer:

1. `p` **plan**: pick the venue and the legacy intervals (writes `migration_plan.json`);
2. `e` **estimate** output size, disk level and duration on a real sample;
3. `d` **dry-run**: every file a run would write, conflicts, unreadable tickers;
4. `r` **run** (or resume) in checkpointed batches; `escape` stops at a safe point;
5. `v` **verify** every ticker's content against its legacy file;
6. `a` **activate**: the collector and readers switch to the partitioned files;
7. `b` **rollback** to legacy by metadata (partition files are kept);
8. `x` **drop** the selected target from the plan (one planned by mistake; refused once
   tickers are migrated there).

Steps act on the selected row. The rows follow the plan live: a run started here or by
`parqctl migrate run` in another terminal shows each checkpoint as it is written. `q`
during a run asks first: the run stops at a safe point before the console exits.

Legacy files are never modified. Deleting them (`parqctl migrate finalize
--delete-legacy`) and purging partition files (`parqctl migrate rollback
--purge-partitioned`) are deliberately CLI-only.
"""
    DEFAULT_CSS = """
    MigrationScreen #migration-table { height: auto; max-height: 12; }
    MigrationScreen #migration-steps { padding: 0 1; }
    MigrationScreen #migration-next { padding: 0 1; background: $panel; }
    MigrationScreen #migration-progress-line { padding: 0 1; height: 1; }
    MigrationScreen #migration-report { padding: 0 1; height: 1fr; }
    """
    # Every step's key is on the steps line above the wizard line (and in help and the
    # palette); the footer, which fits 80 columns, shows the main ones. While a step runs
    # the others are greyed out and escape (stop) takes the place of x (drop).
    BINDINGS = [
        Binding("p", "plan", "Plan"),
        Binding("e", "estimate", "Estimate", show=False),
        Binding("d", "dry_run", "Dry-run", show=False),
        Binding("r", "run", "Run"),
        Binding("v", "verify", "Verify"),
        Binding("a", "activate", "Activate"),
        Binding("b", "rollback", "Rollback", show=False),
        Binding("x", "drop", "Drop"),
        Binding("escape", "cancel", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[IntervalStatus] = []
        self.legacy: list[str] = []  # intervals with a legacy directory
        self.lock: run_lock.LockStatus | None = None
        self.cancel_token: CancelToken | None = None
        self.running: str | None = None
        self.running_target: Target | None = None
        self.quit_when_stopped = False
        # (venue id, interval) -> step -> how it ended, for the steps that ran to their end
        # in this session (a dry-run leaves no mark in the plan): the wizard moves on.
        self.done_here: dict[tuple[str, str], dict[str, str]] = {}
        self._seen: tuple | None = None  # what the last load read: plan and lock
        # The report pane holds a step's outcome once one started here; until then, the
        # failures the plan records for the selected row.
        self.step_reported = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="migration-table", cursor_type="row", zebra_stripes=True)
        # Engine messages, ticker names and paths are not ours: plain text, never markup.
        yield Static("", id="migration-steps", markup=False)
        yield Static("", id="migration-next", markup=False)
        yield ProgressBar(id="migration-progress", show_eta=False)
        yield Static("", id="migration-progress-line", markup=False)
        yield Static("", id="migration-report", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(DataTable).add_columns(
            "venue", "interval", "stage", "migrated", "failed", "rows", "verified"
        )
        self.load_status()
        self.set_interval(LIVE_POLL_S, self._poll)

    def on_screen_resume(self) -> None:
        self.load_status()

    def on_unmount(self) -> None:
        # Leaving the console stops a running step at its next safe point; the process
        # exits once the worker thread has checkpointed and released the lock.
        if self.cancel_token is not None:
            self.cancel_token.cancel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a step runs the other steps are greyed out (drop hidden); stop only then."""
        if action == "cancel":
            return self.running is not None
        if action == "drop" and self.running is not None:
            return False
        if action in STEP_ACTIONS:
            return None if self.running is not None else True
        return True

    # --- status, read live --------------------------------------------------------------

    def _poll(self) -> None:
        if self.app.screen is self:
            self.load_status(only_if_changed=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="migration-status")
    def load_status(self, only_if_changed: bool = False) -> None:
        root = self.app.workspace.root
        lock = run_lock.inspect(root)
        try:
            st = os.stat(root / MIGRATION_PLAN_FILE)
            plan_seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            plan_seen = None
        seen = (plan_seen, lock.state, lock.pid, lock.command, lock.token)
        if only_if_changed and seen == self._seen:
            return
        self._seen = seen
        ws = Workspace(root)
        try:
            legacy = legacy_intervals(ws)  # what `p` offers
            rows = migration_status(ws) if plan_seen is not None else []
        except ParqctlError as exc:
            self.post_message(StatusLoaded([], [], lock, exc.one_line()))
            return
        self.post_message(StatusLoaded(rows, legacy, lock))

    def on_status_loaded(self, message: StatusLoaded) -> None:
        self.rows, self.legacy, self.lock = message.rows, message.legacy, message.lock
        table = self.query_one(DataTable)
        row = table.cursor_coordinate.row
        table.clear()
        for s in message.rows:
            table.add_row(
                s.venue,
                s.interval,
                f"! {s.stage} (interrupted)" if s.interrupted else s.stage,
                f"{s.done:,}/{s.tickers:,}",
                f"✗ {s.failed}" if s.failed else "0",
                f"{s.partition_rows:,}" if s.partition_rows is not None else "-",
                "✓" if s.verified_at else "·",
            )
        if message.rows:
            table.move_cursor(row=min(row, len(message.rows) - 1))
        self._show_next(message.error)

    def _show_next(self, error: str | None = None) -> None:
        steps = self.query_one("#migration-steps", Static)
        line = self.query_one("#migration-next", Static)
        selected = self.selected()
        steps.update(self._steps_line(selected))
        if not self.step_reported:
            recorded = _recorded_failures(selected, self.app.workspace.root)
            self.query_one("#migration-report", Static).update(recorded)
        if error:
            line.update(console_wording(f"✗ {error}"))
            return
        if self.running is not None and self.running_target is not None:
            stopping = self.cancel_token is not None and self.cancel_token.cancelled
            line.update(
                f"Stopping {self.running} of {self.running_target.label} at a safe point…"
                if stopping
                else f"Running: {self.running} of {self.running_target.label}. escape stops "
                "it at a safe point (the tickers in progress are finished and checkpointed)"
            )
            return
        if self.lock is not None and self.lock.held:
            line.update(self._lock_line(self.lock))
            return
        if selected is None:
            offer = f" (legacy intervals: {', '.join(self.legacy)})" if self.legacy else ""
            line.update(f"No migration planned. Next: p picks the venue and intervals{offer}.")
            return
        if selected.interrupted:
            line.update(f"! {selected.interrupted} was interrupted: {selected.interrupted_hint}")
            return
        key, step, why = self._next_step(selected)
        line.update(f"Next: {key} {step}: {why}" if key else why[:1].upper() + why[1:])

    def _lock_line(self, lock: run_lock.LockStatus) -> str:
        # No age: the line is redrawn only when the lock or the plan changes.
        where = " ".join(
            part
            for part in (
                f"pid {lock.pid}" if lock.pid else "",
                f"on {lock.host}" if lock.host else "",
            )
            if part
        )
        if lock.command and "migrate" in lock.command:
            return (
                f"⟳ {lock.command} is running in another process ({where}): the rows follow "
                "its checkpoints; steps that write wait until it ends"
            )
        who = f"{lock.command or lock.writer or 'the collector'} ({where or 'unknown holder'})"
        return f"The run lock is held by {who}: steps that write wait until it is free (screen 3)"

    def _next_step(self, s: IntervalStatus) -> tuple[str, str, str]:
        """The step after the furthest one done: a planned interval is estimated, then
        dry-run, then run (a step done skips the ones before it)."""
        done = self.done_here.get((s.venue, s.interval), {})
        if s.stage == "planned" and done.get("dry-run") == FAILURES:
            return (
                "r",
                "run",
                "the dry-run found tickers that would fail (see the report): quarantine or fix "
                "their legacy files first (screen 6), or run and deal with them after",
            )
        if s.stage == "planned" and "dry-run" not in done:
            if s.estimated_at or "estimate" in done:
                return (
                    "d",
                    "dry-run",
                    "list every file a run would write, conflicts, unreadable files",
                )
            return "e", "estimate", "measure the output size and duration on a sample"
        if s.stage == "migrating" and s.failed and not s.pending:
            return (
                "r",
                "run",
                f"{s.failed} ticker(s) failed (see the report): fix or quarantine their legacy "
                "files (6, then Q on each), then resume (r)",
            )
        return NEXT_STEP.get(s.stage, ("", "", s.stage))

    def _steps_line(self, s: IntervalStatus | None) -> str:
        """``us:yahoo 1d: p plan ✓ → e estimate ✓ → d dry-run · → r run … → ...``; the
        target and the other keys go to a second line where one does not hold it all."""
        extra = "b rollback · x drop"
        if s is None:
            steps, target = " → ".join(f"{k} {name}" for k, name in STEPS), "Steps"
        else:
            steps, target = self._marked_steps(s), f"{s.venue} {s.interval}"
        line = f"{target}: {steps}   {extra}"
        width = self.query_one("#migration-steps", Static).size.width
        return line if not width or len(line) <= width else f"{steps}\n{target} · {extra}"

    def _marked_steps(self, s: IntervalStatus) -> str:
        done = self.done_here.get((s.venue, s.interval), {})
        reached = STAGE_REACHED.get(s.stage, 0)
        marks = []
        for key, name in STEPS:
            if self.running == name and self._runs_on(s):
                mark = "…"
            elif name == "estimate":
                mark = "✓" if s.estimated_at or name in done else "·"
            elif name == "dry-run":  # "!": some tickers would fail
                mark = {DONE: "✓", FAILURES: "!"}.get(done.get(name, ""), "·")
            elif name == "run" and s.stage == "migrating":
                mark = "…"
            else:
                mark = "✓" if STEP_ORDER[name] < reached else "·"
            marks.append(f"{key} {name} {mark}")
        return " → ".join(marks)

    def on_resize(self) -> None:
        self._show_next()

    def _runs_on(self, s: IntervalStatus) -> bool:
        t = self.running_target
        return (
            t is not None
            and t.venue.id == s.venue
            and (not t.intervals or s.interval in t.intervals)
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_next()

    def selected(self) -> IntervalStatus | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_coordinate.row >= len(self.rows):
            return None
        return self.rows[table.cursor_coordinate.row]

    def _target(self) -> Target | None:
        selected = self.selected()
        if selected is None:
            self.notify("plan a migration first: p", severity="warning")
            return None
        return Target(Venue.parse(selected.venue), [selected.interval])

    # --- quitting -----------------------------------------------------------------------

    def guard_quit(self) -> bool:
        """Called by the app's quit: while a step runs, ask first (True: asked)."""
        if self.running is None:
            return False
        if self.quit_when_stopped:
            self.notify(f"stopping {self.running} at a safe point; the console then quits")
            return True
        body = (
            f"{self.running.capitalize()} of {self.running_target.label if self.running_target else ''} "
            "is in progress. Quitting stops it at a safe point: the tickers in progress are "
            "finished and checkpointed, the run lock is released, then the console exits. "
            "r resumes it next time."
        )

        def answered(ok: bool | None) -> None:
            if ok and self.running is not None:
                self.quit_when_stopped = True
                self.action_cancel()
            elif ok:
                self.app.exit()

        self.app.push_screen(
            ConfirmScreen(f"Stop the {self.running} and quit?", body, "Stop and quit"), answered
        )
        return True

    # --- actions ------------------------------------------------------------------------

    def action_plan(self) -> None:
        if self._busy():
            return
        if not self.legacy:
            self.notify("no legacy bar files to migrate", severity="warning")
            return
        from screens.migration_plan import PlanDialog

        planned: dict[str, set[str]] = {}
        for s in self.rows:
            planned.setdefault(s.venue, set()).add(s.interval)
        venue = Venue.parse(self.rows[0].venue) if self.rows else LEGACY_VENUE

        def chosen(choice) -> None:
            if choice is not None:
                self._start("plan", Target(choice.venue, choice.intervals))

        self.app.push_screen(PlanDialog(self.legacy, planned, venue), chosen)

    def action_estimate(self) -> None:
        if target := self._target():
            self._start("estimate", target)

    def action_dry_run(self) -> None:
        if target := self._target():
            self._start("dry-run", target)

    def action_run(self) -> None:
        selected = self.selected()
        if (target := self._target()) is None or selected is None:
            return
        body = (
            f"Migrate {selected.pending:,} tickers of {target.label} in checkpointed batches "
            f"({selected.done:,} already done are skipped).\n\n"
            "Writes partition files under data/ through .parqctl/staging/ and records each "
            "batch in migration_plan.json. Legacy files are read, never modified. Holds the "
            "run lock: the collector cannot run meanwhile. escape stops at a safe point; r "
            "resumes."
        )
        self._confirm("Run the migration?", body, "Run", "run", target)

    def action_verify(self) -> None:
        if target := self._target():
            self._start("verify", target)

    def action_activate(self) -> None:
        if (target := self._target()) is None:
            return
        body = (
            f"Activate {target.label}: writes a partitioned storage block for each ticker of "
            "the interval into tickers.json and turns on the partitioned flags in "
            "storage_config.json (old values are recorded in the plan).\n\n"
            "From then on the collector writes and readers read the partitioned files. "
            "Only after a passing verify with unchanged legacy files; b rolls it back."
        )
        self._confirm("Activate the partitioned layout?", body, "Activate", "activate", target)

    def action_rollback(self) -> None:
        if (target := self._target()) is None:
            return
        body = (
            f"Roll {target.label} back to the legacy layout: removes the storage blocks this "
            "migration set in tickers.json and restores storage_config.json.\n\n"
            "No file is deleted: partition files stay (purge them with `parqctl migrate "
            "rollback --purge-partitioned`). Refused if the legacy files are gone."
        )
        self._confirm("Roll back to legacy?", body, "Roll back", "rollback", target)

    def action_drop(self) -> None:
        if (target := self._target()) is None:
            return
        body = (
            f"Remove {target.label} from migration_plan.json: for a target planned by "
            "mistake (a mistyped venue, an interval not to migrate). No bar file is touched.\n\n"
            "Refused once tickers are migrated there: the plan is what tells which partition "
            "files are the migration's own."
        )
        self._confirm("Drop the target from the plan?", body, "Drop", "drop", target)

    def action_cancel(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()
            self.query_one("#migration-progress-line", Static).update(
                f"stopping {self.running} at a safe point…"
            )
            self._show_next()
        else:
            self.app.action_back()  # nothing to stop: escape goes back, as everywhere

    def _confirm(self, title: str, body: str, label: str, step: str, target: Target) -> None:
        if self._busy():
            return
        self.app.push_screen(
            ConfirmScreen(title, body, label), lambda ok: ok and self._start(step, target)
        )

    def _busy(self) -> bool:
        if self.running is not None:
            self.notify(f"{self.running} is running: escape stops it", severity="warning")
            return True
        return False

    def _start(self, step: str, target: Target) -> None:
        if self._busy():
            return
        self.running, self.running_target = step, target
        self.cancel_token = CancelToken()
        self.refresh_bindings()
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.query_one("#migration-progress-line", Static).update(f"{step} {target.label}…")
        self.query_one("#migration-report", Static).update("")
        self.step_reported = True
        self._show_next()
        self.run_step(step, target, self.cancel_token)

    @work(thread=True, exclusive=True, exit_on_error=False, group="migration-step")
    def run_step(self, step: str, target: Target, token: CancelToken) -> None:
        ws = Workspace(self.app.workspace.root)
        progress = lambda p: self.post_message(StepProgress(p))  # noqa: E731
        try:
            lines, outcome = STEP_RUNNERS[step](ws, target, progress, token)
        except JobCancelled:
            lines, outcome = ["stopped at a safe point: the work so far is kept"], STOPPED
        except StepRefused as exc:
            lines, outcome = [*exc.lines, f"refused: {exc.reason}"], REFUSED
        except ParqctlError as exc:
            lines, outcome = [f"refused: {exc.one_line()}"], REFUSED
        self.post_message(StepFinished(step, target, lines, outcome))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A bug, not a user's mistake: say so and free the screen for the next step.
        if event.worker.group == "migration-step" and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.post_message(
                StepFinished(
                    self.running or "step",
                    self.running_target or Target(LEGACY_VENUE, None),
                    [f"✗ failed: {error!r}"],
                    CRASHED,
                )
            )

    def on_step_progress(self, message: StepProgress) -> None:
        p = message.progress
        self.query_one(ProgressBar).update(total=p.total or None, progress=p.done)
        # A resumed run counts only what it has left; the table counts every ticker.
        left = " left" if self.running == "run" else ""
        parts = [f"{p.job}: {p.done:,}/{p.total:,} {p.unit}{left}" if p.total else p.job]
        if p.rows:
            parts.append(f"{p.rows:,} rows")
        if p.rows_per_s:
            parts.append(f"{p.rows_per_s:,.0f} rows/s")
        if p.eta_s is not None:
            parts.append(f"ETA {human_age(p.eta_s)}")
        if self.cancel_token is not None and self.cancel_token.cancelled:
            parts.append("stopping at a safe point…")
        self.query_one("#migration-progress-line", Static).update(" · ".join(parts))

    def on_step_finished(self, message: StepFinished) -> None:
        step, label = message.step, message.target.label
        self.running = self.running_target = self.cancel_token = None
        self.refresh_bindings()
        if message.outcome in (DONE, FAILURES):
            for interval in message.target.intervals or []:
                key = (message.target.venue.id, interval)
                self.done_here.setdefault(key, {})[step] = message.outcome
        self.query_one(ProgressBar).display = False
        # The engine's refusals and advice name CLI commands: the console's keys instead.
        root = self.app.workspace.root
        lines = [console_wording(_in_workspace(line, root)) for line in message.lines]
        self.query_one("#migration-progress-line", Static).update(
            _outcome_line(step, label, message.outcome, lines)
        )
        self.query_one("#migration-report", Static).update("\n".join(lines))
        self._show_next()  # at once; the rows follow when the plan is read again
        self.load_status()
        self.app.refresh_health()
        if self.quit_when_stopped:
            self.app.exit()


# --- the steps: engine call, then the lines the report shows --------------------------

# A step: (workspace, target, progress callback, cancel token) -> (report lines, outcome).
StepRunner = Callable[
    [Workspace, Target, Callable[[Progress], None], CancelToken], tuple[list[str], str]
]


def _plan(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.plan import plan_migration

    result = plan_migration(ws, target.venue, target.intervals)
    lines = [f"{'created' if result.created else 'extended'} {result.path.name}"]
    lines += [
        f"  {i.interval}: {i.action}, {i.tickers:,} tickers ({i.legacy_path} → {i.partition_path})"
        for i in result.intervals
    ]
    return lines, DONE


def _estimate(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.estimate import estimate_migration

    e = estimate_migration(ws, target.venue, target.intervals, token=token)
    lines = [
        f"{e.tickers:,} tickers, {e.rows:,} rows, {human_bytes(e.legacy_bytes)} legacy",
        f"projected: {human_bytes(e.projected_bytes)} in {e.files:,} files "
        f"(measured on {e.sample_tickers} tickers), about {human_age(e.projected_seconds)} "
        f"with {e.workers} workers",
        f"disk after: {e.percent_after:.1f}% used ({e.level_after}; critical at {e.critical:.0f}%)",
    ]
    if e.unreadable:
        lines.append(f"unreadable: {', '.join(e.unreadable[:MAX_REPORTED])}")
    if e.refused:
        raise StepRefused(lines, "a run would cross the critical watermark: free space first")
    return lines, DONE


def _dry_run(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.dryrun import dry_run

    results = dry_run(ws, target.venue, target.intervals, progress=progress, token=token)
    lines, failed = [], False
    for r in results:
        ok = [o for o in r.outcomes if o.ok]
        bad = [o for o in r.outcomes if not o.ok]
        merges = sum(1 for o in ok for f in o.files if f.action == "merge")
        lines.append(
            f"{r.interval}: {len(r.outcomes):,} tickers → {sum(len(o.files) for o in ok):,} "
            f"files ({merges:,} merged with existing files); {len(bad)} would fail"
        )
        lines += [f"  ✗ {o.ticker}: {o.kind}: {o.message}" for o in bad[:MAX_REPORTED]]
        failed |= bool(bad)
    return lines, FAILURES if failed else DONE


def _run(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.run import run_migration

    result = run_migration(ws, target.venue, target.intervals, progress=progress, token=token)
    lines = [
        f"{i.interval}: {i.migrated:,} migrated, {i.skipped:,} skipped, {i.rows:,} rows, "
        f"{i.files:,} files, {len(i.failures)} failed"
        for i in result.intervals
    ]
    lines += [f"  ✗ {f.ticker}: {f.kind}: {f.message}" for f in result.failures[:MAX_REPORTED]]
    if result.cancelled:
        lines.append("stopped at a safe point: r resumes")
        return lines, STOPPED
    if result.failures:
        return lines, FAILURES
    lines.append("next: v verifies the content")
    return lines, DONE


def _verify(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.verify import verify_migration

    result = verify_migration(ws, target.venue, target.intervals, progress=progress, token=token)
    lines = []
    for i in result.intervals:
        lines.append(
            f"{i.interval}: {'✓' if i.ok else '✗'} {i.passed:,}/{i.tickers:,} tickers passed, "
            f"{i.rows:,} rows in {i.files:,} files"
        )
        lines += [f"  ✗ {f.ticker}: {'; '.join(f.problems)}" for f in i.failures[:MAX_REPORTED]]
    return lines, DONE if result.ok else FAILURES


def _activate(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.activate import activate_migration

    result = activate_migration(ws, target.venue, target.intervals)
    lines = []
    for i in result.intervals:
        if i.action == "already active":
            lines.append(f"{i.interval}: already active; nothing changed")
            continue
        without = f", {len(i.without_legacy):,} with no legacy file" if i.without_legacy else ""
        lines.append(
            f"{i.interval}: {i.action}; {i.blocks_set:,} tickers routed to the partitioned "
            f"layout: {i.migrated:,} migrated{without}"
        )
        if i.without_legacy:
            lines.append(
                f"  no legacy file, new bars go to the partitioned layout: "
                f"{', '.join(i.without_legacy[:MAX_REPORTED])}"
            )
    if result.switch_set:
        lines.append(f"storage_config.json now routes {result.venue} to the partitioned layout")
    return lines, DONE


def _rollback(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.rollback import rollback_migration

    result = rollback_migration(ws, target.venue, target.intervals)
    lines = [
        f"{', '.join(result.intervals)}: back to legacy; {result.blocks_removed:,} storage "
        "blocks removed" + ("; storage_config.json restored" if result.switch_restored else ""),
        "partition files are kept",
    ]
    return lines, DONE


def _drop(ws: Workspace, target: Target, progress, token) -> tuple[list[str], str]:
    from core.migration.plan import drop_targets

    result = drop_targets(ws, target.venue, target.intervals)
    gone = f"; {result.venue} has no target left" if result.venue_dropped else ""
    return [f"dropped {result.venue} {', '.join(result.intervals)} from the plan{gone}"], DONE


STEP_RUNNERS: dict[str, StepRunner] = {
    "plan": _plan,
    "estimate": _estimate,
    "dry-run": _dry_run,
    "run": _run,
    "verify": _verify,
    "activate": _activate,
    "rollback": _rollback,
    "drop": _drop,
}
STEP_ACTIONS = {"plan", "estimate", "dry_run", "run", "verify", "activate", "rollback", "drop"}
STEP_ORDER = {name: i for i, (_, name) in enumerate(STEPS)}
# How many steps of STEPS a stage has completed (estimate and dry-run are marked apart).
STAGE_REACHED = {
    "planned": STEP_ORDER["plan"] + 1,
    "migrating": STEP_ORDER["plan"] + 1,
    "migrated": STEP_ORDER["run"] + 1,
    "verified": STEP_ORDER["verify"] + 1,
    "active": STEP_ORDER["activate"] + 1,
    "finalized": STEP_ORDER["activate"] + 1,
}


def _in_workspace(text: str, root: Path) -> str:
    """``text`` shown with the workspace's paths relative to it (the header says where
    it is), and its control characters as escapes."""
    return printable(text.replace(f"{root}{os.sep}", ""), lines=True)


def _recorded_failures(s: IntervalStatus | None, root: Path) -> str:
    """The tickers the plan records as failed for ``s``, and why (``migrate status``'s
    list): what a run here would have reported, for a run made elsewhere or earlier."""
    if s is None or not s.failures:
        return ""
    lines = [
        f"{s.failed:,} ticker(s) of {s.venue} {s.interval} failed to migrate (r retries them):"
    ]
    lines += [
        _in_workspace(f"  ✗ {f.get('ticker')}: {f.get('kind')}: {f.get('error')}", root)
        for f in s.failures[:MAX_REPORTED]
    ]
    if len(s.failures) > MAX_REPORTED:
        lines.append(f"  and {len(s.failures) - MAX_REPORTED:,} more")
    return "\n".join(lines)


def _outcome_line(step: str, label: str, outcome: str, lines: list[str]) -> str:
    """The one line that says how a step ended: never "finished" for a stop or refusal."""
    if outcome == DONE:
        return f"✓ {step} finished: {label}"
    if outcome == STOPPED:
        resume = ": r resumes" if step == "run" else ""
        return f"■ {step} of {label} stopped at a safe point{resume}"
    if outcome == REFUSED:
        return f"✗ {step} {lines[-1]}"
    if outcome == FAILURES:
        return f"! {step} of {label} finished with failures: see below"
    return f"✗ {step} failed: a bug, see below"
