"""The one-screen summary an operator asks for first, with a monitoring-style verdict."""

from __future__ import annotations

import dataclasses
import enum
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.availability import gap_watch
from core.disk import history as disk_history
from core.disk.usage import Filesystem, workspace_filesystems
from core.disk.watermarks import DiskStatus, Level, disk_status
from core.errors import ParqctlError
from core.integrity import findings, quarantine
from core.jobs import CancelToken, ProgressCallback
from core.migration.status import migration_status
from core.safety import run_lock
from core.store.metadata import MIGRATION_PLAN_FILE
from core.store.routing import routed_mode
from core.store.workspace import DatasetInventory, DatasetLink, Unreadable, Workspace, inventory

if TYPE_CHECKING:  # imported when computed: it loads numpy, whose threads forbid a fork
    from core.availability import freshness as fresh

# A projected crossing of the critical watermark this close is worth a warning today.
PROJECTION_WARN_DAYS = 7
UNREADABLE_NAMED = 3  # unreadable directories named in the problem line; the rest counted


class Verdict(enum.IntEnum):
    """Exit codes of the monitoring plugin convention."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Problem:
    verdict: Verdict
    text: str


@dataclass(frozen=True)
class MigrationProgress:
    """One planned venue and interval: tickers migrated, failed, and of how many."""

    venue: str
    interval: str
    status: str  # the collector's: pending, migrating, complete
    completed: int
    total: int
    failed: int = 0
    stage: str = ""  # parqctl's (core.migration.status): planned, migrating, migrated, ...

    @property
    def ratio(self) -> float:
        if self.total > 0:
            return min(self.completed / self.total, 1.0)
        return 1.0 if self.status == "complete" else 0.0

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down: 100 only when every ticker is done."""
        if self.total > 0 and self.completed < self.total:
            return min(100 * self.completed // self.total, 99)
        return round(100 * self.ratio)


@dataclass
class HealthReport:
    root: Path
    tickers: int
    intervals: list[str]
    datasets: list[DatasetInventory]
    storage_modes: dict[str, dict[str, int]]  # interval -> {"legacy": n, "partitioned": n}
    links: list[DatasetLink]  # dataset directories that are symbolic links
    lock: run_lock.LockStatus
    disk: DiskStatus  # the filesystem of the workspace root
    problems: list[Problem] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    projections: dict[str, disk_history.Projection] = field(default_factory=dict)  # by mount
    quarantine: quarantine.QuarantineTotals | None = None
    integrity: findings.IntegritySummary | None = None
    migration: list[MigrationProgress] = field(default_factory=list)
    gaps: gap_watch.GapWatch | None = None  # None until the workspace has a file index
    gaps_error: str | None = None
    freshness: fresh.Freshness | None = None  # computed with the gaps, from the same index
    freshness_error: str | None = None
    # (size, mtime_ns) of migration_plan.json when ``migration`` was read from it
    migration_plan_stamp: tuple[int, int] | None = None
    disk_history_error: str | None = None
    # legacy home -> interval -> tickers whose only legacy file the collector never reads
    stranded: dict[str, dict[str, int]] = field(default_factory=dict)
    lock_lost: dict[str, Any] | None = None  # the last writer whose lock was taken from it
    # Directories of the data tree that could not be read (permissions, I/O errors): what
    # they hold is not counted; the rest of the report is.
    unreadable: list[Unreadable] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)
    # How old the dataset figures are: they come from the file index, as of its last
    # refresh (hot months, new tickers, parqctl's writes) and its last full scan (every
    # file); None when there is no index and the datasets were walked now.
    index_refreshed_at: float | None = None
    index_full_scan_at: float | None = None

    @property
    def verdict(self) -> Verdict:
        return max((p.verdict for p in self.problems), default=Verdict.OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.root),
            "verdict": self.verdict.name,
            "problems": [{"verdict": p.verdict.name, "text": p.text} for p in self.problems],
            "tickers": self.tickers,
            "intervals": self.intervals,
            "datasets": [
                {
                    "label": inv.dataset.label,
                    "kind": inv.dataset.kind,
                    "interval": inv.dataset.interval,
                    "venue": inv.dataset.venue.id if inv.dataset.venue else None,
                    "path": str(inv.dataset.path.relative_to(self.root)),
                    "tickers": len(inv.groups),
                    "files": inv.files,
                    "bytes": inv.bytes,
                    "stray_files": [str(p.relative_to(self.root)) for p in inv.stray_files],
                    "unreadable": [_relative(u.path, self.root) for u in inv.unreadable],
                }
                for inv in self.datasets
            ],
            "unreadable": [
                {"path": _relative(u.path, self.root), "reason": u.reason} for u in self.unreadable
            ],
            "storage_modes": self.storage_modes,
            "stranded_legacy": self.stranded,
            "dataset_links": [
                {
                    "path": _relative(link.path, self.root),
                    "target": str(link.target),
                    "declared": link.declared,
                }
                for link in self.links
            ],
            "lock": lock_as_dict(self.lock),
            "lock_lost": self.lock_lost,
            "disk": disk_as_dict(self.disk),
            "filesystems": [
                {
                    "mount": str(fs.mount),
                    "holds": list(fs.labels),
                    **disk_as_dict(fs.status),
                    "projection": self.projections[str(fs.mount)].as_dict()
                    if str(fs.mount) in self.projections
                    else None,
                }
                for fs in self.filesystems
            ],
            "disk_history_error": self.disk_history_error,
            "quarantine": dataclasses.asdict(self.quarantine) if self.quarantine else None,
            "integrity": dataclasses.asdict(self.integrity) if self.integrity else None,
            "migration": [
                {**dataclasses.asdict(m), "ratio": round(m.ratio, 4), "percent": m.percent}
                for m in self.migration
            ],
            "gaps": dataclasses.asdict(self.gaps) if self.gaps else None,
            "gaps_error": self.gaps_error,
            "freshness": freshness_as_dict(self.freshness) if self.freshness else None,
            "freshness_error": self.freshness_error,
            "checked_at": self.checked_at,
            "index": {
                "refreshed_at": self.index_refreshed_at,
                "full_scan_at": self.index_full_scan_at,
            },
        }


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def disk_as_dict(status: DiskStatus) -> dict[str, Any]:
    return {
        "path": str(status.path),
        "total": status.total,
        "used": status.used,
        "free": status.free,
        "percent_used": round(status.percent_used, 2),
        "level": status.level.name,
        "watermarks": vars(status.watermarks),
    }


def freshness_as_dict(found: fresh.Freshness) -> dict[str, Any]:
    return {
        "stalled_after_sessions": found.stalled_after_sessions,
        "intervals": [
            {
                "interval": iv.interval,
                "calendar": iv.calendar,
                "newest_bar": iv.newest_bar.isoformat() if iv.newest_bar else None,
                "last_session": iv.last_session.isoformat() if iv.last_session else None,
                "sessions_behind": iv.sessions_behind,
                "stalled": iv.stalled,
                "last_written": iv.last_written,
                "summary": iv.summary(),
            }
            for iv in found.intervals
        ],
    }


def lock_as_dict(status: run_lock.LockStatus) -> dict[str, Any]:
    fields = dataclasses.asdict(status)
    return {k: (v.name if isinstance(v, enum.Enum) else v) for k, v in fields.items()}


def storage_modes(ws: Workspace) -> dict[str, dict[str, int]]:
    """Per interval, how many tickers of tickers.json the collector routes to each layout
    (every interval of intervals.json counts for every ticker, as the collector's updater
    fetches them all)."""
    modes: dict[str, Counter[str]] = {iv: Counter() for iv in ws.intervals}
    for entry in ws.tickers.entries():
        for interval in dict.fromkeys([*ws.intervals, *entry.interval_names()]):
            modes.setdefault(interval, Counter())[routed_mode(ws, entry.name, interval)] += 1
    return {iv: dict(counts) for iv, counts in modes.items()}


def stranded_legacy(ws: Workspace, datasets: list[DatasetInventory]) -> dict[str, dict[str, int]]:
    """Per legacy home the collector does not read, and interval: the tickers whose only
    legacy file is there while the collector routes them to legacy (it finds nothing)."""
    read = {
        inv.dataset.interval: set(inv.groups)
        for inv in datasets
        if inv.dataset.kind == "legacy" and inv.dataset.read_by_collector
    }
    found: dict[str, dict[str, int]] = {}
    for inv in datasets:
        ds = inv.dataset
        if ds.kind != "legacy" or ds.read_by_collector:
            continue
        stranded = [
            t
            for t in inv.groups
            if t not in read.get(ds.interval, set()) and routed_mode(ws, t, ds.interval) == "legacy"
        ]
        if stranded:
            found.setdefault(str(ds.home), {})[str(ds.interval)] = len(stranded)
    return found


def _unreadable_text(report: HealthReport) -> str:
    named = [
        f"{_relative(u.path, report.root)}/ ({u.reason})"
        for u in report.unreadable[:UNREADABLE_NAMED]
    ]
    more = len(report.unreadable) - len(named)
    listed = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    return (
        f"cannot read {listed}: the files there are not counted or checked; "
        "give this user read and search permission on them (chmod/chown)"
    )


_LOCK_PROBLEMS = {
    run_lock.LockState.STALE: Verdict.WARNING,
    run_lock.LockState.UNKNOWN: Verdict.WARNING,
}
_DISK_PROBLEMS = {Level.WARN: Verdict.WARNING, Level.CRITICAL: Verdict.CRITICAL}


def migration_progress(ws: Workspace) -> list[MigrationProgress]:
    """Per venue and interval of migration_plan.json (as ``migrate status`` reads it):
    tickers migrated and failed, of the tickers to migrate."""
    if ws.migration_plan is None:
        return []
    return [
        MigrationProgress(
            venue=s.venue,
            interval=s.interval,
            status=s.status or "pending",
            completed=max(s.done, 0),
            total=max(s.jobs_total, 0),
            failed=max(s.failed, 0),
            stage=s.stage,
        )
        for s in migration_status(ws)
    ]


def _plan_stamp(root: Path) -> tuple[int, int] | None:
    try:
        st = (root / MIGRATION_PLAN_FILE).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def health_report(
    ws: Workspace,
    *,
    record_disk_sample: bool = False,
    today: date | None = None,
    now: float | None = None,
    gaps: bool = True,
) -> HealthReport:
    """Gather the summary; metadata errors propagate (the caller reports UNKNOWN).

    ``gaps=False`` leaves out the gap summary, the one slow part (it loads the file index
    and builds coverage grids); ``with_gaps`` adds it later, so a screen can show the rest
    first.

    ``record_disk_sample`` appends this run's disk usage to the history the growth
    projection is made from: the CLI's ``health`` does, a console refresh does not.
    ``now`` (epoch seconds, default the clock) is the time of the report: the lock's age
    and the disk projection count from it; ``today`` (default the day of ``now``) is the
    day gap expiry is counted from.
    """
    now = time.time() if now is None else now
    plan_stamp = _plan_stamp(ws.root)
    ws.load_all_metadata()
    today = today or date.fromtimestamp(now)
    watch: gap_watch.GapWatch | None = None
    gaps_error = None
    if gaps:  # first: it refreshes the index the dataset figures are read from
        try:
            watch = gap_watch.gap_watch(ws, today=today)
        except ParqctlError as exc:
            gaps_error = exc.one_line()
    unreadable: list[Unreadable] = []
    links: list[DatasetLink] = []
    datasets, index_state = _inventories(ws, ws.datasets(unreadable, links))
    unreadable += [u for inv in datasets for u in inv.unreadable]
    filesystems = workspace_filesystems(ws)
    report = HealthReport(
        root=ws.root,
        tickers=len(ws.tickers),
        intervals=list(ws.intervals),
        datasets=datasets,
        storage_modes=storage_modes(ws),
        links=links,
        lock=run_lock.inspect(ws.root, now=now),
        disk=disk_status(ws.root, ws.config.watermarks),
        filesystems=filesystems,
        quarantine=quarantine.totals(ws.root),
        integrity=findings.last_summary(ws.root),
        migration=migration_progress(ws),
        migration_plan_stamp=plan_stamp,
        stranded=stranded_legacy(ws, datasets),
        lock_lost=run_lock.last_loss(ws.root),
        unreadable=unreadable,
        checked_at=now,
        index_refreshed_at=index_state.refreshed_at if index_state else None,
        index_full_scan_at=index_state.full_scan_at if index_state else None,
    )
    if record_disk_sample:
        try:
            workspace_bytes = sum(inv.bytes for inv in datasets)
            disk_history.record(ws.root, filesystems, "health", workspace_bytes, report.checked_at)
        except OSError as exc:
            report.disk_history_error = f"cannot record disk history: {exc.strerror or exc}"
    history = disk_history.load(ws.root)
    report.projections = {
        str(fs.mount): disk_history.project(history, fs, report.checked_at) for fs in filesystems
    }
    if gaps:
        if watch is None:  # no index yet (or its error): freshness has nothing to read
            return with_gap_watch(report, watch, gaps_error)
        return _with_freshness(report, ws, watch)
    report.problems = _problems(report)
    return report


def _inventories(ws: Workspace, datasets: list) -> tuple[list[DatasetInventory], Any]:
    """Each dataset's tickers, files and bytes: from the file index when there is one (as
    of its last refresh), else by walking the tree."""
    from core.availability.index_state import index_path

    if not index_path(ws.root).exists():
        return [inventory(d) for d in datasets], None
    from core.availability.index_inventory import indexed_inventories

    return indexed_inventories(ws.root, datasets)


def with_gaps(
    report: HealthReport, ws: Workspace, today: date | None = None, *, reuse_saved: bool = True
) -> HealthReport:
    """A copy of ``report`` with the gap summary, the freshness of each interval (both
    from the file index, refreshed here) and the problems they bring."""
    try:
        watch = gap_watch.gap_watch(
            ws, today=today or date.fromtimestamp(report.checked_at), reuse_saved=reuse_saved
        )
    except ParqctlError as exc:
        return with_gap_watch(report, None, exc.one_line())
    if watch is None:  # no index yet: freshness has nothing to read either
        return with_gap_watch(report, None)
    report = _with_fresh_inventory(report, ws)  # the index was refreshed: figures follow
    return _with_freshness(report, ws, watch)


def _with_freshness(report: HealthReport, ws: Workspace, watch: gap_watch.GapWatch) -> HealthReport:
    """``with_gap_watch`` with the freshness of each interval, read from the index the
    gap summary has just refreshed."""
    from core.availability import freshness as fresh

    try:
        found = fresh.freshness(ws, now=report.checked_at)
    except ParqctlError as exc:
        return with_gap_watch(report, watch, freshness_error=exc.one_line())
    return with_gap_watch(report, watch, found=found)


def _with_fresh_inventory(report: HealthReport, ws: Workspace) -> HealthReport:
    unreadable: list[Unreadable] = []
    datasets, index_state = _inventories(ws, ws.datasets(unreadable, []))
    unreadable += [u for inv in datasets for u in inv.unreadable]
    return dataclasses.replace(
        report,
        datasets=datasets,
        unreadable=unreadable,
        stranded=stranded_legacy(ws, datasets),
        index_refreshed_at=index_state.refreshed_at if index_state else None,
        index_full_scan_at=index_state.full_scan_at if index_state else None,
    )


def with_gap_watch(
    report: HealthReport,
    watch: gap_watch.GapWatch | None,
    error: str | None = None,
    *,
    found: fresh.Freshness | None = None,
    freshness_error: str | None = None,
) -> HealthReport:
    """A copy of ``report`` completed with a gap summary (computed or saved) or its error,
    and the freshness computed with it, if any."""
    full = dataclasses.replace(
        report, gaps=watch, gaps_error=error, freshness=found, freshness_error=freshness_error
    )
    full.problems = _problems(full)
    return full


def with_live_parts(report: HealthReport, *, now: float | None = None) -> HealthReport:
    """A copy of ``report`` with what a running writer changes read again: the run lock
    (a stat and owner.json), the last lost lock, migration progress (migration_plan.json,
    parsed again only when it changed) and the usage of each filesystem (statvfs); the
    problems follow. Cheap enough to call every couple of seconds."""
    now = time.time() if now is None else now
    ws = Workspace(report.root)
    stamp = _plan_stamp(ws.root)
    migration = report.migration
    if stamp != report.migration_plan_stamp:
        migration = migration_progress(ws)
    full = dataclasses.replace(
        report,
        lock=run_lock.inspect(ws.root, now=now),
        lock_lost=run_lock.last_loss(ws.root),
        disk=disk_status(ws.root, report.disk.watermarks),
        filesystems=[
            dataclasses.replace(fs, status=disk_status(fs.mount, fs.status.watermarks))
            for fs in report.filesystems
        ],
        migration=migration,
        migration_plan_stamp=stamp,
    )
    full.problems = _problems(full)
    return full


def build_index(
    root: Path, *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
) -> int:
    """Build the file index that gaps and freshness are computed from (or bring it up to
    date); returns the bar files it holds. Cancelled, it keeps what was read."""
    from core.availability.index import refresh_index

    return refresh_index(root, progress=progress, cancel=cancel, sessions=False).stats.scanned


def _problems(report: HealthReport) -> list[Problem]:
    problems = []
    if report.lock.state in _LOCK_PROBLEMS:
        problems.append(
            Problem(_LOCK_PROBLEMS[report.lock.state], f"run lock: {report.lock.reason}")
        )
    for fs in report.filesystems:
        level = fs.status.level
        if level != Level.OK:
            problems.append(
                Problem(
                    _DISK_PROBLEMS.get(level, Verdict.CRITICAL),
                    f"disk {fs.mount} {fs.status.percent_used:.1f}% used: "
                    f"{level.name} watermark reached",
                )
            )
            continue
        projection = report.projections.get(str(fs.mount))
        soon = projection is not None and projection.critical_on is not None
        if soon and (projection.days_to_critical or 0) <= PROJECTION_WARN_DAYS:
            problems.append(
                Problem(
                    Verdict.WARNING,
                    f"disk {fs.mount} reaches the critical watermark around "
                    f"{projection.critical_on} at the present growth",
                )
            )
    stray = sum(len(inv.stray_files) for inv in report.datasets)
    if stray:
        problems.append(
            Problem(Verdict.WARNING, f"{stray} stray temp or partial file(s) in the data tree")
        )
    if report.unreadable:
        problems.append(Problem(Verdict.WARNING, _unreadable_text(report)))
    if not report.datasets:
        problems.append(
            Problem(Verdict.WARNING, "no bar datasets found (stocks_<iv>/ at the root, or data/)")
        )
    for link in report.links:
        if not link.declared:
            problems.append(
                Problem(
                    Verdict.WARNING,
                    f"{_relative(link.path, report.root)} is a symbolic link to {link.target}, "
                    "outside the workspace and not declared: its files are not read and "
                    "nothing is written there; list it under [storage] extra_roots in "
                    ".parqctl/config.toml if it holds this workspace's data",
                )
            )
    for home, intervals in report.stranded.items():
        for interval, count in intervals.items():
            problems.append(
                Problem(
                    Verdict.WARNING,
                    f"{count} tickers' {interval} bars are only in {home}/stocks_{interval}/, "
                    f"which the collector never reads (it reads stocks_{interval}/ at the "
                    "workspace root): migrate them, or move them back",
                )
            )
    if report.lock_lost is not None:
        holder = report.lock_lost.get("holder") or "another program"
        problems.append(
            Problem(
                Verdict.WARNING,
                f"the run lock was taken from `{report.lock_lost.get('command')}` by {holder}; "
                "it stopped at a safe point: run it again to resume",
            )
        )
    if report.integrity is not None and report.integrity.open_errors:
        problems.append(
            Problem(
                Verdict.CRITICAL,
                f"integrity: {report.integrity.open_errors} error(s) in the last check "
                "(`parqctl integrity` lists them)",
            )
        )
    if report.gaps is not None and report.gaps.expiring_sessions:
        expiring = ", ".join(
            f"{iv.expiring_sessions} {iv.interval}"
            for iv in report.gaps.intervals
            if iv.expiring_sessions
        )
        problems.append(
            Problem(
                Verdict.WARNING,
                f"recoverable sessions expire within {report.gaps.horizon_days} days ({expiring}): "
                "fetch them now or they are lost (`parqctl availability` lists them)",
            )
        )
    if report.gaps_error:
        problems.append(
            Problem(Verdict.WARNING, f"gaps could not be computed: {report.gaps_error}")
        )
    problems += _freshness_problems(report)
    for item in report.migration:
        if item.failed:
            problems.append(
                Problem(
                    Verdict.WARNING,
                    f"migration {item.venue} {item.interval}: {item.failed:,} ticker(s) failed "
                    "to migrate (see why with `parqctl migrate status`; retry them with "
                    "`parqctl migrate run`)",
                )
            )
    if report.quarantine is not None and report.quarantine.pending:
        problems.append(
            Problem(
                Verdict.WARNING,
                f"{report.quarantine.pending} quarantine move(s) were interrupted: "
                "`parqctl quarantine list` reconciles them",
            )
        )
    return problems


def _freshness_problems(report: HealthReport) -> list[Problem]:
    if report.freshness_error:
        return [
            Problem(Verdict.WARNING, f"freshness could not be computed: {report.freshness_error}")
        ]
    if report.freshness is None:
        return []
    threshold = report.freshness.stalled_after_sessions
    return [
        Problem(
            Verdict.WARNING,
            f"collector stalled? {iv.interval}: {iv.summary()} (a warning from {threshold} "
            "session(s) behind: [freshness] stalled_after_sessions in .parqctl/config.toml)",
        )
        for iv in report.freshness.stalled
    ]
