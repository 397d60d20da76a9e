"""Plain-text formatting shared by the CLI and the console."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from core.safety import run_lock

# Characters a terminal acts on rather than shows: C0 controls (ESC starts colour, cursor,
# title and clipboard sequences; BEL, backspace...), DEL, C1 controls (0x9b is a one-byte
# CSI), the bidirectional overrides that reorder what is shown, and lone surrogates (a
# file name's undecodable bytes: written back raw, or a UnicodeEncodeError). A ticker
# name, a file name or a message can carry any of them (tickers.json and file names are
# not ours).
_TERMINAL_CONTROLS = (
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *range(0xD800, 0xE000),
)
_LINE_LAYOUT = ("\n", "\t")  # what text output itself is made of


def _escapes(keep: str) -> dict[int, str]:
    return {
        c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
        for c in _TERMINAL_CONTROLS
        if chr(c) not in keep
    }


_PRINTABLE = str.maketrans(_escapes(""))
_PRINTABLE_LINES = str.maketrans(_escapes("".join(_LINE_LAYOUT)))


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every terminal control character written as an escape (``\\x1b``):
    newlines and tabs too, for one value (a ticker, a path) inside a line; with ``lines``,
    newlines and tabs kept, for whole lines of text."""
    return text.translate(_PRINTABLE_LINES if lines else _PRINTABLE)


class EscapingStream:
    """A text stream that writes control characters as escapes, except ``keep``.

    Every human-text printer of the CLI writes through it (``escape_output``), so no
    command, present or future, can emit a name's escape sequence raw; JSON output has
    none to escape (``json.dumps`` writes them as ``\\u001b``). Anything else (fileno,
    isatty, flush, buffer) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO, keep: str = "".join(_LINE_LAYOUT)) -> None:
        self._stream = stream
        self._table = str.maketrans(_escapes(keep))

    def write(self, text: str) -> int:
        self._stream.write(text.translate(self._table))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def escape_output() -> None:
    """Route the process's stdout and stderr through EscapingStream (once; the CLI's
    entry point). stderr keeps carriage returns, which redraw the progress line; the
    console draws through ``sys.__stderr__`` and is not affected."""
    if not isinstance(sys.stdout, EscapingStream):
        sys.stdout = EscapingStream(sys.stdout)
    if not isinstance(sys.stderr, EscapingStream):
        sys.stderr = EscapingStream(sys.stderr, keep="".join(_LINE_LAYOUT) + "\r")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def human_bytes(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def human_age(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``."""
    if seconds is None:
        return "unknown age"
    s = max(0, int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s % 60}s"
    return f"{s}s"


def lock_lines(status: run_lock.LockStatus) -> list[str]:
    """The run lock as the CLI prints it and the console shows it."""
    lines = [f"lock     {status.lock_dir}", f"verdict  {status.state.name}: {status.reason}"]
    if status.state is run_lock.LockState.FREE:
        return lines
    if status.pid_alive is None:
        process = "cannot be checked from this host"
    elif not status.pid_alive:
        process = "not running"
    else:
        process = {
            True: "running, the same process",
            False: "running, but a different process",
        }.get(status.same_process, "running")
    lines += [
        f"holder   pid {status.pid} on {status.host} ({process})",
        f"writer   {status.writer or 'collector'}{f': {status.command}' if status.command else ''}",
        f"age      {human_age(status.age_seconds)}",
    ]
    if status.cwd:
        lines.append(f"cwd      {status.cwd}")
    return lines


def brief_path(path: str) -> str:
    """A bar file's workspace-relative path as the console lists it: the dataset folder
    (so the interval shows), the ticker, and a partition's year-month, without the parts
    every path shares (``data/``, the venue, ``ticker=``, ``data.parquet``):
    ``stocks_1d/AAPL/2024-01`` for ``data/us/yahoo/stocks_1d/ticker=AAPL/year=2024/
    month=01/data.parquet``. A venue other than us/yahoo stays in front; any other path
    loses only its leading ``data/``."""
    parts = path.split("/")
    try:
        at = next(i for i, part in enumerate(parts) if part.startswith("ticker="))
    except StopIteration:
        return path.removeprefix("data/")
    head = parts[:at]
    if head[:1] == ["data"]:
        head = head[1:]
    if head[:2] == ["us", "yahoo"]:
        head = head[2:]
    brief = [*head, parts[at].removeprefix("ticker=")]
    rest = parts[at + 1 :]
    if len(rest) >= 2 and rest[0].startswith("year=") and rest[1].startswith("month="):
        brief.append(f"{rest[0].removeprefix('year=')}-{rest[1].removeprefix('month=')}")
        rest = rest[2:]
    if rest != ["data.parquet"]:
        brief += rest
    return "/".join(brief)
