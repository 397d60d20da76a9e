"""parqctl's per-workspace settings, ``.parqctl/config.toml``; every key is optional.

```toml
[watermarks]        # percent of the filesystem used
warn = 80
critical = 90
block = 95

[calendars]         # market -> exchange_calendars code
us = "XNYS"
de = "XETR"

[retention_days]    # how far back Yahoo still serves an interval
"1m" = 7
"1h" = 730

[storage]           # directories outside the workspace that hold its data through a
extra_roots = []    # symlink (a dataset on another volume); nothing else outside is written

[limits]            # a bar file beyond either is refused before it is read
max_file_rows = 3_000_000
max_file_mb = 256   # its decoded size in memory (MiB), estimated from its footer

[freshness]         # an interval whose newest bar is this many sessions behind the last
stalled_after_sessions = 2  # closed session is a stalled collector: health says WARNING
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import MetadataError
from core.store.metadata import exists, key_path, read_text_file

CONFIG_FILE = Path(".parqctl") / "config.toml"
# A settings file is a few lines: anything beyond this is refused unread.
MAX_CONFIG_BYTES = 1024 * 1024
# today - retention must stay a date (year 1 at the earliest): about 270 years.
MAX_RETENTION_DAYS = 100_000

DEFAULT_VENUE_CALENDARS = {"us": "XNYS", "de": "XETR"}

DEFAULT_RETENTION_DAYS: dict[str, int | None] = {
    "1m": 7,
    "2m": 60,
    "5m": 60,
    "15m": 60,
    "30m": 60,
    "60m": 730,
    "90m": 60,
    "1h": 730,
    "1d": None,
    "5d": None,
    "1wk": None,
    "1mo": None,
    "3mo": None,
}


@dataclass(frozen=True)
class Watermarks:
    warn: float = 80.0
    critical: float = 90.0
    block: float = 95.0


@dataclass(frozen=True)
class FileLimits:
    """The largest bar file any command reads, checked from its footer before reading.

    A real legacy file is at most a few million rows: ten years of 1m bars with pre- and
    post-market (960 a day) is 2.4M rows, about 170 MiB decoded. Every command stays under
    about 1 GB at these defaults; a file beyond them (a forged footer can claim 60M rows in
    2 MB) is refused with its name, its size and the limit.
    """

    max_file_rows: int = 3_000_000
    max_file_mb: int = 256


# A collector run once a day after the close is one session behind until it runs; two
# means a run was missed.
DEFAULT_STALLED_AFTER_SESSIONS = 2
MAX_STALLED_AFTER_SESSIONS = 10_000


@dataclass(frozen=True)
class Config:
    watermarks: Watermarks = field(default_factory=Watermarks)
    calendars: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_VENUE_CALENDARS))
    retention_days: dict[str, int | None] = field(
        default_factory=lambda: dict(DEFAULT_RETENTION_DAYS)
    )
    extra_roots: tuple[Path, ...] = ()
    limits: FileLimits = field(default_factory=FileLimits)
    stalled_after_sessions: int = DEFAULT_STALLED_AFTER_SESSIONS


def _bad(path: Path, what: str) -> MetadataError:
    return MetadataError(f"{path}: {what}", "fix the setting or remove it to use the default")


def _table(path: Path, data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise _bad(path, f"[{name}] must be a table")
    return table


def _watermarks(path: Path, table: dict[str, Any]) -> Watermarks:
    defaults = Watermarks()
    values = {}
    for name in ("warn", "critical", "block"):
        value = table.get(name, getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
            raise _bad(path, f"watermarks.{name} must be a percentage between 0 and 100")
        values[name] = float(value)
    if not values["warn"] <= values["critical"] <= values["block"]:
        raise _bad(path, "watermarks must satisfy warn <= critical <= block")
    return Watermarks(**values)


def load_config(workspace_root: Path) -> Config:
    path = workspace_root / CONFIG_FILE
    if not exists(path):
        return Config()
    # Only a regular file of at most MAX_CONFIG_BYTES, never a FIFO or a device.
    text = read_text_file(path, MAX_CONFIG_BYTES, "fix it or remove it to use the defaults")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(path, f"malformed TOML: {exc}") from None
    except RecursionError:
        raise _bad(path, "malformed TOML: nested too deeply") from None

    calendars = dict(DEFAULT_VENUE_CALENDARS)
    for market, code in _table(path, data, "calendars").items():
        if not isinstance(code, str):
            raise _bad(
                path, f'{key_path("calendars", market)} must be a calendar code such as "XNYS"'
            )
        calendars[market.lower()] = code
    retention = dict(DEFAULT_RETENTION_DAYS)
    for interval, days in _table(path, data, "retention_days").items():
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 0 <= days <= MAX_RETENTION_DAYS
        ):
            raise _bad(
                path,
                f"{key_path('retention_days', interval)} must be a whole number of days "
                f"from 0 to {MAX_RETENTION_DAYS}",
            )
        retention[interval] = days
    return Config(
        watermarks=_watermarks(path, _table(path, data, "watermarks")),
        calendars=calendars,
        retention_days=retention,
        extra_roots=_extra_roots(path, data.get("storage", {})),
        limits=_limits(path, data.get("limits", {})),
        stalled_after_sessions=_stalled_after(path, _table(path, data, "freshness")),
    )


def _stalled_after(path: Path, table: dict[str, Any]) -> int:
    value = table.get("stalled_after_sessions", DEFAULT_STALLED_AFTER_SESSIONS)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_STALLED_AFTER_SESSIONS
    ):
        raise _bad(
            path,
            "freshness.stalled_after_sessions must be a whole number of sessions "
            f"from 1 to {MAX_STALLED_AFTER_SESSIONS}",
        )
    return value


def _limits(path: Path, table: Any) -> FileLimits:
    if not isinstance(table, dict):
        raise _bad(path, "[limits] must be a table")
    values = {}
    for name in ("max_file_rows", "max_file_mb"):
        value = table.get(name, getattr(FileLimits, name))
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _bad(path, f"limits.{name} must be a whole number above 0")
        values[name] = value
    return FileLimits(**values)


def _extra_roots(path: Path, table: Any) -> tuple[Path, ...]:
    roots = table.get("extra_roots", []) if isinstance(table, dict) else None
    if not isinstance(roots, list) or not all(
        isinstance(r, str) and r and Path(r).is_absolute() for r in roots
    ):
        raise _bad(path, "storage.extra_roots must be a list of absolute directory paths")
    return tuple(Path(r) for r in roots)
