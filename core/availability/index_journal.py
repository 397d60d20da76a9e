"""The bar files parqctl itself changed, noted as it changes them, for the file index.

    note_changed(ws.root, ["data/us/yahoo/stocks_1d/ticker=AAPL/year=2019/month=03/data.parquet"])
    notes = pending(ws.root)                # what the next refresh looks at
    consume(notes)                          # once the index holding them is saved

An index refresh looks at the hot months only (core.availability.index_scan); an old month
changes only through parqctl (quarantine, restore, backfill, import), and each of these
notes the paths it moved or wrote here, so the next refresh re-reads exactly those. Each
note is its own small file, written atomically: concurrent writers never share one, and a
refresh removes only the notes it read.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.safety import untrusted_json
from core.safety.atomic import MAX_JSON_STATE_BYTES, atomic_open, confined, read_state_file
from core.store.workspace import STATE_DIR

JOURNAL_DIR = Path(STATE_DIR) / "index" / "changed"


@dataclass(frozen=True)
class Notes:
    paths: frozenset[str]
    files: tuple[Path, ...]  # the note files they came from


def note_changed(root: Path, paths: Iterable[str | Path]) -> None:
    """Record bar files (relative to ``root``, or absolute below it) that parqctl changed.

    A cache hint: when it cannot be written, the next full scan catches the change.
    """
    rel = []
    for path in paths:
        path = Path(path)
        if path.is_absolute():
            try:
                path = path.relative_to(root)
            except ValueError:
                continue
        rel.append(path.as_posix())
    if not rel:
        return
    directory = root / JOURNAL_DIR
    try:
        confined(root, directory).mkdir(parents=True, exist_ok=True)  # never through a link
        with atomic_open(directory / f"{uuid.uuid4().hex}.json", durable=False) as handle:
            handle.write(json.dumps(sorted(set(rel))).encode("utf-8"))
    except OSError:
        pass


def pending(root: Path) -> Notes:
    """Every noted path not yet taken into the index."""
    directory = root / JOURNAL_DIR
    paths: set[str] = set()
    files = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return Notes(frozenset(), ())
    for name in names:
        try:  # (a FIFO or a link among them is skipped, never waited on or followed)
            listed = untrusted_json.loads(
                read_state_file(root, JOURNAL_DIR / name, max_bytes=MAX_JSON_STATE_BYTES) or b"null"
            )
        except (OSError, ValueError):
            continue
        if isinstance(listed, list):
            paths.update(p for p in listed if isinstance(p, str))
            files.append(directory / name)
    return Notes(frozenset(paths), tuple(files))


def consume(root: Path, notes: Notes) -> None:
    """Remove the note files once the index holding their paths is saved (never through a
    link: a journal directory linked elsewhere is left alone)."""
    for file in notes.files:
        with contextlib.suppress(OSError):
            confined(root, file).unlink()
