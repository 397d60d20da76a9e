"""Disk usage of the filesystem holding a path, and its level against the watermarks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.config import Watermarks
from core.errors import DiskSpaceError


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    CRITICAL = 2
    BLOCK = 3


def level_for(percent_used: float, watermarks: Watermarks) -> Level:
    if percent_used >= watermarks.block:
        return Level.BLOCK
    if percent_used >= watermarks.critical:
        return Level.CRITICAL
    if percent_used >= watermarks.warn:
        return Level.WARN
    return Level.OK


@dataclass(frozen=True)
class DiskStatus:
    path: Path
    total: int
    used: int
    free: int
    watermarks: Watermarks

    @property
    def percent_used(self) -> float:
        # used / (used + free) as df does: blocks reserved for root count as unavailable.
        usable = self.used + self.free
        return 100.0 * self.used / usable if usable else 100.0

    @property
    def level(self) -> Level:
        return level_for(self.percent_used, self.watermarks)

    def percent_after(self, extra_bytes: int) -> float:
        usable = self.used + self.free
        return 100.0 * (self.used + extra_bytes) / usable if usable else 100.0


def disk_status(path: Path, watermarks: Watermarks) -> DiskStatus:
    usage = psutil.disk_usage(str(path))
    return DiskStatus(Path(path), usage.total, usage.used, usage.free, watermarks)


def ensure_room(path: Path, watermarks: Watermarks, bytes_needed: int) -> DiskStatus:
    """Refuse a write that would take the filesystem past the critical watermark."""
    status = disk_status(path, watermarks)
    after = status.percent_after(bytes_needed)
    if bytes_needed > status.free or after >= watermarks.critical:
        raise DiskSpaceError(
            f"not enough disk space at {path}: writing {bytes_needed:,} bytes would take the disk "
            f"from {status.percent_used:.1f}% to {after:.1f}% used "
            f"(critical watermark {watermarks.critical:g}%)",
            "free space first, or raise [watermarks] critical in .parqctl/config.toml",
        )
    return status
