"""The real yf_parqed collector, installed once per test session, for contract tests.

``../shared/collector/yf_parqed-*.tar.gz`` is extracted into ``.collector/`` (gitignored)
and installed with uv under Python 3.12 into a venv beside its source. A test module
uses it with ``from collector_support import collector  # noqa: F401`` and a
``collector`` argument; where the tarball, Python 3.12 or uv are missing, or the
install fails, its tests are skipped with the reason.

``tests/collector_driver.py`` runs inside that venv, on the collector's own code with a
fake yfinance (it never reaches the network), and answers in JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "collector"
CACHE = REPO / ".collector"
DRIVER = Path(__file__).with_name("collector_driver.py")


class CollectorUnavailable(Exception):
    """The collector cannot be installed here; the message says why."""


class Collector:
    """The installed collector: its python, its console scripts and the driver."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.python = home / ".venv" / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.python.with_name(name)

    @staticmethod
    def _env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    def run(self, *args: str, timeout: float = 120) -> dict:
        """Run the driver with ``args`` and return its JSON; raise with its stderr on failure."""
        proc = subprocess.run(
            [str(self.python), str(DRIVER), *map(str, args)],
            capture_output=True,
            text=True,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"collector driver {args[:1]} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        return json.loads(proc.stdout)

    def read(self, ws: Path, interval: str, tickers: Iterable[str] | None = None) -> dict:
        """{ticker: {rows, dtypes, min, max, digest, route}} as the collector's reader sees it."""
        return self.run("read", ws, interval, *(tickers or ()))

    def read_many(
        self, ws: Path, intervals: Iterable[str], tickers: Iterable[str] | None = None
    ) -> dict:
        """{interval: what ``read`` answers}, from one start of the collector."""
        return self.run("read-many", ws, ",".join(intervals), *(tickers or ()))

    def update(
        self,
        ws: Path,
        start: str | None = None,
        end: str | None = None,
        non_interactive: bool = True,
        tickers: Iterable[str] = (),
        intervals: Iterable[str] = (),
    ) -> dict:
        """The collector's real ``yf-parqed --wrk-dir ws update-data`` with the fake yfinance."""
        args: list[str] = ["update", str(ws)]
        if start is not None:
            args += ["--start", start]
        if end is not None:
            args += ["--end", end]
        if non_interactive:
            args.append("--non-interactive")
        if tickers:
            args += ["--tickers", ",".join(tickers)]
        if intervals:
            args += ["--intervals", ",".join(intervals)]
        return self.run(*args)

    def init_workspace(
        self, ws: Path, tickers: Iterable[str], intervals: Iterable[str], start: str, end: str
    ) -> dict:
        """A new workspace in the collector's legacy layout, with history it fetched itself."""
        return self.run(
            "init",
            ws,
            "--tickers",
            ",".join(tickers),
            "--intervals",
            ",".join(intervals),
            "--start",
            start,
            "--end",
            end,
        )

    def hold_lock(self, ws: Path, seconds: float) -> subprocess.Popen:
        """The collector's GlobalRunLock held by a child process, returned once it is held.

        Stop it early with ``.terminate()``: the driver then releases the lock."""
        proc = subprocess.Popen(
            [str(self.python), str(DRIVER), "lock-hold", str(ws), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self._env(),
        )
        line = proc.stdout.readline()
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            proc.kill()
            raise AssertionError(f"lock-hold said {line!r}: {proc.stderr.read()}") from None
        if not answer.get("acquired"):
            proc.wait(timeout=30)
            raise AssertionError(f"the collector could not take the lock: {answer}")
        return proc

    def cli(
        self, name: str, *args: str, timeout: float = 120, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        """One of the collector's console scripts (``yf-parqed``, ``yf-parqed-migrate``).

        ``yf-parqed`` builds its YFParqed on the current directory when imported (before it
        reads ``--wrk-dir``): give the workspace as ``cwd``, as cron does with ``cd``."""
        return subprocess.run(
            [str(self.bin(name)), *map(str, args)],
            capture_output=True,
            text=True,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            cwd=cwd,
        )


def _imports(python: Path) -> bool:
    if not python.exists():
        return False
    proc = subprocess.run(
        [str(python), "-c", "import yf_parqed, yfinance"], capture_output=True, timeout=120
    )
    return proc.returncode == 0


def _python312() -> str:
    try:
        proc = subprocess.run(
            ["pyenv", "which", "python"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYENV_VERSION": "3.12.1"},
            timeout=60,
        )
    except FileNotFoundError:
        raise CollectorUnavailable(
            "pyenv is not installed (the collector needs Python 3.12)"
        ) from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise CollectorUnavailable(
            f"no Python 3.12.1 from pyenv: {proc.stderr.strip() or 'pyenv which python failed'}"
        )
    return proc.stdout.strip()


def install_collector() -> Collector:
    """Install the collector into ``.collector/<sha256[:12] of the tarball>`` unless there.

    The venv is built in a fresh directory and is never moved (its scripts and editable
    install hold absolute paths); ``.collector/<digest>`` becomes a symlink to it only once
    ``import yf_parqed`` works there, so an interrupted install is never mistaken for one."""
    tarballs = sorted(SHARED.glob("yf_parqed-*.tar.gz"))
    if not tarballs:
        raise CollectorUnavailable(f"no collector tarball in {SHARED}")
    tarball = tarballs[-1]
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()[:12]
    link = CACHE / digest
    if _imports(link / ".venv" / "bin" / "python"):
        return Collector(link)

    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        raise CollectorUnavailable(f"uv is not installed at {uv}")
    python = _python312()
    CACHE.mkdir(exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=CACHE))
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(build, filter="data")
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["UV_PROJECT_ENVIRONMENT"] = str(build / ".venv")
        # --no-dev: its dev tools (ruff, pre-commit, pytest) are not needed to run it.
        # --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, every start of the
        # driver would otherwise recompile yfinance and pandas (about 4 s each time).
        proc = subprocess.run(
            [
                str(uv),
                "sync",
                "--frozen",
                "--no-dev",
                "--compile-bytecode",
                "--python",
                python,
                "--quiet",
            ],
            cwd=build,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise CollectorUnavailable(f"uv sync of the collector failed: {proc.stderr.strip()}")
        if not _imports(build / ".venv" / "bin" / "python"):
            raise CollectorUnavailable("the collector installed but `import yf_parqed` fails")
        if _imports(link / ".venv" / "bin" / "python"):
            # Another session finished first: use its install, drop ours.
            shutil.rmtree(build, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):  # a broken earlier install
                if link.is_symlink():
                    link.unlink()
                elif link.exists():
                    shutil.rmtree(link)
            try:
                link.symlink_to(build.name)
            except FileExistsError:
                shutil.rmtree(build, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _prune(link)
    return Collector(link)


def _prune(link: Path) -> None:
    """Remove builds of killed sessions (an hour old and not the one linked)."""
    keep = os.readlink(link)
    for build in CACHE.glob(f"{link.name}-*"):
        with contextlib.suppress(FileNotFoundError):
            if build.name != keep and time.time() - build.stat().st_mtime > 3600:
                shutil.rmtree(build, ignore_errors=True)


@pytest.fixture(scope="session")
def collector() -> Collector:
    try:
        return install_collector()
    except CollectorUnavailable as exc:
        pytest.skip(f"the real collector is unavailable: {exc}")
    except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        pytest.skip(f"the real collector could not be installed: {exc}")
