"""Disk usage over time, ``.parqctl/disk_history.jsonl``: growth per day and when the
critical watermark will be reached.

Each ``health`` or ``disk`` run appends one sample (one line, one ``write`` with O_APPEND,
so concurrent runs never interleave). The growth is the least-squares slope of the
filesystem's used bytes over the last 30 days; the projection extends it from today's
usage to the critical watermark.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from core.disk.usage import Filesystem
from core.safety import atomic, untrusted_json
from core.safety.atomic import write_bytes
from core.store.workspace import STATE_DIR

HISTORY_FILE = Path(STATE_DIR) / "disk_history.jsonl"
WINDOW_DAYS = 30
# Below this span the slope is mostly noise (a log rotated, a temp file written).
MIN_SPAN_S = 3600.0
MAX_PROJECTION_DAYS = 36500
# Past this size the file is thinned: all samples of the last week, one a day before that.
MAX_HISTORY_BYTES = 1024 * 1024
KEEP_ALL_DAYS = 7
MAX_READ_BYTES = 16 * MAX_HISTORY_BYTES


@dataclass(frozen=True)
class FilesystemSample:
    mount: str
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class DiskSample:
    ts: float
    command: str
    filesystems: tuple[FilesystemSample, ...]
    workspace_bytes: int | None = None

    def line(self) -> str:
        record = asdict(self)
        record["time"] = datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="seconds")
        return json.dumps(record, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class Projection:
    mount: str
    samples: int
    span_days: float
    growth_bytes_per_day: float | None
    days_to_critical: float | None
    critical_on: date | None
    note: str  # why there is no date, or that the watermark is already reached

    def as_dict(self) -> dict:
        record = asdict(self)
        record["critical_on"] = self.critical_on.isoformat() if self.critical_on else None
        return record


def record(
    root: Path,
    filesystems: list[Filesystem],
    command: str,
    workspace_bytes: int | None = None,
    now: float | None = None,
) -> DiskSample:
    """Append a sample of every filesystem's usage; returns it.

    A symbolic link (or a FIFO) in place of ``.parqctl`` or the history file is refused
    with ``atomic.UnsafeLinkError`` (an OSError, which callers report) and nothing is
    written."""
    sample = DiskSample(
        ts=time.time() if now is None else now,
        command=command,
        filesystems=tuple(
            FilesystemSample(str(fs.mount), fs.status.total, fs.status.used, fs.status.free)
            for fs in filesystems
        ),
        workspace_bytes=workspace_bytes,
    )
    size = atomic.append(root, HISTORY_FILE, sample.line().encode("utf-8"), sync=False)
    if size > MAX_HISTORY_BYTES:
        _thin(root, sample.ts)
    return sample


def load(root: Path) -> list[DiskSample]:
    """Every sample, oldest first; torn or foreign lines are skipped. A history that is a
    link or a FIFO (which ``record`` refused and its caller reported) reads as empty; one
    grown past ``MAX_READ_BYTES`` by another writer is read from its tail."""
    try:
        content = atomic.read_state_file(root, HISTORY_FILE, limit=MAX_READ_BYTES)
    except atomic.UnsafeLinkError:
        return []
    if content is None:
        return []
    text = content.decode("utf-8", errors="replace")
    samples = []
    for line in text.splitlines():
        try:
            raw = untrusted_json.loads(line)
            samples.append(
                DiskSample(
                    ts=float(raw["ts"]),
                    command=str(raw.get("command", "")),
                    filesystems=tuple(
                        FilesystemSample(
                            str(f["mount"]), *(int(f[k]) for k in ("total", "used", "free"))
                        )
                        for f in raw["filesystems"]
                    ),
                    workspace_bytes=raw.get("workspace_bytes"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    samples.sort(key=lambda s: s.ts)
    return samples


def project(
    history: list[DiskSample], filesystem: Filesystem, now: float | None = None
) -> Projection:
    """Growth per day of one filesystem and the date it reaches the critical watermark."""
    now = time.time() if now is None else now
    mount = str(filesystem.mount)
    points = [
        (s.ts, fs.used)
        for s in history
        if now - WINDOW_DAYS * 86400 <= s.ts <= now
        for fs in s.filesystems
        if fs.mount == mount
    ]
    span = (points[-1][0] - points[0][0]) if points else 0.0
    status = filesystem.status
    usable = status.used + status.free
    critical_used = status.watermarks.critical / 100.0 * usable

    def result(growth: float | None, days: float | None, on: date | None, note: str) -> Projection:
        return Projection(mount, len(points), span / 86400, growth, days, on, note)

    if status.used >= critical_used:
        return result(_slope(points), 0.0, date.fromtimestamp(now), "critical watermark reached")
    if len(points) < 2 or span < MIN_SPAN_S:
        note = f"not enough history: {len(points)} sample(s) over {span / 3600:.1f} h"
        return result(None, None, None, note)
    growth = _slope(points)
    if growth is None or growth <= 0:
        return result(growth, None, None, "not growing")
    days = (critical_used - status.used) / growth
    if days > MAX_PROJECTION_DAYS:
        return result(growth, days, None, "more than 100 years away")
    return result(growth, days, date.fromtimestamp(now + days * 86400), "")


def _slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares growth in bytes per day."""
    if len(points) < 2:
        return None
    n = len(points)
    t0 = points[0][0]
    xs = [(t - t0) / 86400 for t, _ in points]
    ys = [float(u) for _, u in points]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def _thin(root: Path, now: float) -> None:
    """Keep every sample of the last week and the last sample of each earlier UTC day.

    A sample appended by another run while this rewrites the file can be lost; the
    history is a trend, and one sample does not change it.
    """
    samples = load(root)
    recent = [s for s in samples if s.ts >= now - KEEP_ALL_DAYS * 86400]
    daily: dict[date, DiskSample] = {}
    for sample in samples:
        if sample.ts < now - KEEP_ALL_DAYS * 86400:
            daily[datetime.fromtimestamp(sample.ts, UTC).date()] = sample
    kept = [*daily.values(), *recent]
    # The rewrite renames a temp file over the history: refuse if .parqctl became a link.
    write_bytes(
        atomic.confined(root, HISTORY_FILE), "".join(s.line() for s in kept).encode("utf-8")
    )
