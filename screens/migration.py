"""Migration: the guided move from the legacy layout to the partitioned one.

One row per planned venue/interval with its stage; the wizard line says which step comes
next and its key. Every step is the engine's own (``core.migration``), run in a thread
worker with progress and a cancel token: the screen only confirms, starts and reports.
Deleting the legacy files (finalize) and purging partition files stay CLI-only steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static
from textual.worker import Worker, WorkerState

from core.errors import ParqctlError
from core.jobs import CancelToken, JobCancelled, Progress
from core.migration.plan import legacy_intervals
from core.migration.status import IntervalStatus, migration_status
from core.store.layout import Venue
from core.store.metadata import MIGRATION_PLAN_FILE
from core.store.workspace import Workspace
from tui.text import human_age, human_bytes
from tui.widgets.confirm import ConfirmScreen

DEFAULT_VENUE = Venue("us", "yahoo")
STEPS = ("plan", "run", "verify", "activate")
# What comes after each stage: (key, step, why).
NEXT_STEP = {
    "planned": ("e", "estimate", "measure the output size and duration, then d and r"),
    "migrating": ("r", "run", "resume the run: tickers already done are skipped"),
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


class StepFinished(Message):
    def __init__(self, step: str, lines: list[str], failed: bool) -> None:
        super().__init__()
        self.step, self.lines, self.failed = step, lines, failed


class StatusLoaded(Message):
    def __init__(
        self, rows: list[IntervalStatus], legacy: list[str], error: str | None = None
    ) -> None:
        super().__init__()
        self.rows, self.legacy, self.error = rows, legacy, error


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
one (ticker/year/month), the way `parqctl migrate` does, step by step:

1. `p` **plan** the legacy intervals (creates or extends `migration_plan.json`);
2. `e` **estimate** output size, disk level and duration on a real sample;
3. `d` **dry-run**: every file a run would write, conflicts, unreadable tickers;
4. `r` **run** (or resume) in checkpointed batches; `escape` stops at a safe point;
5. `v` **verify** every ticker's content against its legacy file;
6. `a` **activate**: the collector and readers switch to the partitioned files;
7. `b` **rollback** to legacy by metadata (partition files are kept).

Steps act on the selected row. Legacy files are never modified. Deleting them
(`parqctl migrate finalize --delete-legacy`) and purging partition files
(`parqctl migrate rollback --purge-partitioned`) are deliberately CLI-only.
"""
    DEFAULT_CSS = """
    MigrationScreen #migration-table { height: auto; max-height: 12; }
    MigrationScreen #migration-next { padding: 0 1; background: $panel; }
    MigrationScreen #migration-progress-line { padding: 0 1; height: 1; }
    MigrationScreen #migration-report { padding: 0 1; height: 1fr; }
    """
    # The footer fits 80 columns; the wizard line names the key of every next step, and
    # help and the command palette list them all.
    BINDINGS = [
        Binding("p", "plan", "Plan"),
        Binding("e", "estimate", "Estimate", show=False),
        Binding("d", "dry_run", "Dry-run", show=False),
        Binding("r", "run", "Run"),
        Binding("v", "verify", "Verify"),
        Binding("a", "activate", "Activate"),
        Binding("b", "rollback", "Rollback", show=False),
        Binding("escape", "cancel", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[IntervalStatus] = []
        self.legacy: list[str] = []  # intervals with a legacy directory
        self.cancel_token: CancelToken | None = None
        self.running: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="migration-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="migration-next")
        yield ProgressBar(id="migration-progress", show_eta=False)
        yield Static("", id="migration-progress-line")
        yield Static("", id="migration-report")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(DataTable).add_columns(
            "venue", "interval", "stage", "tickers done", "failed", "rows", "verified"
        )
        self.load_status()

    def on_screen_resume(self) -> None:
        if self.running is None:
            self.load_status()

    def on_unmount(self) -> None:
        # Leaving the console stops a running step at its next safe point; the process
        # exits once the worker thread has checkpointed and released the lock.
        if self.cancel_token is not None:
            self.cancel_token.cancel()

    # --- status -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="migration-status")
    def load_status(self) -> None:
        ws = Workspace(self.app.workspace.root)
        legacy = legacy_intervals(ws)  # what `p` would plan
        if not (ws.root / MIGRATION_PLAN_FILE).exists():
            self.post_message(StatusLoaded([], legacy))
            return
        try:
            rows = migration_status(ws)
        except ParqctlError as exc:
            self.post_message(StatusLoaded([], legacy, exc.one_line()))
            return
        self.post_message(StatusLoaded(rows, legacy))

    def on_status_loaded(self, message: StatusLoaded) -> None:
        self.rows, self.legacy = message.rows, message.legacy
        table = self.query_one(DataTable)
        row = table.cursor_coordinate.row
        table.clear()
        for s in message.rows:
            table.add_row(
                s.venue,
                s.interval,
                f"! {s.stage} (interrupted)" if s.interrupted else s.stage,
                f"{s.done:,}/{s.jobs_total:,}",
                f"✗ {s.failed}" if s.failed else "0",
                f"{s.partition_rows:,}" if s.partition_rows is not None else "-",
                "✓" if s.verified_at else "·",
            )
        if message.rows:
            table.move_cursor(row=min(row, len(message.rows) - 1))
        self._show_next(message.error)

    def _show_next(self, error: str | None = None) -> None:
        line = self.query_one("#migration-next", Static)
        if error:
            line.update(f"✗ {error}")
            return
        selected = self.selected()
        if selected is None:
            line.update("No migration planned. Next: p plans every legacy interval for us:yahoo.")
            return
        if selected.interrupted:
            line.update(f"! {selected.interrupted} was interrupted: {selected.interrupted_hint}")
            return
        key, step, why = NEXT_STEP.get(selected.stage, ("", "", ""))
        if selected.stage == "migrating" and selected.failed and not selected.pending:
            why = (
                f"{selected.failed} ticker(s) failed (see the report): fix or quarantine their "
                "legacy files (6, then Q on each), then resume (r)"
            )
        progress = _stage_line(selected.stage)
        line.update(
            f"{progress}\nNext: {key} {step}: {why}" if key else f"{progress}\n{why.capitalize()}"
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

    # --- actions ------------------------------------------------------------------------

    def action_plan(self) -> None:
        intervals = self.legacy
        if not intervals:
            self.notify("no legacy bar files to migrate", severity="warning")
            return
        venue = Venue.parse(self.rows[0].venue) if self.rows else DEFAULT_VENUE
        body = (
            f"Plan the migration of the legacy intervals {', '.join(intervals)} to "
            f"{venue.id} (data/{venue.market}/{venue.source}/stocks_<interval>).\n\n"
            "Writes migration_plan.json only (intervals already planned are kept). "
            "No bar file is written."
        )
        self._confirm("Plan the migration?", body, "Plan", "plan", Target(venue, intervals))

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
            f"Activate {target.label}: writes a partitioned storage block for each migrated "
            "ticker into tickers.json and turns on the partitioned flags in "
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

    def action_cancel(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()
            self.query_one("#migration-progress-line", Static).update(
                f"stopping {self.running} at a safe point…"
            )
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
        self.running = step
        self.cancel_token = CancelToken()
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.query_one("#migration-progress-line", Static).update(f"{step} {target.label}…")
        self.run_step(step, target, self.cancel_token)

    @work(thread=True, exclusive=True, exit_on_error=False, group="migration-step")
    def run_step(self, step: str, target: Target, token: CancelToken) -> None:
        ws = Workspace(self.app.workspace.root)
        progress = lambda p: self.post_message(StepProgress(p))  # noqa: E731
        try:
            lines, failed = STEP_RUNNERS[step](ws, target, progress, token)
        except JobCancelled as exc:
            lines, failed = [f"{step} stopped: {exc}"], True
        except ParqctlError as exc:
            lines, failed = [f"✗ {exc.one_line()}"], True
        self.post_message(StepFinished(step, lines, failed))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A bug, not a user's mistake: say so and free the screen for the next step.
        if event.worker.group == "migration-step" and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.post_message(
                StepFinished(self.running or "step", [f"✗ failed: {error!r}"], failed=True)
            )

    def on_step_progress(self, message: StepProgress) -> None:
        p = message.progress
        self.query_one(ProgressBar).update(total=p.total or None, progress=p.done)
        parts = [f"{p.job}: {p.done:,}/{p.total:,} {p.unit}" if p.total else p.job]
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
        self.running = None
        self.cancel_token = None
        self.query_one(ProgressBar).display = False
        self.query_one("#migration-progress-line", Static).update(
            f"{'✗' if message.failed else '✓'} {message.step} finished"
        )
        self.query_one("#migration-report", Static).update("\n".join(message.lines))
        self.load_status()
        self.app.refresh_health()


# --- the steps: engine call, then the lines the report shows --------------------------

# A step: (workspace, target, progress callback, cancel token) -> (report lines, failed).
StepRunner = Callable[
    [Workspace, Target, Callable[[Progress], None], CancelToken], tuple[list[str], bool]
]


def _plan(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
    from core.migration.plan import plan_migration

    result = plan_migration(ws, target.venue, target.intervals)
    lines = [f"{'created' if result.created else 'extended'} {result.path.name}"]
    lines += [
        f"  {i.interval}: {i.action}, {i.tickers:,} tickers ({i.legacy_path} → {i.partition_path})"
        for i in result.intervals
    ]
    return lines, False


def _estimate(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
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
        lines.append("✗ a run would cross the critical watermark: free space first")
    return lines, e.refused


def _dry_run(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
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
    return lines, failed


def _run(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
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
    elif not result.failures:
        lines.append("next: v verifies the content")
    return lines, result.cancelled or bool(result.failures)


def _verify(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
    from core.migration.verify import verify_migration

    result = verify_migration(ws, target.venue, target.intervals, progress=progress, token=token)
    lines = []
    for i in result.intervals:
        lines.append(
            f"{i.interval}: {'✓' if i.ok else '✗'} {i.passed:,}/{i.tickers:,} tickers passed, "
            f"{i.rows:,} rows in {i.files:,} files"
        )
        lines += [f"  ✗ {f.ticker}: {'; '.join(f.problems)}" for f in i.failures[:MAX_REPORTED]]
    return lines, not result.ok


def _activate(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
    from core.migration.activate import activate_migration

    result = activate_migration(ws, target.venue, target.intervals)
    lines = [f"{i.interval}: {i.action}, {i.blocks_set:,} storage blocks" for i in result.intervals]
    if result.switch_set:
        lines.append(f"storage_config.json now routes {result.venue} to the partitioned layout")
    return lines, False


def _rollback(ws: Workspace, target: Target, progress, token) -> tuple[list[str], bool]:
    from core.migration.rollback import rollback_migration

    result = rollback_migration(ws, target.venue, target.intervals)
    lines = [
        f"{', '.join(result.intervals)}: back to legacy; {result.blocks_removed:,} storage "
        "blocks removed" + ("; storage_config.json restored" if result.switch_restored else ""),
        "partition files are kept",
    ]
    return lines, False


STEP_RUNNERS: dict[str, StepRunner] = {
    "plan": _plan,
    "estimate": _estimate,
    "dry-run": _dry_run,
    "run": _run,
    "verify": _verify,
    "activate": _activate,
    "rollback": _rollback,
}


def _stage_line(stage: str) -> str:
    """``plan ✓ → run ✓ → verify · → activate ·`` for a stage."""
    reached = {
        "planned": 1,
        "migrating": 1,
        "migrated": 2,
        "verified": 3,
        "active": 4,
        "finalized": 4,
    }.get(stage, 0)
    marks = [
        f"{name} {'✓' if i < reached else ('…' if stage == 'migrating' and name == 'run' else '·')}"
        for i, name in enumerate(STEPS)
    ]
    return " → ".join(marks)
