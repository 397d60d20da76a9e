"""The health report as Prometheus metrics, for node_exporter's textfile collector.

Every series carries a ``workspace`` label, so one host can export several workspaces
(one ``.prom`` file each) without their series colliding. The file is written by
prometheus_client's ``write_to_textfile``: a temp file beside it, then a rename, so the
collector never reads half a file.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from core.errors import ParqctlError
from core.health import HealthReport
from core.safety import run_lock

PREFIX = "parqctl"
VERDICT_HELP = "Verdict of parqctl health: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"
LAST_CHECK_HELP = "When this health check ran (Unix time)"


def registry_for(report: HealthReport) -> CollectorRegistry:
    """A registry holding one sample of every metric the report gives."""
    registry = CollectorRegistry()
    workspace = str(report.root)

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, ("workspace", *labels), registry=registry)

    gauge("health_verdict", VERDICT_HELP).labels(workspace).set(int(report.verdict))
    gauge("last_check_timestamp_seconds", LAST_CHECK_HELP).labels(workspace).set(report.checked_at)
    _disk(report, workspace, gauge)
    _lock(report, workspace, gauge)
    _quarantine(report, workspace, gauge)
    _integrity(report, workspace, gauge)
    _gaps(report, workspace, gauge)
    _freshness(report, workspace, gauge)
    migration = gauge(
        "migration_progress_ratio",
        "Migration jobs completed / jobs total per venue and interval (migration_plan.json)",
        "venue",
        "interval",
    )
    failed = gauge(
        "migration_failed_tickers",
        "Tickers whose migration failed, per venue and interval (`migrate run` retries them)",
        "venue",
        "interval",
    )
    for item in report.migration:
        migration.labels(workspace, item.venue, item.interval).set(item.ratio)
        failed.labels(workspace, item.venue, item.interval).set(item.failed)
    return registry


def _disk(report: HealthReport, workspace: str, gauge) -> None:
    used = gauge("disk_used_ratio", "Used / (used + available) of the filesystem", "mount")
    level = gauge(
        "disk_watermark_level",
        "Watermark level of the filesystem: 0 ok, 1 warn, 2 critical, 3 block",
        "mount",
    )
    watermark = gauge(
        "disk_watermark_ratio", "The configured watermarks as used ratios", "mount", "level"
    )
    growth = gauge(
        "disk_growth_bytes_per_day", "Growth of used bytes per day over the last 30 days", "mount"
    )
    critical_at = gauge(
        "disk_critical_projected_timestamp_seconds",
        "When the filesystem reaches the critical watermark at the present growth (Unix time)",
        "mount",
    )
    for fs in report.filesystems:
        mount = str(fs.mount)
        used.labels(workspace, mount).set(fs.status.percent_used / 100)
        level.labels(workspace, mount).set(int(fs.status.level))
        for name in ("warn", "critical", "block"):
            watermark.labels(workspace, mount, name).set(getattr(fs.status.watermarks, name) / 100)
        projection = report.projections.get(mount)
        if projection is not None and projection.growth_bytes_per_day is not None:
            growth.labels(workspace, mount).set(projection.growth_bytes_per_day)
        if projection is not None and projection.days_to_critical is not None:
            critical_at.labels(workspace, mount).set(
                report.checked_at + projection.days_to_critical * 86400
            )


def _lock(report: HealthReport, workspace: str, gauge) -> None:
    lock = report.lock
    gauge("lock_held", "1 if the run lock exists, whoever holds it").labels(workspace).set(
        int(lock.held)
    )
    gauge("lock_stale", "1 if the run lock's holder is gone (or cannot be judged)").labels(
        workspace
    ).set(int(lock.state in (run_lock.LockState.STALE, run_lock.LockState.UNKNOWN)))
    gauge("lock_age_seconds", "Age of the run lock; 0 when free").labels(workspace).set(
        lock.age_seconds or 0.0
    )


def _quarantine(report: HealthReport, workspace: str, gauge) -> None:
    totals = report.quarantine
    gauge("quarantine_files", "Files in quarantine").labels(workspace).set(
        totals.entries if totals else 0
    )
    gauge("quarantine_bytes", "Bytes of the files in quarantine").labels(workspace).set(
        totals.bytes if totals else 0
    )


def _integrity(report: HealthReport, workspace: str, gauge) -> None:
    """Counts of the last full ``parqctl integrity`` run; absent when there was none, so
    that "never checked" is not exported as "no errors"."""
    summary = report.integrity
    last = gauge(
        "integrity_last_check_timestamp_seconds",
        "When the last full integrity check ran (Unix time); 0 if never",
    )
    last.labels(workspace).set(summary.checked_at if summary else 0)
    if summary is None:
        return
    gauge("integrity_errors", "Open error findings of the last full integrity check").labels(
        workspace
    ).set(summary.open_errors)
    gauge("integrity_warnings", "Warning findings of the last full integrity check").labels(
        workspace
    ).set(summary.warnings)


def _gaps(report: HealthReport, workspace: str, gauge) -> None:
    """Per interval from the availability engine; absent until the workspace has an index."""
    if report.gaps is None:
        return
    horizon = report.gaps.horizon_days
    series = {
        "tickers_with_gaps": ("gap_tickers", "Tickers with at least one gap"),
        "missing_sessions": ("gap_missing_sessions", "Expected sessions without bars"),
        "lost_sessions": ("gap_lost_sessions", "Missing sessions past the retention window"),
        "expiring_sessions": (
            "gap_expiring_sessions",
            f"Missing sessions still fetchable that leave the retention window within {horizon} days",
        ),
    }
    gauges = {field: gauge(name, doc, "interval") for field, (name, doc) in series.items()}
    for interval in report.gaps.intervals:
        for field, metric in gauges.items():
            metric.labels(workspace, interval.interval).set(getattr(interval, field))


def _freshness(report: HealthReport, workspace: str, gauge) -> None:
    """Per interval (and calendar); absent until the workspace has an index, so that "not
    known" is not exported as "up to date"."""
    if report.freshness is None:
        return
    behind = gauge(
        "freshness_sessions_behind",
        "Closed trading sessions after the session of the interval's newest bar "
        f"(health warns from {report.freshness.stalled_after_sessions})",
        "interval",
        "calendar",
    )
    for iv in report.freshness.intervals:
        if iv.newest_bar is not None:
            behind.labels(workspace, iv.interval, iv.calendar).set(iv.sessions_behind)


def write_textfile(path: Path, report: HealthReport) -> None:
    """Write the metrics atomically to ``path`` (it should end in ``.prom``)."""
    _write(Path(path), registry_for(report))


def write_unknown(path: Path, root: Path) -> None:
    """When the workspace cannot be read: verdict UNKNOWN, so that an alert fires rather
    than the last good file being exported as if it were current."""
    registry = CollectorRegistry()
    for name, documentation, value in (
        ("health_verdict", VERDICT_HELP, 3),
        ("last_check_timestamp_seconds", LAST_CHECK_HELP, time.time()),
    ):
        Gauge(f"{PREFIX}_{name}", documentation, ("workspace",), registry=registry).labels(
            str(root)
        ).set(value)
    _write(Path(path), registry)


def _write(path: Path, registry: CollectorRegistry) -> None:
    if not path.parent.is_dir():
        raise ParqctlError(
            f"cannot write {path}: {path.parent} is not a directory",
            "give a path in node_exporter's --collector.textfile.directory",
        )
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise ParqctlError(
            f"cannot write {path}: {exc.strerror or exc}", "check the directory's permissions"
        ) from None
