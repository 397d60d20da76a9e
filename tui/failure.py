"""How a failed command reports itself, the same in every command: one line on stderr
under the one prefix ``parqctl: error:``, and with ``--json`` also a JSON object on stdout,
so that a cron job's ``--json > report.json`` holds the error instead of nothing."""

from __future__ import annotations

import sys
from typing import Any

PREFIX = "parqctl: error: "


def report_failure(line: str, exit_code: int, as_json: bool, **fields: Any) -> int:
    """Say why the command failed; returns ``exit_code``. ``fields`` go into the JSON
    object beside ``error`` and ``exit_code``."""
    if as_json:
        from tui.text import print_json  # tui.text loads the run lock's module: 40 ms

        print_json({**fields, "error": line, "exit_code": exit_code})
    print(f"{PREFIX}{line}", file=sys.stderr)
    return exit_code
