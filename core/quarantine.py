"""Quarantine: move a suspicious data file aside, keep a record of why, restore or purge it.

An entry is ``.parqctl/quarantine/<id>/`` holding ``manifest.json`` and the file itself in
``payload/``. A file enters by rename on the same filesystem (atomic, no copy). Every
change is recorded before and after it happens: the manifest is written with a state that
says what is about to happen (``moving``, ``restoring``, ``purging``), then the file is
moved, then the record is completed. A crash in between leaves a manifest whose state and
the files on disk tell what happened, and ``reconcile`` finishes or undoes it without
losing the file. Purge is the only way anything is deleted.

Writers pass the run lock they hold (``core.run_lock.hold``): the collector takes the same
lock, so nothing else creates or moves files under us.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import audit
from core.atomic import fsync_dir, is_temp_name, write_json
from core.config import load_config
from core.disk import disk_status
from core.errors import DataError, DiskSpaceError, ParqctlError
from core.layout import interval_of_dataset_dir
from core.metadata import load_json
from core.run_lock import RunLock
from core.workspace import STATE_DIR

QUARANTINE_DIR = Path(STATE_DIR) / "quarantine"
MANIFEST = "manifest.json"
PAYLOAD = "payload"
SCHEMA_VERSION = 1
# A move by rename adds no data; only the manifest needs room. Refusing at the critical
# watermark would block exactly the clean-up an operator does on a full disk.
MANIFEST_ROOM_BYTES = 1024 * 1024

MOVING, DONE, RESTORING, PURGING = "moving", "done", "restoring", "purging"
PENDING_STATES = (MOVING, RESTORING, PURGING)


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined file and its record."""

    id: str
    state: str
    original_path: str  # relative to the workspace root
    stored_name: str
    size: int
    sha256: str
    reason: str
    finding: dict[str, Any] | None
    who: dict[str, Any]
    when: str  # ISO 8601 UTC, when it was quarantined
    quarantined_at: float  # the same, as a Unix time
    directory: Path
    restore_to: str | None = None
    payload_present: bool = True

    @property
    def stored_path(self) -> Path:
        return self.directory / PAYLOAD / self.stored_name

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def condition(self) -> str:
        """``ok``, ``missing`` (its file is gone), or the pending state."""
        if self.pending:
            return self.state
        return "ok" if self.payload_present else "missing"

    def manifest(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "state": self.state,
            "original_path": self.original_path,
            "stored_name": self.stored_name,
            "size": self.size,
            "sha256": self.sha256,
            "reason": self.reason,
            "finding": self.finding,
            "who": self.who,
            "when": self.when,
            "quarantined_at": self.quarantined_at,
            "restore_to": self.restore_to,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.manifest(),
            "condition": self.condition,
            "stored_path": str(self.stored_path),
        }


@dataclass(frozen=True)
class Reconciliation:
    """What ``reconcile`` did with one interrupted entry."""

    id: str
    was: str
    outcome: str  # "completed", "rolled back", "file missing"
    detail: str


@dataclass(frozen=True)
class QuarantineTotals:
    entries: int
    bytes: int
    pending: int


def quarantine_dir(root: Path) -> Path:
    return root / QUARANTINE_DIR


# --- reading ------------------------------------------------------------------------------


def entries(root: Path) -> list[QuarantineEntry]:
    """Every entry, oldest first. Reads only; see ``reconcile`` for interrupted ones."""
    base = quarantine_dir(root)
    try:
        names = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        entry = _load(base / name)
        if entry is not None:
            found.append(entry)
    return found


def totals(root: Path) -> QuarantineTotals:
    found = entries(root)
    return QuarantineTotals(
        entries=len(found),
        bytes=sum(e.size for e in found if e.payload_present),
        pending=sum(e.pending for e in found),
    )


def find(root: Path, entry_id: str) -> QuarantineEntry:
    """The entry with this id, or the only one whose id starts with it."""
    found = entries(root)
    exact = [e for e in found if e.id == entry_id]
    matches = exact or [e for e in found if entry_id and e.id.startswith(entry_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ParqctlError(
            f"no quarantine entry {entry_id!r}", "list them with `parqctl quarantine list`"
        )
    raise ParqctlError(
        f"{entry_id!r} matches {len(matches)} quarantine entries", "give more of the id"
    )


def older_than(found: Iterable[QuarantineEntry], days: float, now: float) -> list[QuarantineEntry]:
    return [e for e in found if now - e.quarantined_at >= days * 86400]


def _load(directory: Path) -> QuarantineEntry | None:
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return None
    raw = load_json(manifest_path)
    unreadable = DataError(
        f"{manifest_path} is not a quarantine manifest parqctl can read",
        "inspect it by hand; nothing was changed",
    )
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        raise unreadable
    try:
        entry = _entry_from_manifest(raw, directory)
    except (KeyError, TypeError, ValueError):
        raise unreadable from None
    return replace(entry, payload_present=os.path.lexists(entry.stored_path))


def _entry_from_manifest(raw: dict[str, Any], directory: Path) -> QuarantineEntry:
    return QuarantineEntry(
        id=str(raw["id"]),
        state=str(raw["state"]),
        original_path=str(raw["original_path"]),
        stored_name=str(raw["stored_name"]),
        size=int(raw["size"]),
        sha256=str(raw["sha256"]),
        reason=str(raw.get("reason", "")),
        finding=raw.get("finding"),
        who=dict(raw.get("who") or {}),
        when=str(raw["when"]),
        quarantined_at=float(raw["quarantined_at"]),
        directory=directory,
        restore_to=raw.get("restore_to"),
    )


# --- writing ------------------------------------------------------------------------------


def add(
    root: Path,
    path: Path,
    reason: str,
    *,
    lock: RunLock,
    finding: dict[str, Any] | None = None,
    now: float | None = None,
) -> QuarantineEntry:
    """Move ``path`` (a file under ``data/``; relative to the workspace root unless
    absolute) into quarantine; returns its entry. ``now`` (epoch seconds, default the
    clock) is the recorded time of the move, which the entry's id starts with."""
    _check_lock(root, lock)
    if not reason.strip():
        raise ParqctlError("a quarantine needs a reason", "pass --reason TEXT")
    base = quarantine_dir(root)
    directory: Path | None = None
    try:
        source = _data_file(root, path)
        _ensure_manifest_room(root)
        base.mkdir(parents=True, exist_ok=True)
        if os.stat(source).st_dev != os.stat(base).st_dev:
            raise ParqctlError(
                f"{source} is on another filesystem than {base}",
                "quarantine moves files by rename; move it by hand or put .parqctl on that "
                "filesystem",
            )
        moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
        entry_id = f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        directory = base / entry_id
        entry = QuarantineEntry(
            id=entry_id,
            state=MOVING,
            original_path=str(source.relative_to(root)),
            stored_name=source.name,
            size=source.stat().st_size,
            sha256=file_sha256(source),
            reason=reason,
            finding=finding,
            who=_who(lock),
            when=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            quarantined_at=moment.timestamp(),
            directory=directory,
        )
        (directory / PAYLOAD).mkdir(parents=True)
        _write_manifest(entry)
        fsync_dir(base)
        os.rename(source, entry.stored_path)
    except OSError as exc:
        # The file has not moved: drop the record begun for it, so nothing changed.
        if directory is not None:
            with contextlib.suppress(OSError):
                _remove_entry(directory)
        raise _os_failure(exc, f"cannot quarantine {path}", "nothing was moved") from None
    try:
        fsync_dir(source.parent)
        fsync_dir(entry.stored_path.parent)
        entry = replace(entry, state=DONE)
        _write_manifest(entry)
    except OSError as exc:
        raise _os_failure(
            exc,
            f"{source} was moved into quarantine entry {entry.id}, but its record could not "
            "be completed",
            "`parqctl quarantine list` completes it",
        ) from None
    audit.append(
        root,
        "quarantine.add",
        "ok",
        id=entry.id,
        path=entry.original_path,
        size=entry.size,
        sha256=entry.sha256,
        reason=reason,
        finding=finding,
        command=lock.command,
    )
    return entry


def restore(
    root: Path, entry_id: str, *, lock: RunLock, to: Path | None = None
) -> tuple[QuarantineEntry, Path]:
    """Put a quarantined file back (or at ``to``, relative to the workspace root unless
    absolute); refuses to replace anything."""
    _check_lock(root, lock)
    entry = find(root, entry_id)
    if entry.state != DONE or not entry.payload_present:
        raise ParqctlError(
            f"quarantine entry {entry.id} is {entry.condition}: it cannot be restored",
            "run `parqctl quarantine list` to reconcile it first",
        )
    target = root / (to if to is not None else entry.original_path)
    if _inside(target, quarantine_dir(root)):
        raise ParqctlError(f"{target} is inside the quarantine", "restore to another path")
    if os.path.lexists(target):
        raise ParqctlError(
            f"{target} is taken (the collector may have written a new file there)",
            f"restore to another path with `parqctl quarantine restore {entry.id} --to PATH`",
        )
    made: list[Path] = []  # directories created for the target, removed again on failure
    recorded = False
    try:
        if file_sha256(entry.stored_path) != entry.sha256:
            raise DataError(
                f"{entry.stored_path} no longer matches the sha256 recorded when it was "
                "quarantined",
                "inspect it by hand; nothing was moved",
            )
        made = _make_parents(target.parent)
        if os.stat(target.parent).st_dev != os.stat(entry.stored_path).st_dev:
            raise ParqctlError(
                f"{target} is on another filesystem than the quarantine",
                "restore to a path on the workspace's filesystem",
            )
        _ensure_manifest_room(root)
        _write_manifest(replace(entry, state=RESTORING, restore_to=_recorded_path(root, target)))
        recorded = True
        os.rename(entry.stored_path, target)
    except (OSError, ParqctlError) as exc:
        # The file has not moved: put the record and the directories back as they were.
        with contextlib.suppress(OSError):
            if recorded:
                _write_manifest(entry)
            for directory in reversed(made):
                directory.rmdir()
        if isinstance(exc, ParqctlError):
            raise
        raise _os_failure(
            exc, f"cannot restore {entry.stored_path} to {target}", "nothing was moved"
        ) from None
    try:
        fsync_dir(target.parent)
        _remove_entry(entry.directory)
    except OSError as exc:
        raise _os_failure(
            exc,
            f"{entry.id} was restored to {target}, but its record could not be removed",
            "`parqctl quarantine list` completes it",
        ) from None
    audit.append(
        root,
        "quarantine.restore",
        "ok",
        id=entry.id,
        path=entry.original_path,
        restored_to=_recorded_path(root, target),
        sha256=entry.sha256,
        command=lock.command,
    )
    return entry, target


def purge(root: Path, entry_ids: Iterable[str], *, lock: RunLock) -> list[QuarantineEntry]:
    """Delete quarantined files and their records: the only deletion in parqctl."""
    _check_lock(root, lock)
    chosen = [find(root, i) for i in entry_ids]
    for entry in chosen:
        if entry.pending:
            raise ParqctlError(
                f"quarantine entry {entry.id} is {entry.state}",
                "run `parqctl quarantine list` to reconcile it first",
            )
    purged = []
    for entry in chosen:
        _write_manifest(replace(entry, state=PURGING))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.stored_path)
        _remove_entry(entry.directory)
        audit.append(
            root,
            "quarantine.purge",
            "ok",
            id=entry.id,
            path=entry.original_path,
            size=entry.size,
            sha256=entry.sha256,
            file_was_present=entry.payload_present,
            command=lock.command,
        )
        purged.append(entry)
    return purged


def reconcile(root: Path, *, lock: RunLock) -> list[Reconciliation]:
    """Finish or undo every move a crash interrupted; nothing is ever lost doing it."""
    _check_lock(root, lock)
    done = []
    for entry in entries(root):
        if entry.pending:
            result = _reconcile_one(root, entry)
            audit.append(
                root,
                "quarantine.reconcile",
                result.outcome,
                id=entry.id,
                was=entry.state,
                detail=result.detail,
                command=lock.command,
            )
            done.append(result)
    _remove_unrecorded_dirs(root)
    return done


def _reconcile_one(root: Path, entry: QuarantineEntry) -> Reconciliation:
    original = root / entry.original_path
    if entry.state == MOVING:
        if entry.payload_present:
            _write_manifest(replace(entry, state=DONE))
            return Reconciliation(entry.id, MOVING, "completed", "the file had been moved in")
        if os.path.lexists(original):
            _remove_entry(entry.directory)
            detail = f"the file never left {entry.original_path}; the entry was dropped"
            return Reconciliation(entry.id, MOVING, "rolled back", detail)
        _write_manifest(replace(entry, state=DONE))
        return Reconciliation(entry.id, MOVING, "file missing", "the file is in neither place")
    if entry.state == RESTORING:
        if entry.payload_present:
            _write_manifest(replace(entry, state=DONE, restore_to=None))
            return Reconciliation(entry.id, RESTORING, "rolled back", "the file is still here")
        target = _recorded_target(root, entry.restore_to)
        if target is not None and os.path.lexists(target):
            _remove_entry(entry.directory)
            return Reconciliation(entry.id, RESTORING, "completed", f"restored to {target}")
        _write_manifest(replace(entry, state=DONE, restore_to=None))
        return Reconciliation(entry.id, RESTORING, "file missing", "the file is in neither place")
    # PURGING: the operator confirmed the deletion, but a file still here is kept.
    if entry.payload_present:
        _write_manifest(replace(entry, state=DONE))
        return Reconciliation(entry.id, PURGING, "rolled back", "the file was not deleted")
    _remove_entry(entry.directory)
    return Reconciliation(entry.id, PURGING, "completed", "the file had been deleted")


# --- helpers ------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_lock(root: Path, lock: RunLock) -> None:
    if not lock.held or Path(lock.workspace_root).absolute() != Path(root).absolute():
        raise ParqctlError(
            "quarantine changes need the workspace's run lock", "hold it with run_lock.hold()"
        )
    lock.check()


def _data_file(root: Path, path: Path) -> Path:
    """``path`` as a path under ``root``, if it is a regular file below ``<root>/data`` or
    in a legacy folder at the root (``<root>/stocks_<iv>/``, where the collector keeps it)."""
    given = Path(path)
    absolute = given if given.is_absolute() else root / given
    # Resolve the directory, not the file: a symlink is refused rather than followed.
    source = Path(os.path.realpath(absolute.parent)) / absolute.name
    real_root = Path(os.path.realpath(root))
    data_dir = real_root / "data"
    in_root_legacy = source.parent.parent == real_root and interval_of_dataset_dir(
        source.parent.name
    )
    if not (source.is_relative_to(data_dir) or in_root_legacy):
        raise ParqctlError(
            f"{path} is not a bar file of the workspace (under data/ or stocks_<iv>/)",
            "quarantine holds data files; give the path of one",
        )
    if not os.path.lexists(source):
        raise ParqctlError(f"{path} does not exist", "check the path")
    if source.is_symlink() or not source.is_file():
        raise ParqctlError(f"{path} is not a regular file", "quarantine moves one file at a time")
    return root / source.relative_to(real_root)


def _make_parents(directory: Path) -> list[Path]:
    """``mkdir -p``; returns the directories it created, outermost first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        created.mkdir()
    return list(reversed(missing))


def _os_failure(exc: OSError, what: str, outcome: str) -> ParqctlError:
    """One line for an OSError: what failed, on which file, why, and what to do."""
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in what else ""
    if exc.errno == errno.ENOSPC:
        return DiskSpaceError(f"{what}: {reason}{where}", f"{outcome}; free some space first")
    if exc.errno == errno.EXDEV:
        hint = "quarantine moves files by rename, which cannot cross mount points"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "check the permissions, attributes (lsattr) and mount options of those paths"
    else:
        hint = "check the disk and the paths"
    return ParqctlError(f"{what}: {reason}{where}", f"{outcome}; {hint}")


def _inside(path: Path, directory: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(directory))
    except ValueError:
        return False
    return True


def _recorded_path(root: Path, target: Path) -> str:
    return str(target.relative_to(root)) if _inside(target, root) else str(target)


def _recorded_target(root: Path, recorded: str | None) -> Path | None:
    if not recorded:
        return None
    path = Path(recorded)
    return path if path.is_absolute() else root / path


def _who(lock: RunLock) -> dict[str, Any]:
    return {
        "user": lock.owner.get("user"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": lock.command,
    }


def _ensure_manifest_room(root: Path) -> None:
    status = disk_status(root, load_config(root).watermarks)
    if status.free < MANIFEST_ROOM_BYTES:
        raise DiskSpaceError(
            f"the disk at {root} is full ({status.free:,} bytes free)",
            "free some space first; `parqctl quarantine purge` deletes quarantined files",
        )


def _write_manifest(entry: QuarantineEntry) -> None:
    write_json(entry.directory / MANIFEST, entry.manifest())


def _remove_entry(directory: Path) -> None:
    """Remove an entry's record once its file has left: manifest, payload dir, the dir."""
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(directory / PAYLOAD)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / MANIFEST)
    for leftover in directory.iterdir():
        if is_temp_name(leftover.name):
            leftover.unlink()
    os.rmdir(directory)
    fsync_dir(directory.parent)


def _remove_unrecorded_dirs(root: Path) -> None:
    """Entry directories a crash left before their manifest was written, when empty."""
    base = quarantine_dir(root)
    if not base.is_dir():
        return
    for directory in base.iterdir():
        if not directory.is_dir() or (directory / MANIFEST).exists():
            continue
        payload = directory / PAYLOAD
        if payload.is_dir() and not any(payload.iterdir()):
            payload.rmdir()
        if not any(p for p in directory.iterdir() if not is_temp_name(p.name)):
            _remove_entry(directory)
