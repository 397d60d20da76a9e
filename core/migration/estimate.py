"""``migrate estimate``: how big, how long, and whether the disk can take it.

Rows and months per ticker come from the legacy files' footers; bytes and time per
output file and per row are measured by really migrating a sample of tickers into a
scratch directory under ``.parqctl/staging/`` (on the data's filesystem, so block
allocation is the real one), then fitted by least squares and applied to every ticker.
The output is many small files, so its size is not a fixed factor of the input's.

The sample's bytes on disk per legacy byte are recorded in the plan per interval
(``output_ratio``); ``migrate run`` projects the tickers it has left with it before
writing anything, measuring a small sample the same way (``sample_output``) when the
plan has none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import FileLimits
from core.disk.watermarks import Level, disk_status, level_for
from core.errors import DiskSpaceError, LockHeldError
from core.jobs import CancelToken
from core.migration import checkpoint, pool, staging
from core.migration.checkpoint import IntervalPlan
from core.migration.legacy import LegacyFile, list_legacy
from core.safety import audit, run_lock
from core.store.layout import Venue
from core.store.metadata import MigrationPlan
from core.store.workspace import Workspace

if TYPE_CHECKING:  # numpy only where it is used: `migrate run` imports this module
    import numpy as np

DEFAULT_SAMPLE = 12
RUN_SAMPLE = 3  # tickers per interval a run measures when the plan records no ratio
RATIO_KEY = "output_ratio"


@dataclass
class Estimate:
    venue: str
    intervals: list[str]
    tickers: int = 0
    unreadable: list[str] = field(default_factory=list)
    unreadable_reasons: dict[str, str] = field(default_factory=dict)  # ticker -> one line
    rows: int = 0
    legacy_bytes: int = 0
    files: int = 0  # partition files expected (months spanned per ticker)
    sample_tickers: int = 0
    sample_files: int = 0
    bytes_per_file: float = 0.0
    bytes_per_row: float = 0.0
    projected_bytes: int = 0
    seconds_per_file: float = 0.0
    seconds_per_row: float = 0.0
    workers: int = 1
    projected_seconds: float = 0.0
    disk_total: int = 0
    disk_free: int = 0
    percent_used: float = 0.0
    percent_after: float = 0.0
    level_after: str = "OK"
    critical: float = 0.0
    bytes_per_legacy_byte: dict[str, float] = field(default_factory=dict)  # per interval
    recorded: bool = False  # the ratios were saved in the plan for `migrate run`
    not_recorded: str = ""  # why not (the run lock was held)

    @property
    def refused(self) -> bool:
        return self.level_after in ("CRITICAL", "BLOCK")


def estimate_migration(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    sample: int = DEFAULT_SAMPLE,
    workers: int | None = None,
    token: CancelToken | None = None,
) -> Estimate:
    """Measure and project; ``refused`` when the projection crosses the critical mark.

    Raises DiskSpaceError when the disk is already past the critical watermark (the
    sample itself could fill it).
    """
    from core.migration.worker import legacy_footer

    plan = checkpoint.load(ws)
    selected = checkpoint.planned_intervals(plan, venue, intervals)
    workers = workers or pool.default_workers()
    marks = ws.config.watermarks
    now = disk_status(ws.root, marks)
    if now.level >= Level.CRITICAL:
        raise DiskSpaceError(
            f"the disk holding {ws.root} is already {now.percent_used:.1f}% full "
            f"(critical watermark {marks.critical:g}%)",
            "free space before migrating",
        )
    result = Estimate(venue.id, [i.interval for i in selected], workers=workers)
    legacy = [(i, f) for i in selected for f in list_legacy(i.legacy_dir(ws.root))[0]]
    result.tickers = len(legacy)
    ratios: dict[str, dict[str, Any]] = {}
    area = staging.new_area(ws.root, staging.SAMPLE_PREFIX)
    try:
        with pool.start(workers) as executor:
            limits = ws.config.limits
            footers = [legacy_footer(f.ticker, str(f.path), limits) for _, f in legacy]
            readable = [(i, f, m) for (i, f), m in zip(legacy, footers, strict=True) if not m.error]
            result.unreadable = [m.ticker for m in footers if m.error]
            result.unreadable_reasons = {m.ticker: m.error for m in footers if m.error}
            result.rows = sum(m.rows for _, _, m in readable)
            result.files = sum(m.months for _, _, m in readable)
            result.legacy_bytes = sum(f.size for _, f in legacy)
            measured = []
            for interval in selected:
                files = [f for i, f, _ in readable if i is interval]
                sampled = sample_output(
                    executor, workers, area, interval, files, sample, token, limits
                )
                measured += sampled
                record = ratio_record(sampled, "estimate")
                if record is not None:
                    ratios[interval.interval] = record
                    result.bytes_per_legacy_byte[interval.interval] = record[
                        "bytes_per_legacy_byte"
                    ]
        _fit(result, [(s.outcome, s.allocated) for s in measured])
    finally:
        staging.discard(area)
    _record_ratios(ws, venue, ratios, result)
    after = now.percent_after(result.projected_bytes)
    result.disk_total, result.disk_free = now.total, now.free
    result.percent_used, result.percent_after = now.percent_used, after
    result.critical = marks.critical
    result.level_after = level_for(after, marks).name
    if result.projected_bytes > now.free:
        result.level_after = "BLOCK"
    audit.append(
        ws.root,
        "migrate.estimate",
        "refused" if result.refused else "ok",
        venue=venue.id,
        intervals=result.intervals,
        projected_bytes=result.projected_bytes,
        percent_after=round(after, 2),
    )
    return result


@dataclass(frozen=True)
class SampledTicker:
    outcome: Any  # the worker's TickerOutcome
    allocated: int  # bytes its staged output takes on disk
    legacy_bytes: int  # the size of its legacy file


def sample_output(
    executor,
    workers: int,
    area: Path,
    interval: IntervalPlan,
    files: list[LegacyFile],
    count: int,
    token: CancelToken | None,
    limits: FileLimits | None = None,
) -> list[SampledTicker]:
    """Migrate ``count`` of ``files`` (spread over the list) into ``area`` as if no partition
    file existed yet, and measure what each one's output takes on disk. A file beyond
    ``limits`` (the workspace's ``[limits]``) fails and is not measured."""
    from core.migration.worker import TickerJob, stage_ticker

    picks = _spread(files, count)
    staged = {f.ticker: area / interval.interval / f"ticker={f.ticker}" for f in picks}
    sizes = {f.ticker: f.size for f in picks}
    jobs = [
        TickerJob(f.ticker, str(f.path), str(area / "absent"), str(staged[f.ticker]), limits=limits)
        for f in picks
    ]
    return [
        SampledTicker(outcome, _allocated(staged[outcome.ticker]), sizes[outcome.ticker])
        for outcome in pool.run_jobs(executor, stage_ticker, jobs, token, workers * 2)
        if outcome.ok
    ]


def ratio_record(sampled: list[SampledTicker], measured_by: str) -> dict[str, Any] | None:
    """The plan's ``output_ratio`` record: bytes on disk per legacy byte, and its sample."""
    legacy = sum(s.legacy_bytes for s in sampled)
    if not legacy:
        return None
    output = sum(s.allocated for s in sampled)
    return {
        "bytes_per_legacy_byte": round(output / legacy, 4),
        "sample_tickers": len(sampled),
        "sample_legacy_bytes": legacy,
        "sample_output_bytes": output,
        "measured_by": measured_by,
        "at": checkpoint.now_iso(),
    }


@dataclass
class Projection:
    """What the tickers a run has left will take on disk."""

    tickers: int = 0
    legacy_bytes: int = 0
    bytes: int = 0
    ratios: dict[str, float] = field(default_factory=dict)  # interval -> bytes per legacy byte
    sources: dict[str, str] = field(default_factory=dict)  # interval -> "estimate", "run sample"
    measured_now: list[str] = field(default_factory=list)  # intervals sampled by this call


def project_remaining(
    ws: Workspace,
    selected: list[IntervalPlan],
    executor,
    workers: int,
    area: Path,
    token: CancelToken | None,
) -> Projection:
    """Project the not-yet-done tickers of each interval with the ratio the plan records,
    measuring (and recording in the plan, in memory) a small sample where it has none."""
    result = Projection()
    for interval in selected:
        remaining = [
            f
            for f in list_legacy(interval.legacy_dir(ws.root))[0]
            if not _done(interval.tickers.get(f.ticker), f)
        ]
        if not remaining:
            continue
        ratio = _recorded_ratio(interval)
        measured_by = (interval.ours.get(RATIO_KEY) or {}).get("measured_by")
        if ratio is None:
            sampled = sample_output(
                executor, workers, area, interval, remaining, RUN_SAMPLE, token, ws.config.limits
            )
            record = ratio_record(sampled, "run")
            # Nothing measurable (every sampled file unreadable): at least the input's size.
            ratio = record["bytes_per_legacy_byte"] if record else 1.0
            if record:
                interval.ours[RATIO_KEY] = record
                result.measured_now.append(interval.interval)
            measured_by = "run"
        result.sources[interval.interval] = (
            "estimate" if measured_by == "estimate" else "run sample"
        )
        legacy_bytes = sum(f.size for f in remaining)
        result.tickers += len(remaining)
        result.legacy_bytes += legacy_bytes
        result.bytes += int(legacy_bytes * ratio)
        result.ratios[interval.interval] = ratio
    return result


def _done(record: dict | None, legacy: LegacyFile) -> bool:
    return bool(record) and record.get("state") == "done" and legacy.unchanged(record.get("legacy"))


def _recorded_ratio(interval: IntervalPlan) -> float | None:
    value = (interval.ours.get(RATIO_KEY) or {}).get("bytes_per_legacy_byte")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _record_ratios(
    ws: Workspace, venue: Venue, ratios: dict[str, dict[str, Any]], result: Estimate
) -> None:
    """Save the measured ratios in the plan for `migrate run`, if the run lock is free."""
    if not ratios:
        return
    try:
        with run_lock.hold(ws.root, "parqctl migrate estimate"):
            plan: MigrationPlan = checkpoint.load(ws, fresh=True)
            for name, record in ratios.items():
                IntervalPlan.of(plan, venue, name).ours[RATIO_KEY] = record
            checkpoint.save(ws, plan)
        result.recorded = True
    except LockHeldError as exc:
        result.not_recorded = exc.message


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spread over the list, first and last included."""
    if len(items) <= count:
        return items
    if count <= 1:
        return items[:count]
    step = (len(items) - 1) / (count - 1)
    return [items[i] for i in sorted({round(k * step) for k in range(count)})]


def _allocated(path) -> int:
    """Bytes the tree really takes on disk: file and directory blocks."""
    total = 0
    for directory, _subdirs, files in os.walk(path):
        total += os.stat(directory).st_blocks * 512
        total += sum(os.stat(os.path.join(directory, f)).st_blocks * 512 for f in files)
    return total


def _fit(result: Estimate, measured: list) -> None:
    """Least squares of bytes and seconds per ticker on (files, rows)."""
    import numpy as np

    if not measured:
        return
    result.sample_tickers = len(measured)
    result.sample_files = sum(len(o.files) for o, _ in measured)
    design = np.array([[len(o.files), o.partition_rows] for o, _ in measured], float)
    sizes = np.array([size for _, size in measured], float)
    seconds = np.array([o.elapsed_s for o, _ in measured], float)
    result.bytes_per_file, result.bytes_per_row = _nonnegative_fit(design, sizes)
    result.projected_bytes = int(
        result.files * result.bytes_per_file + result.rows * result.bytes_per_row
    )
    result.seconds_per_file, result.seconds_per_row = _nonnegative_fit(design, seconds)
    serial = result.files * result.seconds_per_file + result.rows * result.seconds_per_row
    result.projected_seconds = serial / max(result.workers, 1)


def _nonnegative_fit(design: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(per file, per row) >= 0; falls back to per-file only when rows do not explain it."""
    import numpy as np

    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    if (coef < 0).any():
        per_file = float(target.sum() / max(design[:, 0].sum(), 1))
        return per_file, 0.0
    return float(coef[0]), float(coef[1])
