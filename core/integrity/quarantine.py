"""Quarantine: move a suspicious data file aside, keep a record of why, restore or purge it.

An entry is ``.parqctl/quarantine/<id>/`` holding ``manifest.json`` and the file itself in
``payload/``. A file enters by rename on the same filesystem (atomic, no copy). Every
change is recorded before and after it happens: the manifest is written with a state that
says what is about to happen (``moving``, ``restoring``, ``purging``), then the file is
moved, then the record is completed. A crash in between leaves a manifest whose state and
the files on disk tell what happened, and ``reconcile`` finishes or undoes it without
losing the file. Purge is the only way anything is deleted.

A manifest is never trusted: each is validated when it is read (its stored name a plain
file name inside its own ``payload/``, its original path a relative path under ``data/``
or a root ``stocks_<iv>/``, the stored file a regular file of the recorded size), and the
sha256 is checked again before any purge or restore. An entry that fails is listed as
``invalid`` with the reason and never acted on. Every move and deletion walks down from
the workspace root without following links (``core.safety.atomic.open_dir``), so a symbolic link
in place of ``.parqctl``, the quarantine or an entry is refused, never written through.

Writers pass the run lock they hold (``core.safety.run_lock.hold``): the collector takes the same
lock, so nothing else creates or moves files under us.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.availability import index_journal
from core.config import load_config
from core.disk.watermarks import disk_status
from core.errors import DataError, DiskSpaceError, ParqctlError
from core.safety import atomic, audit, untrusted_json
from core.safety.atomic import UnsafeLinkError, fsync_dir, is_temp_name, write_json
from core.safety.run_lock import RunLock
from core.store.layout import interval_of_dataset_dir
from core.store.workspace import LOCK_DIR, STATE_DIR

QUARANTINE_DIR = Path(STATE_DIR) / "quarantine"
MANIFEST = "manifest.json"
PAYLOAD = "payload"
SCHEMA_VERSION = 1
# A move by rename adds no data; only the manifest needs room. Refusing at the critical
# watermark would block exactly the clean-up an operator does on a full disk.
MANIFEST_ROOM_BYTES = 1024 * 1024
# A manifest is a few hundred bytes; anything far larger is not one.
MAX_MANIFEST_BYTES = 1024 * 1024

MOVING, DONE, RESTORING, PURGING = "moving", "done", "restoring", "purging"
PENDING_STATES = (MOVING, RESTORING, PURGING)
STATES = (DONE, *PENDING_STATES)
INVALID = "invalid"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined file and its record.

    ``problem`` says why the record cannot be trusted (an ``invalid`` entry): its other
    fields are then whatever could be read, for display only, and nothing acts on it.
    """

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
    problem: str | None = None

    @property
    def stored_path(self) -> Path:
        return self.directory / PAYLOAD / self.stored_name

    @property
    def valid(self) -> bool:
        return self.problem is None

    @property
    def pending(self) -> bool:
        return self.valid and self.state in PENDING_STATES

    @property
    def condition(self) -> str:
        """``ok``, ``missing`` (its file is gone), ``invalid``, or the pending state."""
        if not self.valid:
            return INVALID
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
            "problem": self.problem,
            "stored_path": str(self.stored_path),
        }


@dataclass(frozen=True)
class Reconciliation:
    """What ``reconcile`` did with one interrupted entry."""

    id: str
    was: str
    outcome: str  # "completed", "rolled back", "file missing", "left alone"
    detail: str


@dataclass(frozen=True)
class QuarantineTotals:
    entries: int
    bytes: int
    pending: int
    invalid: int = 0


class _Invalid(Exception):
    """Why a manifest cannot be trusted (one line)."""


def quarantine_dir(root: Path) -> Path:
    return root / QUARANTINE_DIR


def invalid_error(entry: QuarantineEntry) -> ParqctlError:
    return ParqctlError(
        f"quarantine entry {entry.id} is invalid ({entry.problem}): it is left alone",
        f"inspect {entry.directory} by hand",
    )


# --- reading ------------------------------------------------------------------------------


def entries(root: Path) -> list[QuarantineEntry]:
    """Every entry, oldest first, invalid ones included (with their problem). Reads only;
    see ``reconcile`` for interrupted ones. A link in place of ``.parqctl`` or the
    quarantine is refused (``UnsafeLinkError``), never read through."""
    base = quarantine_dir(root)
    try:
        base_fd = atomic.open_dir(root, QUARANTINE_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    try:
        with os.scandir(base_fd) as scan:
            names = sorted(
                e.name for e in scan if e.is_symlink() or e.is_dir(follow_symlinks=False)
            )
    finally:
        os.close(base_fd)
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
        bytes=sum(e.size for e in found if e.valid and e.payload_present),
        pending=sum(e.pending for e in found),
        invalid=sum(not e.valid for e in found),
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
    """The valid entries quarantined at least ``days`` ago (an invalid one's age is
    not known)."""
    return [e for e in found if e.valid and now - e.quarantined_at >= days * 86400]


def _load(directory: Path) -> QuarantineEntry | None:
    """The entry in ``directory``; None when it has no manifest (a crash before it was
    written: ``reconcile`` tidies those). Never raises for what the files hold: an entry
    that cannot be trusted comes back with its ``problem``."""
    raw: Any = None
    try:
        if os.path.islink(directory):
            raise _Invalid(f"the entry is a symbolic link to {os.readlink(directory)}")
        raw = _read_manifest(directory / MANIFEST)
        if raw is None:
            return None
        entry = _entry_from_manifest(raw, directory)
        return replace(entry, payload_present=_check_payload(entry))
    except _Invalid as why:
        return _invalid_entry(directory, raw, str(why))
    except OSError as exc:
        return _invalid_entry(directory, raw, f"cannot read it: {exc.strerror or exc}")


def _read_manifest(path: Path) -> Any:
    """The parsed manifest; None when there is none."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        raise _Invalid(f"{MANIFEST} is a symbolic link to {os.readlink(path)}")
    if not stat.S_ISREG(mode):
        raise _Invalid(f"{MANIFEST} is not a regular file")
    fd = os.open(path, _NOFOLLOW_READ)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Invalid(f"{MANIFEST} is not a regular file")
        data = os.read(fd, MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:
        raise _Invalid(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} bytes")
    try:
        return untrusted_json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Invalid(f"{MANIFEST} is not UTF-8 text") from None
    except RecursionError:
        raise _Invalid(f"{MANIFEST} is nested too deeply to be a manifest") from None
    except ValueError as exc:
        raise _Invalid(f"{MANIFEST} is not JSON ({exc})") from None


def _entry_from_manifest(raw: Any, directory: Path) -> QuarantineEntry:
    """The entry a manifest describes, every field checked; else ``_Invalid`` naming it."""
    if not isinstance(raw, dict):
        raise _Invalid(f"{MANIFEST} is not a quarantine manifest (not a JSON object)")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise _Invalid(
            f"{MANIFEST} is not a quarantine manifest parqctl can read "
            f"(schema_version {raw.get('schema_version')!r})"
        )
    entry_id = _field(raw, "id", str)
    if entry_id != directory.name:
        raise _Invalid(f"id {entry_id!r} is not the name of its directory")
    state = _field(raw, "state", str)
    if state not in STATES:
        raise _Invalid(f"state {state!r} is not one parqctl writes")
    stored_name = _field(raw, "stored_name", str)
    if not _plain_name(stored_name):
        raise _Invalid(f"stored_name {stored_name!r} is not a plain file name")
    original_path = _field(raw, "original_path", str)
    if not _data_path(original_path):
        raise _Invalid(
            f"original_path {original_path!r} is not a relative path under data/ or "
            "stocks_<interval>/"
        )
    restore_to = raw.get("restore_to")
    if restore_to is not None and not (isinstance(restore_to, str) and _workspace_path(restore_to)):
        raise _Invalid(f"restore_to {restore_to!r} is not a relative path in the workspace")
    size = _field(raw, "size", int)
    if size < 0:
        raise _Invalid(f"size {size!r} is negative")
    sha256 = _field(raw, "sha256", str)
    if not _SHA256.match(sha256):
        raise _Invalid(f"sha256 {sha256!r} is not a SHA-256 digest")
    quarantined_at = float(_field(raw, "quarantined_at", (int, float)))
    if not math.isfinite(quarantined_at):
        raise _Invalid("quarantined_at is not a time")
    finding = raw.get("finding")
    who = raw.get("who") or {}
    return QuarantineEntry(
        id=entry_id,
        state=state,
        original_path=original_path,
        stored_name=stored_name,
        size=size,
        sha256=sha256,
        reason=str(raw.get("reason", "")),
        finding=finding if isinstance(finding, dict) else None,
        who=who if isinstance(who, dict) else {},
        when=_field(raw, "when", str),
        quarantined_at=quarantined_at,
        directory=directory,
        restore_to=restore_to,
    )


def _field(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise _Invalid(f"{key} is missing or not a {getattr(kind, '__name__', 'number')}")
    return value


def _plain_name(name: str) -> bool:
    """One file name: no directory part, not . or .. (any name ``add`` can move passes)."""
    return name not in ("", ".", "..") and "/" not in name and "\x00" not in name


def _workspace_path(text: str) -> bool:
    """A relative path of plain components, outside parqctl's state and the run lock."""
    parts = text.split("/")
    return (
        not text.startswith("/")
        and all(_plain_name(p) for p in parts)
        and parts[0] not in (STATE_DIR, LOCK_DIR)
    )


def _data_path(text: str) -> bool:
    """A bar file's place: under ``data/``, or in a root legacy folder ``stocks_<iv>/``."""
    if not _workspace_path(text):
        return False
    parts = text.split("/")
    if parts[0] == "data":
        return len(parts) >= 2
    return len(parts) == 2 and interval_of_dataset_dir(parts[0]) is not None


def _check_payload(entry: QuarantineEntry) -> bool:
    """Whether the stored file is there; ``_Invalid`` when ``payload/`` or the file is not
    what parqctl made (a link, not a regular file, another size, files beside it)."""
    payload = entry.directory / PAYLOAD
    try:
        mode = os.lstat(payload).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise _Invalid(f"{PAYLOAD}/ is a symbolic link to {os.readlink(payload)}")
    if not stat.S_ISDIR(mode):
        raise _Invalid(f"{PAYLOAD} is not a directory")
    others = sorted(n for n in os.listdir(payload) if n != entry.stored_name)
    if others:
        raise _Invalid(f"{PAYLOAD}/ holds files the manifest does not name: {others[0]!r}")
    try:
        st = os.lstat(entry.stored_path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise _Invalid(f"the stored file {PAYLOAD}/{entry.stored_name} is {kind}")
    if st.st_size != entry.size:
        raise _Invalid(
            f"the stored file is {st.st_size:,} bytes but the manifest's size is {entry.size:,}"
        )
    return True


def _invalid_entry(directory: Path, raw: Any, problem: str) -> QuarantineEntry:
    """An entry for display only: what could be read of it, and why it is not trusted."""
    raw = raw if isinstance(raw, dict) else {}

    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    def number(key: str, default: float) -> float:
        value = raw.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else default

    try:
        made = os.lstat(directory).st_mtime
    except OSError:
        made = 0.0
    return QuarantineEntry(
        id=directory.name,
        state=INVALID,
        original_path=text("original_path"),
        stored_name=text("stored_name"),
        size=max(0, int(number("size", 0))),
        sha256=text("sha256"),
        reason=text("reason"),
        finding=None,
        who={},
        when=text("when"),
        quarantined_at=number("quarantined_at", made),
        directory=directory,
        payload_present=False,
        problem=problem,
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
        with contextlib.ExitStack() as fds:
            base_fd = _enter(fds, atomic.open_dir(root, QUARANTINE_DIR, create=True))
            source_fd = _enter(fds, atomic.open_dir(root, source.relative_to(root).parent))
            if (
                os.stat(source.name, dir_fd=source_fd, follow_symlinks=False).st_dev
                != os.fstat(base_fd).st_dev
            ):
                raise ParqctlError(
                    f"{source} is on another filesystem than {base}",
                    "quarantine moves files by rename; move it by hand or put .parqctl on "
                    "that filesystem",
                )
            moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
            entry_id = f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            os.mkdir(entry_id, 0o755, dir_fd=base_fd)
            directory = base / entry_id
            entry_fd = _enter(fds, os.open(entry_id, _DIR, dir_fd=base_fd))
            os.mkdir(PAYLOAD, 0o755, dir_fd=entry_fd)
            size, digest = _digest(source.name, source_fd, str(source))
            entry = QuarantineEntry(
                id=entry_id,
                state=MOVING,
                original_path=source.relative_to(root).as_posix(),
                stored_name=source.name,
                size=size,
                sha256=digest,
                reason=reason,
                finding=finding,
                who=_who(lock),
                when=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
                quarantined_at=moment.timestamp(),
                directory=directory,
            )
            _write_manifest(root, entry)
            os.fsync(base_fd)
            _rename(root, source, entry.stored_path)
    except (OSError, ParqctlError) as exc:
        # The file has not moved: drop the record begun for it, so nothing changed.
        if directory is not None:
            with contextlib.suppress(OSError, ParqctlError):
                _remove_entry(root, directory)
        if isinstance(exc, ParqctlError):
            raise
        raise _os_failure(exc, f"cannot quarantine {path}", "nothing was moved") from None
    try:
        fsync_dir(source.parent)
        fsync_dir(entry.stored_path.parent)
        entry = replace(entry, state=DONE)
        _write_manifest(root, entry)
    except OSError as exc:
        if isinstance(exc, UnsafeLinkError):
            raise
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
    absolute; it must be inside the workspace); refuses to replace anything."""
    _check_lock(root, lock)
    entry = find(root, entry_id)
    if not entry.valid:
        raise invalid_error(entry)
    if entry.state != DONE or not entry.payload_present:
        raise ParqctlError(
            f"quarantine entry {entry.id} is {entry.condition}: it cannot be restored",
            "run `parqctl quarantine list` to reconcile it first",
        )
    rel = _restore_target(root, to) if to is not None else Path(entry.original_path)
    target = root / rel
    made: list[Path] = []  # directories created for the target, removed again on failure
    recorded = False
    try:
        with contextlib.ExitStack() as fds:
            payload_fd = fds.enter_context(_payload_dir(root, entry))
            _verify(entry, payload_fd, "nothing was moved")
            target_fd = _enter(fds, atomic.open_dir(root, rel.parent, create=True, made=made))
            if _exists(rel.name, target_fd):
                raise ParqctlError(
                    f"{target} is taken (the collector may have written a new file there)",
                    "restore to another path with "
                    f"`parqctl quarantine restore {entry.id} --to PATH`",
                )
            if os.fstat(target_fd).st_dev != os.fstat(payload_fd).st_dev:
                raise ParqctlError(
                    f"{target} is on another filesystem than the quarantine",
                    "restore to a path on the workspace's filesystem",
                )
            _ensure_manifest_room(root)
            _write_manifest(root, replace(entry, state=RESTORING, restore_to=rel.as_posix()))
            recorded = True
            _rename(root, entry.stored_path, target)
    except (OSError, ParqctlError) as exc:
        # The file has not moved: put the record and the directories back as they were.
        with contextlib.suppress(OSError, ParqctlError):
            if recorded:
                _write_manifest(root, entry)
            for directory in reversed(made):
                directory.rmdir()
        if isinstance(exc, ParqctlError):
            raise
        raise _os_failure(
            exc, f"cannot restore {entry.stored_path} to {target}", "nothing was moved"
        ) from None
    try:
        fsync_dir(target.parent)
        _remove_entry(root, entry.directory)
    except OSError as exc:
        if isinstance(exc, UnsafeLinkError):
            raise
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
        restored_to=rel.as_posix(),
        sha256=entry.sha256,
        command=lock.command,
    )
    return entry, target


def purge(root: Path, entry_ids: Iterable[str], *, lock: RunLock) -> list[QuarantineEntry]:
    """Delete quarantined files and their records: the only deletion in parqctl.

    Every chosen entry is checked first (valid, not interrupted, its file still the one
    recorded, by size and sha256); if any is not, nothing is deleted."""
    _check_lock(root, lock)
    chosen = [find(root, i) for i in entry_ids]
    for entry in chosen:
        if not entry.valid:
            raise invalid_error(entry)
        if entry.pending:
            raise ParqctlError(
                f"quarantine entry {entry.id} is {entry.state}",
                "run `parqctl quarantine list` to reconcile it first",
            )
    for entry in chosen:
        if entry.payload_present:
            with _payload_dir(root, entry) as payload_fd:
                _verify(entry, payload_fd, "nothing was deleted")
    purged = []
    for entry in chosen:
        try:
            _write_manifest(root, replace(entry, state=PURGING))
            with _payload_dir(root, entry) as payload_fd, contextlib.suppress(FileNotFoundError):
                os.unlink(entry.stored_name, dir_fd=payload_fd)
            _remove_entry(root, entry.directory)
        except OSError as exc:
            if isinstance(exc, UnsafeLinkError):
                raise
            raise _os_failure(
                exc, f"cannot purge quarantine entry {entry.id}", "inspect it by hand"
            ) from None
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
    """Finish or undo every move a crash interrupted; nothing is ever lost doing it.
    Invalid entries are never touched; one the filesystem will not let us finish is left
    as it is and said so."""
    _check_lock(root, lock)
    done = []
    for entry in entries(root):
        if entry.pending:
            try:
                result = _reconcile_one(root, entry)
            except OSError as exc:
                if isinstance(exc, UnsafeLinkError):
                    raise
                result = Reconciliation(
                    entry.id, entry.state, "left alone", f"{exc.strerror or exc}"
                )
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
            _write_manifest(root, replace(entry, state=DONE))
            return Reconciliation(entry.id, MOVING, "completed", "the file had been moved in")
        if os.path.lexists(original):
            _remove_entry(root, entry.directory)
            detail = f"the file never left {entry.original_path}; the entry was dropped"
            return Reconciliation(entry.id, MOVING, "rolled back", detail)
        _write_manifest(root, replace(entry, state=DONE))
        return Reconciliation(entry.id, MOVING, "file missing", "the file is in neither place")
    if entry.state == RESTORING:
        if entry.payload_present:
            _write_manifest(root, replace(entry, state=DONE, restore_to=None))
            return Reconciliation(entry.id, RESTORING, "rolled back", "the file is still here")
        target = root / entry.restore_to if entry.restore_to else None
        if target is not None and os.path.lexists(target):
            _remove_entry(root, entry.directory)
            return Reconciliation(entry.id, RESTORING, "completed", f"restored to {target}")
        _write_manifest(root, replace(entry, state=DONE, restore_to=None))
        return Reconciliation(entry.id, RESTORING, "file missing", "the file is in neither place")
    # PURGING: the operator confirmed the deletion, but a file still here is kept.
    if entry.payload_present:
        _write_manifest(root, replace(entry, state=DONE))
        return Reconciliation(entry.id, PURGING, "rolled back", "the file was not deleted")
    _remove_entry(root, entry.directory)
    return Reconciliation(entry.id, PURGING, "completed", "the file had been deleted")


# --- helpers ------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(name: str, dir_fd: int, shown: str) -> tuple[int, str]:
    """Size and sha256 of the regular file ``name`` in ``dir_fd``, opened without following
    a link (refused, like anything but a regular file)."""
    try:
        fd = os.open(name, _NOFOLLOW_READ, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ParqctlError(f"{shown} is a symbolic link", "nothing was moved") from None
        raise
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ParqctlError(f"{shown} is not a regular file", "nothing was moved")
        digest, size = hashlib.sha256(), 0
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _verify(entry: QuarantineEntry, payload_fd: int, outcome: str) -> None:
    """The stored file is still the one recorded (size and sha256), or DataError."""
    size, digest = _digest(entry.stored_name, payload_fd, str(entry.stored_path))
    if size != entry.size or digest != entry.sha256:
        what = "size" if size != entry.size else "sha256"
        raise DataError(
            f"{entry.stored_path} no longer matches the {what} recorded when it was "
            f"quarantined (entry {entry.id})",
            f"inspect it by hand; {outcome}",
        )


def _payload_dir(root: Path, entry: QuarantineEntry) -> contextlib.AbstractContextManager[int]:
    """The entry's ``payload/``, opened without following a link."""
    return atomic.opened_dir(root, QUARANTINE_DIR / entry.id / PAYLOAD)


def _enter(stack: contextlib.ExitStack, fd: int) -> int:
    stack.callback(os.close, fd)
    return fd


def _rename(root: Path, source: Path, target: Path) -> None:
    """``os.rename`` by path (the crash tests watch it), each side checked for links on the
    way down from the root just before: the directories were opened without following
    links a moment ago, this closes all but the last instant of that window."""
    atomic.confined(root, source)
    atomic.confined(root, target)
    os.rename(source, target)
    index_journal.note_changed(root, [source, target])  # the file index re-reads both


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


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


def _restore_target(root: Path, to: Path) -> Path:
    """``--to``, relative to the workspace root: inside the workspace, outside its state."""
    given = Path(to)
    rel: Path | None = given
    if given.is_absolute():
        rel = None
        for base in (Path(root), Path(os.path.realpath(root))):
            with contextlib.suppress(ValueError):
                rel = given.relative_to(base)
                break
    if rel is None or ".." in rel.parts or not rel.parts:
        raise ParqctlError(
            f"{to} is outside the workspace {root}",
            "restore to a path inside it: parqctl writes only inside its workspace",
        )
    if not _workspace_path(rel.as_posix()):
        raise ParqctlError(f"{to} is inside parqctl's own state", "restore to another path")
    return rel


def _os_failure(exc: OSError, what: str, outcome: str) -> ParqctlError:
    """One line for an OSError: what failed, on which file, why, and what to do."""
    reason = exc.strerror or str(exc)
    shown = exc.filename and os.path.isabs(str(exc.filename)) and str(exc.filename) not in what
    where = f" ({exc.filename})" if shown else ""
    if exc.errno == errno.ENOSPC:
        return DiskSpaceError(f"{what}: {reason}{where}", f"{outcome}; free some space first")
    if exc.errno == errno.EXDEV:
        hint = "quarantine moves files by rename, which cannot cross mount points"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "check the permissions, attributes (lsattr) and mount options of those paths"
    else:
        hint = "check the disk and the paths"
    return ParqctlError(f"{what}: {reason}{where}", f"{outcome}; {hint}")


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


def _write_manifest(root: Path, entry: QuarantineEntry) -> None:
    """Atomically, after checking no link has taken the place of a directory on the way."""
    write_json(atomic.confined(root, entry.directory / MANIFEST), entry.manifest())


@contextlib.contextmanager
def _entry_dir(root: Path, directory: Path) -> Iterator[tuple[int, int]]:
    """(quarantine dir fd, entry dir fd), both reached without following a link."""
    with atomic.opened_dir(root, QUARANTINE_DIR) as base_fd:
        try:
            entry_fd = os.open(directory.name, _DIR, dir_fd=base_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise atomic.unsafe_path_error(directory) from None
            raise
        try:
            yield base_fd, entry_fd
        finally:
            os.close(entry_fd)


def _remove_entry(root: Path, directory: Path) -> None:
    """Remove an entry's record once its file has left: manifest, payload dir, the dir."""
    with _entry_dir(root, directory) as (base_fd, entry_fd):
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(PAYLOAD, dir_fd=entry_fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(MANIFEST, dir_fd=entry_fd)
        for leftover in os.listdir(entry_fd):
            if is_temp_name(leftover):
                os.unlink(leftover, dir_fd=entry_fd)
        os.rmdir(directory.name, dir_fd=base_fd)
        os.fsync(base_fd)


def _remove_unrecorded_dirs(root: Path) -> None:
    """Entry directories a crash left before their manifest was written, when empty."""
    try:
        base_fd = atomic.open_dir(root, QUARANTINE_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return
    base = quarantine_dir(root)
    try:
        for name in os.listdir(base_fd):
            try:
                if not stat.S_ISDIR(os.lstat(name, dir_fd=base_fd).st_mode):
                    continue  # a link or a file: not parqctl's, left alone
                entry_fd = os.open(name, _DIR, dir_fd=base_fd)
            except OSError:
                continue
            try:
                names = os.listdir(entry_fd)
                if MANIFEST in names:
                    continue
                if PAYLOAD in names:
                    with contextlib.suppress(OSError):  # only an empty directory goes
                        os.rmdir(PAYLOAD, dir_fd=entry_fd)
                    names = os.listdir(entry_fd)
                if any(not is_temp_name(n) for n in names):
                    continue
            finally:
                os.close(entry_fd)
            with contextlib.suppress(OSError):
                _remove_entry(root, base / name)
    finally:
        os.close(base_fd)
