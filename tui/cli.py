"""The ``parqctl`` command: a thin skin over core, for people and for cron.

Each command lives in ``tui/commands/<name>.py`` with a ``register(commands)`` that adds
its subparser and sets ``run``. Command modules import heavy libraries (Textual, pyarrow,
polars, exchange_calendars) inside their functions, so every command starts fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import NoReturn

from core.errors import DiskSpaceError, ParqctlError
from tui.arguments import WORKSPACE_HELP, OneLineArgumentParser, accept_workspace_option
from tui.failure import report_failure

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader gone away
COMMANDS = (
    "console", "health", "show", "lock", "demo", "integrity", "quarantine", "disk",
    "availability", "migrate", "fetch", "backfill", "import_csv", "sql", "audit",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="parqctl",
        description="Operations console for Parquet market-data stores (yf_parqed workspaces).",
        epilog=(
            "exit codes in every command: 2 bad argument or refused, 3 run lock held, 4 disk "
            "full or past critical, 5 Yahoo unreachable, 6 not a workspace, 130 interrupted; "
            "0 and 1 mean what the README says for each command"
        ),
    )
    parser.add_argument("--workspace", "-w", metavar="DIR", help=WORKSPACE_HELP)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    for name in COMMANDS:
        importlib.import_module(f"tui.commands.{name}").register(commands)
    accept_workspace_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Until the arguments are parsed, whether the output is JSON is read from the words.
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        # Inside the try: argument types (a venue, a ticker) may raise ParqctlError too.
        args = build_parser().parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        if args.command is None:
            from tui.commands import console

            args.theme, args.run = None, console.run
        return args.run(args)
    except ParqctlError as exc:
        # A plain refusal raised from a full disk (`raise ParqctlError(...) from exc`, where
        # exc is ENOSPC) is a full disk; a lock held or taken keeps its own code.
        disk_full = exc.exit_code == ParqctlError.exit_code and disk_full_cause(exc, True)
        code = DiskSpaceError.exit_code if disk_full else exc.exit_code
        return report_failure(exc.one_line(), code, as_json)
    except KeyboardInterrupt:
        return report_failure("interrupted", EXIT_INTERRUPTED, as_json)
    except BrokenPipeError:
        # The reader went away (`parqctl show AAPL | head -1`): stop quietly. Point stdout at
        # /dev/null so that flushing it at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        # A full disk (or quota) anywhere in any command: one line naming the file, exit 4.
        # Metadata is written atomically (a temp file beside the target, removed when the
        # write fails): the file named keeps its old content.
        full = disk_full_cause(exc)
        if full is None:
            raise
        error = disk_full_error(full)
        return report_failure(error.one_line(), error.exit_code, as_json)


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DISK_FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded", re.IGNORECASE)
# A temp file of core.safety.atomic: ".<name>.parqctl-tmp-<pid>-<hex>" beside the target <name>.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.parqctl-tmp-\d+-[0-9a-f]+$")
_PATH_LOCALS = ("target", "path", "tmp", "destination", "dest")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OUR_CODE = tuple(os.path.join(_REPO, package, "") for package in ("core", "tui"))


def disk_full_cause(exc: BaseException, explicit_only: bool = False) -> OSError | None:
    """The ENOSPC / EDQUOT error that ``exc`` is, or was raised from (its cause, or, unless
    ``explicit_only``, the error being handled when it was raised); None when it has
    nothing to do with a full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (
            current.errno in DISK_FULL_ERRNOS
            # pyarrow's IO errors carry the text, not always the errno
            or (current.errno is None and _DISK_FULL_TEXT.search(str(current)))
        ):
            return current
        current = current.__cause__ or (None if explicit_only else current.__context__)
    return None


def disk_full_error(exc: OSError) -> DiskSpaceError:
    """DiskSpaceError's one line for a full disk: which file could not be written."""
    where = _file_of(exc)
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "disk full"
    reason = exc.strerror or str(exc)
    target = f"cannot write {where}" if where else "a write failed"
    return DiskSpaceError(
        f"{what}: {target} ({reason})",
        "free some space on that filesystem, then run the command again",
    )


def _file_of(exc: OSError) -> str | None:
    """The file a failed write was for: the error's own file name, else the path the
    innermost parqctl function writing it held; a temp file is named by its target."""
    name = exc.filename
    if name is None:
        name = _path_in_traceback(exc.__traceback__)
    if name is None:
        return None
    text = os.fsdecode(name) if isinstance(name, bytes | os.PathLike) else str(name)
    head, tail = os.path.split(text)
    temp = _TEMP_NAME.match(tail)
    return os.path.join(head, temp["target"]) if temp else text


def _path_in_traceback(tb: TracebackType | None) -> str | os.PathLike[str] | None:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if not frame.f_code.co_filename.startswith(_OUR_CODE):
            continue
        for local in _PATH_LOCALS:
            value = frame.f_locals.get(local)
            if isinstance(value, str | os.PathLike):
                return value
    return None


def entry_point() -> NoReturn:
    from tui.text import escape_output

    escape_output()  # no name's control characters reach the terminal raw (tui.text)
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
