"""The ``[ingest]`` table of ``.parqctl/config.toml``: how hard parqctl may ask Yahoo.

```toml
[ingest]
requests_per_minute = 30   # the token bucket's rate: conservative, well under Yahoo's
burst = 2                  # requests that may go out back to back
max_attempts = 5           # tries per request while Yahoo answers "too many requests"
backoff_seconds = 15       # the first wait after that answer; doubled each time, jittered
max_backoff_seconds = 300  # no wait longer than this
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from core.config import CONFIG_FILE, MAX_CONFIG_BYTES
from core.errors import MetadataError
from core.store.metadata import exists, read_text_file


@dataclass(frozen=True)
class IngestSettings:
    requests_per_minute: float = 30.0
    burst: int = 2
    max_attempts: int = 5
    backoff_seconds: float = 15.0
    max_backoff_seconds: float = 300.0


_WHOLE = {"burst", "max_attempts"}


def load_settings(workspace_root: Path) -> IngestSettings:
    """The settings, defaults for what is not set. core.config has read the file already
    (a malformed one is refused there); only this table is looked at here."""
    path = Path(workspace_root) / CONFIG_FILE
    if not exists(path):
        return IngestSettings()
    # (As core.config reads it: a regular file of at most MAX_CONFIG_BYTES, never a FIFO.)
    text = read_text_file(path, MAX_CONFIG_BYTES, "fix it or remove it to use the defaults")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise MetadataError(f"{path}: cannot read it: {exc}", "fix the file") from None
    table = data.get("ingest", {})
    if not isinstance(table, dict):
        raise _bad(path, "[ingest] must be a table")
    values = {}
    known = {f.name for f in fields(IngestSettings)}
    for key, value in table.items():
        if key not in known:
            raise _bad(path, f"ingest.{key} is not a setting (known: {', '.join(sorted(known))})")
        whole = key in _WHOLE
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            raise _bad(path, f"ingest.{key} must be a {'whole ' if whole else ''}number")
        if value <= 0:
            raise _bad(path, f"ingest.{key} must be greater than 0")
        values[key] = value
    return IngestSettings(**values)


def _bad(path: Path, what: str) -> MetadataError:
    return MetadataError(f"{path}: {what}", "fix the setting or remove it to use the default")
