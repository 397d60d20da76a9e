"""A migration run from the console stops safely when the terminal goes away (an SSH drop).

The console runs in a real pseudo-terminal; the test closes it and sends SIGHUP to the
console's process group (its worker processes included), as sshd and the login shell do.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from datetime import date
from pathlib import Path

from conftest import REPO

from core.migration.plan import plan_migration
from core.store.demo import build_demo
from core.store.layout import Venue
from core.store.workspace import Workspace

PARQCTL = Path(sys.executable).with_name("parqctl")


class Terminal:
    """The console on the slave side of a pty; everything it draws is kept as bytes."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"},
        )
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never appeared on the console"
            time.sleep(0.05)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def press_until(self, keys: bytes, text: str, timeout: float = 30.0) -> None:
        """Press again until ``text`` appears (keys sent while the app starts may be lost)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never appeared on the console"
            self.press(keys)
            time.sleep(0.5)

    def hang_up(self) -> None:
        """Close the terminal, and send SIGHUP to the console's whole process group, as a
        login shell does to its jobs when the connection drops."""
        os.close(self.master)
        os.killpg(self.process.pid, signal.SIGHUP)


def _wait_for_audit(root: Path, action: str, result: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    log = root / ".parqctl/audit.jsonl"
    while True:
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("action") == action and entry.get("result") == result:
                    return
        assert time.monotonic() < deadline, f"no {action} {result} in the audit log"
        time.sleep(0.05)


def _wait_for_staged_files(root: Path, timeout: float = 60.0) -> None:
    """Until the workers stage the run's first files (past the sizing sample)."""
    deadline = time.monotonic() + timeout
    staging = root / ".parqctl/staging"
    while not any(
        "data.parquet" in files and "sample" not in Path(top).parts
        for top, _, files in os.walk(staging)  # os.walk skips directories that vanish
    ):
        assert time.monotonic() < deadline, f"nothing was staged under {staging}"
        time.sleep(0.02)


def test_a_hangup_during_a_console_run_stops_it_safely(tmp_path: Path):
    root = tmp_path / "ws"
    report = build_demo(root, tickers=60, seed=9, end=date(2025, 12, 5), years_1d=4, years_1h=1)
    for injection in report.injections:
        if injection.kind in ("truncated", "zero_byte") and injection.path:
            injection.path.unlink()
    plan_migration(Workspace.open(root), Venue("us", "yahoo"), ["1d", "1h"])

    terminal = Terminal([str(PARQCTL), "-w", str(root), "console"])
    try:
        terminal.wait_for("Health")
        terminal.press_until(b"7", "Next:")
        terminal.press(b"r")
        terminal.wait_for("Run the migration?")
        terminal.press(b"\t")
        time.sleep(0.3)
        terminal.press(b"\r")
        _wait_for_audit(root, "migrate.run", "started")
        _wait_for_staged_files(root)  # the workers are busy
    finally:
        terminal.hang_up()
    terminal.process.wait(timeout=60)

    assert not (root / ".run_lock").exists(), "the console left the run lock behind"
    _wait_for_audit(root, "migrate.run", "cancelled", timeout=1)  # stopped, not failed
    _wait_for_audit(root, "lock.release", "ok", timeout=1)
    for step in ("run", "verify"):
        result = subprocess.run(
            [str(PARQCTL), "-w", str(root), "migrate", step],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stdout + result.stderr
