"""``migrate estimate``: how big, how long, and whether the disk can take it.

Rows and months per ticker come from the legacy files' footers; bytes and time per
output file and per row are measured by really migrating a sample of tickers into a
scratch directory under ``.parqctl/staging/`` (on the data's filesystem, so block
allocation is the real one), then fitted by least squares and applied to every ticker.
The output is many small files, so its size is not a fixed factor of the input's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from core import audit
from core.disk import Level, disk_status, level_for
from core.errors import DiskSpaceError
from core.jobs import CancelToken
from core.layout import Venue
from core.migration import checkpoint, pool, staging
from core.migration.legacy import list_legacy
from core.workspace import Workspace

DEFAULT_SAMPLE = 12


@dataclass
class Estimate:
    venue: str
    intervals: list[str]
    tickers: int = 0
    unreadable: list[str] = field(default_factory=list)
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
    from core.migration.worker import TickerJob, legacy_footer, stage_ticker

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
    area = staging.new_area(ws.root, staging.SAMPLE_PREFIX)
    try:
        with pool.start(workers) as executor:
            footers = [legacy_footer(f.ticker, str(f.path)) for _, f in legacy]
            readable = [(i, f, m) for (i, f), m in zip(legacy, footers, strict=True) if not m.error]
            result.unreadable = [m.ticker for m in footers if m.error]
            result.rows = sum(m.rows for _, _, m in readable)
            result.files = sum(m.months for _, _, m in readable)
            result.legacy_bytes = sum(f.size for _, f in legacy)
            measured = []
            for interval in selected:
                picks = _spread([(f, m) for i, f, m in readable if i is interval], sample)
                staged = {
                    f.ticker: area / interval.interval / f"ticker={f.ticker}" for f, _ in picks
                }
                jobs = [
                    TickerJob(f.ticker, str(f.path), str(area / "absent"), str(staged[f.ticker]))
                    for f, _ in picks
                ]
                for outcome in pool.run_jobs(executor, stage_ticker, jobs, token, workers * 2):
                    if outcome.ok:
                        measured.append((outcome, _allocated(staged[outcome.ticker])))
        _fit(result, measured)
    finally:
        staging.discard(area)
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


def _spread(items: list, count: int) -> list:
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def _allocated(path) -> int:
    """Bytes the tree really takes on disk: file and directory blocks."""
    total = 0
    for directory, _subdirs, files in os.walk(path):
        total += os.stat(directory).st_blocks * 512
        total += sum(os.stat(os.path.join(directory, f)).st_blocks * 512 for f in files)
    return total


def _fit(result: Estimate, measured: list) -> None:
    """Least squares of bytes and seconds per ticker on (files, rows)."""
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
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    if (coef < 0).any():
        per_file = float(target.sum() / max(design[:, 0].sum(), 1))
        return per_file, 0.0
    return float(coef[0]), float(coef[1])
