"""The last ``availability`` report as printed, kept with what it was computed from, so
that the same question over an unchanged workspace is answered without loading the index.

A report of 5,000 tickers over 740,000 files takes seconds to compute (the index's
session lists, the coverage grids); the saved text is read in milliseconds. It is keyed
by the command's options and the day, and by the stat of the index file and of every
metadata and config file: the caller uses it only after a hot scan found nothing changed
(core.availability.index.hot_unchanged), so the index file's stat stands for the data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.config import CONFIG_FILE
from core.safety import untrusted_json
from core.safety.atomic import MAX_JSON_STATE_BYTES, atomic_open, confined, read_state_file
from core.store.metadata import INTERVALS_FILE, STORAGE_CONFIG_FILE, TICKERS_FILE
from core.store.workspace import STATE_DIR

SAVED_DIR = Path(STATE_DIR) / "index" / "reports"
_INPUTS = (
    Path(STATE_DIR) / "index" / "files.arrow",
    Path(STATE_DIR) / "ingest" / "confirmed_empty.json",  # core.ingest.confirmed_empty
    Path(TICKERS_FILE),
    Path(INTERVALS_FILE),
    Path(STORAGE_CONFIG_FILE),
    CONFIG_FILE,
)
KEEP = 8  # reports kept (distinct option sets); the oldest goes


def _key(root: Path, question: dict[str, Any]) -> str:
    stats = {}
    for relative in _INPUTS:
        try:
            st = (root / relative).stat()
            stats[relative.as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ino]
        except OSError:
            stats[relative.as_posix()] = None
    text = json.dumps({"question": question, "inputs": stats}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def load(root: Path, question: dict[str, Any]) -> tuple[str, int, int] | None:
    """(the printed text, the exit code, the files indexed) saved for this question and
    these inputs."""
    try:
        saved = read_state_file(
            root, SAVED_DIR / f"{_key(root, question)}.json", max_bytes=MAX_JSON_STATE_BYTES
        )  # no FIFO wait
        record = untrusted_json.loads(saved or b"null")
        return str(record["text"]), int(record["code"]), int(record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(root: Path, question: dict[str, Any], text: str, code: int, files: int) -> None:
    """Keep a report just printed (a cache: no fsync; failing to write is not an error)."""
    try:
        directory = confined(root, SAVED_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_open(directory / f"{_key(root, question)}.json", durable=False) as handle:
            handle.write(json.dumps({"text": text, "code": code, "files": files}).encode("utf-8"))
        saved = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in saved[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
