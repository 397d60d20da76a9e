"""The workspace's global run lock, shared with the yf_parqed collector.

The lock is the directory ``<workspace>/.run_lock`` (mkdir is atomic) holding
``owner.json`` = ``{"pid", "host", "ts", "cwd"}``; parqctl adds ``writer``, ``command``,
``user``, ``process_start`` and ``boot_time`` (to tell a reused pid) and a random ``token``
so that it only ever releases its own lock. The collector removes both when done and
leaves them behind when it crashes, so a lock is judged before anyone is told to break
it: a lock whose holder is alive is never broken.

Removal (release and break) first renames ``.run_lock`` to a unique sibling, checks the
renamed owner.json is the one that was judged, and only then deletes it: a lock taken by
someone else in between is put back instead of deleted, and a crash mid-removal leaves
harmless litter rather than a half-removed lock.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import math
import os
import secrets
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import psutil

from core.errors import (
    DiskSpaceError,
    LockHeldError,
    LockLostError,
    NotAWorkspaceError,
    ParqctlError,
)
from core.safety import audit, untrusted_json
from core.safety.atomic import confined, is_temp_name, read_state_file, write_json
from core.store.metadata import file_kind

LOCK_DIR_NAME = ".run_lock"
OWNER_FILE = "owner.json"
LOSS_FILE = Path(".parqctl") / "lock_lost.json"  # the last writer whose lock was taken
WRITER = "parqctl"
# psutil's create_time is the boot time (whole seconds) plus clock ticks since boot.
PROCESS_START_TOLERANCE_S = 1.0
# A wrong STALE verdict lets someone break a live lock; a wrong LIVE one only makes an
# operator look twice. Wall-clock times move when the clock is stepped (NTP at boot), so
# the check for collector locks (process start vs the lock's ts) leans well towards LIVE.
LOCK_TS_TOLERANCE_S = 60.0
MAX_OWNER_BYTES = 64 * 1024
NOT_REGULAR = "not a regular file"
MAX_PID = 2**31 - 1
_ACQUIRE_ATTEMPTS = 3


class LockState(Enum):
    FREE = "free"
    LIVE = "live"
    STALE = "stale"
    FOREIGN = "foreign"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LockStatus:
    """The run lock as found on disk, and the verdict on its holder."""

    state: LockState
    reason: str
    lock_dir: Path
    pid: int | None = None
    host: str | None = None
    ts: float | None = None
    cwd: str | None = None
    writer: str | None = None
    command: str | None = None
    user: str | None = None
    process_start: float | None = None
    boot_time: float | None = None
    token: str | None = None
    age_seconds: float | None = None
    pid_alive: bool | None = None
    same_process: bool | None = None
    # owner.json exactly as read: break_lock compares it to tell the judged owner apart.
    owner_json: str | None = None

    @property
    def held(self) -> bool:
        return self.state is not LockState.FREE

    def holder_summary(self) -> str:
        """``pid 1234 on host-a (parqctl: parqctl migrate run), 3m old``."""
        who = f"pid {self.pid}" if self.pid is not None else "an unknown holder"
        if self.host:
            who += f" on {self.host}"
        if self.writer or self.command:
            who += f" ({': '.join(p for p in (self.writer, self.command) if p)})"
        elif self.pid is not None:
            who += " (collector)"
        if self.age_seconds is not None:
            who += f", {format_age(self.age_seconds)} old"
        return who

    def holder_fields(self) -> dict[str, Any]:
        """The owner's fields, for audit records and --json output."""
        return {
            "pid": self.pid,
            "host": self.host,
            "ts": self.ts,
            "cwd": self.cwd,
            "writer": self.writer,
            "command": self.command,
            "user": self.user,
            "token": self.token,
        }


def format_age(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


# --- inspecting ---------------------------------------------------------------------------


def inspect(workspace_root: Path | str, *, now: float | None = None) -> LockStatus:
    """Judge the run lock of a workspace: FREE, LIVE, STALE, FOREIGN or UNKNOWN.

    ``now`` (epoch seconds, default the clock) is what the lock's age is counted to.
    """
    return _judge(Path(workspace_root) / LOCK_DIR_NAME, time.time() if now is None else now)


class _MalformedOwner(ValueError):
    pass


def _judge(lock_dir: Path, now: float) -> LockStatus:
    try:
        dir_stat = os.lstat(lock_dir)
    except FileNotFoundError:
        return LockStatus(LockState.FREE, f"no {LOCK_DIR_NAME} directory", lock_dir)
    dir_age = max(now - dir_stat.st_mtime, 0.0)
    if not stat.S_ISDIR(dir_stat.st_mode):
        reason = f"{LOCK_DIR_NAME} exists but is not a directory"
        return LockStatus(LockState.UNKNOWN, reason, lock_dir, age_seconds=dir_age)
    text, problem = _read_owner_text(lock_dir)
    if text is None:
        if not os.path.lexists(lock_dir):
            return LockStatus(LockState.FREE, "the lock was released while inspecting", lock_dir)
        if problem.startswith(NOT_REGULAR):
            reason = (
                f"{OWNER_FILE} is {problem}: neither the collector nor parqctl writes one, "
                "so its holder cannot be judged"
            )
        else:
            reason = (
                f"{OWNER_FILE} is {problem}: its holder crashed between creating "
                f"{LOCK_DIR_NAME} and writing it, or is writing it now"
            )
        return LockStatus(LockState.UNKNOWN, reason, lock_dir, age_seconds=dir_age)
    try:
        owner = _parse_owner(text)
    except _MalformedOwner as exc:
        reason = f"{OWNER_FILE} is malformed ({exc}): its holder cannot be judged"
        return LockStatus(LockState.UNKNOWN, reason, lock_dir, age_seconds=dir_age, owner_json=text)
    ts = owner["ts"]
    age = max(now - ts, 0.0) if ts is not None else dir_age
    if not _is_this_host(owner["host"]):
        reason = (
            f"held from host {owner['host']}, not this one ({socket.gethostname()}): "
            "its pid cannot be checked from here"
        )
        return LockStatus(
            LockState.FOREIGN, reason, lock_dir, age_seconds=age, owner_json=text, **owner
        )
    state, alive, same, reason = _judge_local_pid(
        owner["pid"], ts, owner["process_start"], owner["boot_time"]
    )
    return LockStatus(
        state,
        reason,
        lock_dir,
        age_seconds=age,
        pid_alive=alive,
        same_process=same,
        owner_json=text,
        **owner,
    )


def _read_owner_text(lock_dir: Path) -> tuple[str | None, str]:
    """owner.json's text (at most MAX_OWNER_BYTES + 1 bytes of it), or None and what is
    wrong with it.

    Only a regular file is read, and not through a symbolic link (neither the collector
    nor parqctl writes one): a FIFO or a device there is reported, never waited on or
    read from (opened with O_NONBLOCK and O_NOFOLLOW, checked with fstat)."""
    path = lock_dir / OWNER_FILE
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):  # not even opened: opening some devices acts
            return None, f"{NOT_REGULAR} ({file_kind(mode)})"
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since the lstat
            return None, f"{NOT_REGULAR} (a symbolic link)"
        return None, f"unreadable ({exc.strerror or exc})"
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return None, f"{NOT_REGULAR} ({file_kind(mode)})"
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= MAX_OWNER_BYTES:
            chunk = os.read(fd, MAX_OWNER_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    finally:
        os.close(fd)
    # surrogateescape keeps any bytes, so two different files never read as equal.
    return b"".join(chunks).decode("utf-8", errors="surrogateescape"), ""


def _parse_owner(text: str) -> dict[str, Any]:
    if len(text) > MAX_OWNER_BYTES:
        raise _MalformedOwner("too large")
    try:
        data = untrusted_json.loads(text)
    except RecursionError:
        raise _MalformedOwner("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeError, a number of 5000 digits
        raise _MalformedOwner("not JSON") from exc
    if not isinstance(data, dict):
        raise _MalformedOwner("not a JSON object")
    pid = _as_pid(data.get("pid"))
    if pid is None:
        raise _MalformedOwner(f"no valid pid: {data.get('pid')!r}")
    host = data.get("host")
    if not isinstance(host, str) or not host.strip():
        raise _MalformedOwner("no host")
    return {
        "pid": pid,
        "host": host,
        "ts": _as_float(data.get("ts")),
        "cwd": _as_str(data.get("cwd")),
        "writer": _as_str(data.get("writer")),
        "command": _as_str(data.get("command")),
        "user": _as_str(data.get("user")),
        "process_start": _as_float(data.get("process_start")),
        "boot_time": _as_float(data.get("boot_time")),
        "token": _as_str(data.get("token")),
    }


def _as_pid(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PID:
        return value
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_this_host(host: str) -> bool:
    # Exact names only: "web1.dc1" vs "web1" could be two machines sharing the volume, and
    # judging a remote pid locally could call a live lock stale.
    return host.strip().casefold() == socket.gethostname().casefold()


def _judge_local_pid(
    pid: int, ts: float | None, process_start: float | None, boot_time: float | None
) -> tuple[LockState, bool, bool | None, str]:
    """(state, pid_alive, same_process, reason) for a lock held from this host."""
    try:
        process = psutil.Process(pid)
        status = process.status()
        created = process.create_time()
        booted = psutil.boot_time()
    except psutil.NoSuchProcess:
        return LockState.STALE, False, False, f"pid {pid} is not running on this host"
    except psutil.AccessDenied:
        return LockState.LIVE, True, None, f"pid {pid} is running (its start cannot be read)"
    if status == psutil.STATUS_ZOMBIE:
        return LockState.STALE, False, False, f"pid {pid} has exited (a zombie not yet reaped)"
    this = " (this process)" if pid == os.getpid() else ""
    if process_start is not None:
        if boot_time is not None:
            # Both sides as time since boot: immune to clock steps since the lock was taken.
            created, process_start = created - booted, process_start - boot_time
        if abs(created - process_start) <= PROCESS_START_TOLERANCE_S:
            reason = f"pid {pid}{this} is running and is the process that took the lock"
            return LockState.LIVE, True, True, reason
        reason = (
            f"pid {pid} now belongs to another process (started {created - process_start:+.0f}s "
            "from the holder's recorded start)"
        )
        return LockState.STALE, True, False, reason
    if ts is not None and created > ts + LOCK_TS_TOLERANCE_S:
        reason = (
            f"pid {pid} now belongs to another process, started {created - ts:.0f}s "
            "after the lock was taken"
        )
        return LockState.STALE, True, False, reason
    return LockState.LIVE, True, None, f"pid {pid}{this} is running"


# --- acquiring and releasing --------------------------------------------------------------


# The locks this process holds, by workspace: writers deep in the engine (metadata saves,
# promotions) check theirs is still there without being handed it.
_held: dict[Path, RunLock] = {}


def last_loss(workspace_root: Path | str) -> dict[str, Any] | None:
    """The last writer whose lock was taken from it, until that command runs through."""
    try:  # never through a link, never waiting on a FIFO (UnsafeLinkError is an OSError)
        raw = read_state_file(Path(workspace_root), LOSS_FILE, limit=MAX_OWNER_BYTES)
        data = untrusted_json.loads(raw) if raw is not None else None
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _record_loss(lock: RunLock, status: LockStatus) -> None:
    with contextlib.suppress(OSError):  # UnsafeLinkError too: never written through a link
        write_json(
            confined(lock.workspace_root, LOSS_FILE),
            {
                "command": lock.command,
                "at": time.time(),
                "holder": status.holder_summary() if status.pid is not None else None,
            },
        )


def _clear_loss(root: Path, command: str) -> None:
    loss = last_loss(root)
    if loss is not None and loss.get("command") == command:
        with contextlib.suppress(OSError):
            os.unlink(root / LOSS_FILE)


def ensure_still_held(workspace_root: Path | str) -> None:
    """Raise LockLostError if this process took the workspace's lock and it is no longer
    its own. The collector's cron mode removes any lock it finds and writes on, so a
    long writer calls this before each promotion and checkpoint, and stops there."""
    lock = _held.get(Path(workspace_root).absolute())
    if lock is not None:
        lock.check()


class RunLock:
    """A run lock held by this process; a context manager that releases it on exit."""

    def __init__(self, workspace_root: Path, owner: dict[str, Any], guard: _SignalGuard) -> None:
        self.workspace_root = workspace_root
        self.lock_dir = workspace_root / LOCK_DIR_NAME
        self.owner = owner
        self._guard = guard
        self._released = False
        self._lost = False
        _held[Path(workspace_root).absolute()] = self

    def check(self) -> None:
        """Raise LockLostError (audited once) unless ``.run_lock`` still carries our token."""
        if self._released:
            return
        text, _ = _read_owner_text(self.lock_dir)
        if not self._lost and _token_in(text) == self.token:
            return
        status = _judge(self.lock_dir, time.time())
        if status.state is LockState.FREE or status.pid is None:
            what = (
                "was removed by another program (the collector's --non-interactive update "
                "removes any lock it finds)"
            )
        else:
            what = f"was taken by {status.holder_summary()}"
        error = LockLostError(
            f"the run lock {what} while `{self.command}` was writing; it stopped at a safe "
            "point and wrote nothing more",
            f"once that run is over, run `{self.command}` again to resume",
        )
        if not self._lost:
            self._lost = True
            _record_loss(self, status)
            _audit_or_note(
                error,
                self.workspace_root,
                "lock.lost",
                "stopped",
                command=self.command,
                token=self.token,
                holder=status.holder_fields(),
            )
        raise error

    @property
    def token(self) -> str:
        return self.owner["token"]

    @property
    def command(self) -> str:
        return self.owner["command"]

    @property
    def held(self) -> bool:
        return not self._released

    def release(self) -> bool:
        """Remove the lock if it is still ours; True if it was removed. Idempotent."""
        if self._released:
            return False
        self._guard.hold_back()
        try:
            outcome = _remove_own_lock(self.lock_dir, self.token)
            self._released = True
            if outcome == "ok" and not self._lost:
                _clear_loss(self.workspace_root, self.command)
            if _held.get(Path(self.workspace_root).absolute()) is self:
                del _held[Path(self.workspace_root).absolute()]
        finally:
            pending = self._guard.disarm()
        audit.append(
            self.workspace_root, "lock.release", outcome, command=self.command, token=self.token
        )
        if pending is not None:
            raise _exception_for(pending)
        return outcome == "ok"

    def __enter__(self) -> RunLock:
        self._guard.arm()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"RunLock({str(self.lock_dir)!r}, {self.command!r}, {state})"


def acquire(workspace_root: Path | str, command: str) -> RunLock:
    """Take the lock or raise LockHeldError naming its holder. Prefer ``hold()``."""
    return _acquire(Path(workspace_root), command, _SignalGuard())


@contextlib.contextmanager
def hold(workspace_root: Path | str, command: str) -> Iterator[RunLock]:
    """``with hold(root, "parqctl migrate run") as lock:``: released on every way out.

    SIGTERM and SIGHUP become SystemExit from before the mkdir until the release, so a
    terminated command still removes its lock.
    """
    guard = _SignalGuard()
    guard.arm()
    try:
        lock = _acquire(Path(workspace_root), command, guard)
    except BaseException:
        guard.disarm()
        raise
    with lock:
        yield lock


def _acquire(root: Path, command: str, guard: _SignalGuard) -> RunLock:
    lock_dir = root / LOCK_DIR_NAME
    for _ in range(_ACQUIRE_ATTEMPTS):
        if _make_lock_dir(root, lock_dir):
            break
        status = _judge(lock_dir, time.time())
        if status.state is not LockState.FREE:
            error = _held_error(status)
            _audit_or_note(
                error,
                root,
                "lock.acquire",
                "refused",
                command=command,
                verdict=status.state.value,
                reason=status.reason,
                holder=status.holder_fields(),
            )
            raise error
    else:
        error = LockHeldError("the run lock keeps changing hands", "try again in a moment")
        _audit_or_note(error, root, "lock.acquire", "refused", command=command)
        raise error
    owner = _new_owner(command)
    _write_owner_or_undo(lock_dir, owner)
    try:
        audit.append(root, "lock.acquire", "ok", command=command, token=owner["token"])
    except BaseException:
        _remove_own_lock(lock_dir, owner["token"])
        raise
    return RunLock(root, owner, guard)


def _make_lock_dir(root: Path, lock_dir: Path) -> bool:
    """mkdir the lock; False if it already exists."""
    try:
        os.mkdir(lock_dir)
    except FileExistsError:
        return False
    except FileNotFoundError as exc:
        raise NotAWorkspaceError(
            f"workspace {root} does not exist", "give the path of a yf_parqed workspace"
        ) from exc
    except OSError as exc:
        raise ParqctlError(
            f"cannot create {lock_dir}: {exc.strerror or exc}",
            "check that the workspace is writable by this user",
        ) from exc
    return True


def _new_owner(command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "ts": time.time(),
        "cwd": os.getcwd(),
        "writer": WRITER,
        "command": command,
        "user": _current_user(),
        "process_start": psutil.Process().create_time(),
        "boot_time": psutil.boot_time(),
        "token": secrets.token_hex(16),
    }


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _write_owner_or_undo(lock_dir: Path, owner: dict[str, Any]) -> None:
    """Write owner.json atomically; on any failure remove the lock dir we just made."""
    try:
        write_json(lock_dir / OWNER_FILE, owner)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            _remove_own_lock(lock_dir, owner["token"], owner_may_be_missing=True)
        if isinstance(exc, OSError):
            error_type = DiskSpaceError if exc.errno == errno.ENOSPC else ParqctlError
            raise error_type(
                f"cannot write {lock_dir / OWNER_FILE}: {exc.strerror or exc}",
                "check free space and permissions in the workspace",
            ) from exc
        raise


def _remove_own_lock(lock_dir: Path, token: str, *, owner_may_be_missing: bool = False) -> str:
    """Remove the lock if it carries ``token``: "ok", "not-ours" or "gone"."""

    def is_ours(text: str | None) -> bool:
        return _token_in(text) == token or (owner_may_be_missing and text is None)

    text, _ = _read_owner_text(lock_dir)
    if not os.path.lexists(lock_dir):
        return "gone"
    if not is_ours(text):
        return "not-ours"
    try:
        aside = _take_aside(lock_dir, "released", is_ours)
    except _LockChangedHands:
        return "not-ours"
    if aside is None:
        return "gone"
    _discard(aside)
    return "ok"


def _token_in(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        data = untrusted_json.loads(text)
    except (ValueError, RecursionError):
        return None
    return _as_str(data.get("token")) if isinstance(data, dict) else None


def _held_error(status: LockStatus) -> LockHeldError:
    message = (
        f"the workspace is locked by {status.holder_summary()}; "
        f"{status.state.value.upper()} ({status.reason})"
    )
    return LockHeldError(message, _hint_for(status))


def _hint_for(status: LockStatus) -> str:
    if status.state is LockState.LIVE:
        return f"wait for pid {status.pid} to finish (a live lock is never broken)"
    if status.state is LockState.STALE:
        return "its holder is gone: remove the lock with `parqctl lock break`"
    if status.state is LockState.FOREIGN:
        return f"make sure nothing runs on {status.host}, then `parqctl lock break --force`"
    return "if no collector or parqctl is running, `parqctl lock break --force`"


# --- breaking -----------------------------------------------------------------------------


def break_lock(workspace_root: Path | str, *, force: bool = False) -> LockStatus:
    """Remove a lock whose holder is gone; returns the status that was broken.

    LIVE is never broken; STALE is; FOREIGN and UNKNOWN only with ``force``.
    """
    root = Path(workspace_root)
    lock_dir = root / LOCK_DIR_NAME
    status = _judge(lock_dir, time.time())
    refusal = break_refusal(status, force)
    if refusal is not None:
        _audit_or_note(refusal, root, "lock.break", "refused", **_break_details(status, force))
        raise refusal
    try:
        aside = _take_aside(lock_dir, "broken", lambda text: text == status.owner_json)
    except _LockChangedHands as exc:
        error = _changed_hands_error(exc.stranded)
        _audit_or_note(error, root, "lock.break", "aborted", **_break_details(status, force))
        raise error from None
    if aside is None:
        error = ParqctlError("the lock was released while breaking it", "nothing was broken")
        _audit_or_note(error, root, "lock.break", "aborted", **_break_details(status, force))
        raise error
    removed = _discard(aside)
    details = _break_details(status, force)
    if not removed:
        details["left_at"] = str(aside)
    audit.append(root, "lock.break", "ok", **details)
    return status


def break_refusal(status: LockStatus, force: bool) -> ParqctlError | None:
    """Why a lock in this state may not be broken (with ``force`` or not); None if it may."""
    if status.state is LockState.FREE:
        return ParqctlError("no lock to break", "the workspace is not locked")
    if status.state is LockState.LIVE:
        return _held_error(status)
    if status.state in (LockState.FOREIGN, LockState.UNKNOWN) and not force:
        return ParqctlError(
            f"refusing to break a {status.state.value} lock: {status.reason}",
            f"its holder cannot be checked from here; {_hint_for(status)}",
        )
    return None


def _break_details(status: LockStatus, force: bool) -> dict[str, Any]:
    return {
        "verdict": status.state.value,
        "reason": status.reason,
        "forced": force,
        "holder": status.holder_fields(),
    }


def _changed_hands_error(stranded: Path | None) -> ParqctlError:
    if stranded is None:
        return ParqctlError(
            "the lock changed hands while breaking it; it was left in place",
            "inspect it again before deciding",
        )
    return ParqctlError(
        f"the lock changed hands while breaking it and could not be put back: it is at {stranded}",
        f"if its holder is alive, move it back to {LOCK_DIR_NAME} once that name is free",
    )


# --- removal, shared by release and break -------------------------------------------------


class _LockChangedHands(Exception):
    def __init__(self, stranded: Path | None) -> None:
        super().__init__(str(stranded))
        self.stranded = stranded


def _take_aside(
    lock_dir: Path, label: str, is_expected: Callable[[str | None], bool]
) -> Path | None:
    """Rename the lock to a unique sibling if it is still the expected one.

    Returns the new path, None if the lock had vanished; raises _LockChangedHands (after
    putting it back where possible) if the renamed owner.json is not the expected one.
    """
    aside = lock_dir.with_name(f"{lock_dir.name}.{label}-{int(time.time())}-{secrets.token_hex(4)}")
    try:
        os.rename(lock_dir, aside)
    except FileNotFoundError:
        return None
    text, _ = _read_owner_text(aside)
    if is_expected(text):
        return aside
    raise _LockChangedHands(None if _put_back(aside, lock_dir) else aside)


def _put_back(aside: Path, lock_dir: Path) -> bool:
    # rename() would silently replace an empty directory, i.e. a lock someone has just
    # mkdir'd but not yet written: only put back onto a free name. A narrow race remains.
    if os.path.lexists(lock_dir):
        return False
    try:
        os.rename(aside, lock_dir)
    except OSError:
        return False
    return True


def _discard(aside: Path) -> bool:
    """Delete a renamed lock: owner.json, owner temp files, the dir. False if anything else
    was in it (kept, never deleted blindly) or it is not a plain directory."""
    try:
        if not stat.S_ISDIR(os.lstat(aside).st_mode):
            return False
        for entry in os.scandir(aside):
            if entry.name == OWNER_FILE or is_temp_name(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        os.rmdir(aside)
    except OSError:
        return False
    return True


# --- audit --------------------------------------------------------------------------------


def _audit_or_note(
    error: ParqctlError, root: Path, action: str, result: str, **details: Any
) -> None:
    """Audit a refusal; if the log cannot be written, the refusal still is what is raised."""
    try:
        audit.append(root, action, result, **details)
    except OSError as exc:
        error.add_note(f"(the audit log could not be written: {exc})")


# --- signals ------------------------------------------------------------------------------

_TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exception_for(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return SystemExit(128 + signum)


class _SignalGuard:
    """While a lock is held, turn SIGTERM/SIGHUP into SystemExit so ``finally`` runs;
    while it is being released, hold those and SIGINT back until the release is done.

    Only in the main thread (the only one Python lets set handlers), and only over the
    default action: an ignored signal or an application's own handler is left alone.
    """

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}
        self._releasing = False
        self._pending: int | None = None

    def arm(self) -> None:
        if self._saved or not _in_main_thread():
            return
        for signum in _TERMINATING_SIGNALS:
            self._take_over(signum, signal.SIG_DFL)

    def hold_back(self) -> None:
        # Released from another thread, a signal must still reach the main thread at once:
        # held back, it would be re-raised in the releasing thread and lost there.
        if not _in_main_thread():
            return
        self._releasing = True
        self._take_over(signal.SIGINT, signal.default_int_handler)

    def disarm(self) -> int | None:
        """Restore the previous handlers; return a signal held back during release."""
        if _in_main_thread():
            for signum, previous in self._saved.items():
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous)
        # From another thread the handlers cannot be restored; they keep raising on
        # SIGTERM, which still ends the process through its finally blocks.
        self._saved.clear()
        self._releasing = False
        pending, self._pending = self._pending, None
        return pending

    def _take_over(self, signum: int, only_from: Any) -> None:
        if signum in self._saved or signal.getsignal(signum) != only_from:
            return
        self._saved[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._releasing:
            self._pending = self._pending or signum
            return
        raise _exception_for(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
