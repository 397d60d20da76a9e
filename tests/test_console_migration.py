"""The migration screen driven with the Pilot: every step on a real demo workspace, the
rows read live during a run (started here or by the CLI in another process), and the
words it ends with (finished, stopped at a safe point, refused)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from datetime import date
from pathlib import Path

import pytest
from conftest import PARQCTL, tree_digest
from console_support import plain, settle, settle_health
from textual.widgets import Button, DataTable, Input, SelectionList, Static

from core.migration.failpoints import FAILPOINT_ENV
from core.migration.plan import plan_migration
from core.migration.run import run_migration
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.layout import Venue
from core.store.metadata import MIGRATION_PLAN_FILE
from core.store.workspace import Workspace
from screens import migration
from screens.migration_plan import PlanDialog
from tui.app import ParqctlApp
from tui.widgets.confirm import ConfirmScreen

END = date(2025, 12, 5)
US = Venue("us", "yahoo")
# The failpoint after the first batch's checkpoint (see core.migration.run: locked, two
# tickers staged, flushed, intent recorded, two promoted, promoted, checkpointed).
FIRST_BATCH_CHECKPOINTED = 9


def _demo(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    report = build_demo(root, tickers=14, seed=5, end=END, years_1d=2, years_1h=1)
    for injection in report.injections:  # damaged files fail their ticker; not this test's topic
        if injection.kind in ("truncated", "zero_byte") and injection.path:
            injection.path.unlink()
    return root


@pytest.fixture(autouse=True)
def quick_poll(monkeypatch):
    """The screen reads the plan live; in tests, often, so that waits stay short."""
    monkeypatch.setattr(migration, "LIVE_POLL_S", 0.1)


def _text(app: ParqctlApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def _confirm(app: ParqctlApp, pilot, key: str, accept: bool = True) -> None:
    await pilot.press(key)
    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.click("#confirm" if accept else "#cancel")
    await settle(pilot)


async def _plan(app: ParqctlApp, pilot, intervals: list[str], venue: str = "us:yahoo") -> None:
    """p, then the venue typed and only ``intervals`` selected in the dialog, then Plan."""
    await pilot.press("p")
    await _until(pilot, lambda: isinstance(app.screen, PlanDialog))
    app.screen.query_one(Input).value = venue
    choices = app.screen.query_one(SelectionList)
    choices.deselect_all()
    for interval in intervals:
        choices.select(interval)
    await pilot.pause()
    await pilot.click("#plan")
    await settle(pilot)


def _row(app: ParqctlApp, index: int = 0) -> list[str]:
    return [str(cell) for cell in app.screen.query_one(DataTable).get_row_at(index)]


def _stage_1d(app: ParqctlApp) -> str:
    """The stage of the first row, 1d: the row the steps act on."""
    row = _row(app)
    assert row[1] == "1d"
    return row[2]


async def _until(pilot, condition, timeout: float = 30.0) -> None:
    """Pause until ``condition()`` holds (the screen polls the plan on its own)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the screen did not get there in time")


async def test_the_wizard_walks_every_step_and_the_next_line_follows(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        assert "No migration planned. Next: p" in _text(app, "#migration-next")

        before = tree_digest(root)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PlanDialog)
        await pilot.press("escape")
        await settle(pilot)
        assert tree_digest(root) == before  # a cancelled dialog writes nothing

        await _plan(app, pilot, ["1d"])
        plan = json.loads((root / MIGRATION_PLAN_FILE).read_text())
        assert list(plan["venues"][0]["intervals"]) == ["1d"]
        assert _stage_1d(app) == "planned"
        assert "Next: e estimate" in _text(app, "#migration-next")

        await pilot.press("e")
        await settle(pilot)
        assert "projected:" in _text(app, "#migration-report")
        assert "e estimate ✓" in _text(app, "#migration-steps")
        assert "Next: d dry-run" in _text(app, "#migration-next")

        await pilot.press("d")
        await settle(pilot)
        assert "d dry-run ✓" in _text(app, "#migration-steps")
        assert "Next: r run" in _text(app, "#migration-next")

        await _confirm(app, pilot, "r")
        assert _text(app, "#migration-progress-line").startswith("✓ run finished")
        assert _stage_1d(app) == "migrated"
        assert "r run ✓" in _text(app, "#migration-steps")
        assert "Next: v verify" in _text(app, "#migration-next")
        migrated = len(list((root / "stocks_1d").glob("*.parquet")))
        assert _row(app)[3] == f"{migrated}/{migrated}"

        await _confirm(app, pilot, "x")  # drop a target with migrated files: refused
        assert _text(app, "#migration-progress-line").startswith("✗ drop refused: us:yahoo 1d")
        assert "--purge-partitioned" in _text(app, "#migration-report")
        assert _stage_1d(app) == "migrated"

        await pilot.press("v")
        await settle(pilot)
        assert "✓" in _text(app, "#migration-report") and _stage_1d(app) == "verified"
        assert "Next: a activate" in _text(app, "#migration-next")

        # Counts add up: TSLA's only 1d file was removed; it is registered for 1d, so it is
        # routed too, and said apart from the migrated tickers.
        await _confirm(app, pilot, "a")
        assert _stage_1d(app) == "active"
        report = _text(app, "#migration-report")
        assert (
            f"1d: activated; {migrated + 1} tickers routed to the partitioned layout: "
            f"{migrated} migrated, 1 with no legacy file" in report
        ), report
        tickers = json.loads((root / "tickers.json").read_text())
        routed = [t for t, e in tickers.items() if (e["intervals"].get("1d") or {}).get("storage")]
        assert len(routed) == migrated + 1

        await _confirm(app, pilot, "b")
        assert _stage_1d(app) == "verified"
        tickers = json.loads((root / "tickers.json").read_text())
        assert not any(
            (entry.get("intervals", {}).get("1d") or {}).get("storage")
            for entry in tickers.values()
        )
        assert run_lock.inspect(root).state is run_lock.LockState.FREE


async def test_the_plan_dialog_picks_the_venue_and_a_mistyped_target_is_dropped(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause()
        app.screen.query_one(Input).value = "nope:x"
        await pilot.pause()
        assert app.screen.query_one("#plan", Button).disabled
        assert "nope:x has no legacy data" in _text(app, "#plan-check")
        await pilot.press("escape")
        await settle(pilot)
        assert not (root / MIGRATION_PLAN_FILE).exists()

        await _plan(app, pilot, ["1d", "1h"])
        assert [_row(app, i)[1] for i in range(2)] == ["1d", "1h"]
        await pilot.press("down")  # 1h, planned by mistake
        await _confirm(app, pilot, "x")
        assert _text(app, "#migration-progress-line").startswith("✓ drop finished: us:yahoo 1h")
        assert app.screen.query_one(DataTable).row_count == 1 and _stage_1d(app) == "planned"
        plan = json.loads((root / MIGRATION_PLAN_FILE).read_text())
        assert list(plan["venues"][0]["intervals"]) == ["1d"]


async def test_rows_follow_a_run_started_here_and_q_asks_before_stopping_it(
    tmp_path: Path, monkeypatch
):
    root = _demo(tmp_path)
    plan_migration(Workspace.open(root), US, ["1d"])
    reached, release = threading.Event(), threading.Event()

    def held_run(ws, target, progress, token):
        """The real run in batches of 2, held after its 6th ticker (4 checkpointed)."""

        def report(p):
            progress(p)
            if p.done == 6:
                reached.set()
                release.wait(60)

        result = run_migration(ws, target.venue, target.intervals, batch_size=2, workers=1,
                               progress=report, token=token)  # fmt: skip
        return ["stopped at a safe point"], migration.STOPPED if result.cancelled else "done"

    monkeypatch.setitem(migration.STEP_RUNNERS, "run", held_run)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("7")
            await settle(pilot)
            total = int(_row(app)[3].split("/")[1])
            await pilot.press("r")
            await pilot.pause()
            await pilot.click("#confirm")
            await _until(pilot, reached.is_set)
            await _until(pilot, lambda: _row(app)[3] == f"4/{total}")  # read live
            assert _row(app)[2] == "migrating"
            assert _text(app, "#migration-next").startswith("Running: run of us:yahoo 1d")
            assert "r run …" in _text(app, "#migration-steps")
            bindings = app.active_bindings
            assert not bindings["r"].enabled and not bindings["p"].enabled  # greyed out
            assert bindings["escape"].enabled and "x" not in bindings  # stop in drop's place

            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert "stops it at a safe point" in str(
                app.screen.query_one("#confirm-body", Static).render()
            )
            await pilot.click("#cancel")
            await pilot.pause()
            assert app.screen.running == "run" and not release.is_set()

            await pilot.press("q")
            await pilot.pause()
            await pilot.click("#confirm")
            await pilot.pause()
            assert "Stopping run of us:yahoo 1d at a safe point" in _text(app, "#migration-next")
            release.set()
            await _until(pilot, lambda: app.return_code is not None)
    finally:
        release.set()
    assert run_lock.inspect(root).state is run_lock.LockState.FREE
    plan = json.loads((root / MIGRATION_PLAN_FILE).read_text())
    done = plan["venues"][0]["intervals"]["1d"]["jobs"]["completed"]
    assert 4 <= done < total  # stopped at a safe point: what was staged is checkpointed


async def test_rows_follow_a_cli_run_in_another_process(tmp_path: Path):
    root = _demo(tmp_path)
    plan_migration(Workspace.open(root), US, ["1d"])
    env = {**os.environ, FAILPOINT_ENV: f"stop@{FIRST_BATCH_CHECKPOINTED}"}
    env.pop("PARQCTL_WORKSPACE", None)
    cli = subprocess.Popen(
        [str(PARQCTL), "-w", str(root), "migrate", "run", "--batch-size", "2", "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("7")
            await settle(pilot)
            total = int(_row(app)[3].split("/")[1])
            await _until(pilot, lambda: _row(app)[3] == f"2/{total}")  # the CLI's checkpoint
            line = _text(app, "#migration-next")
            assert f"parqctl migrate run is running in another process (pid {cli.pid}" in line
            cli.send_signal(signal.SIGCONT)
            await asyncio.to_thread(cli.wait, 120)
            await _until(pilot, lambda: _stage_1d(app) == "migrated")
            assert _row(app)[3] == f"{total}/{total}"
            assert "Next: v verify" in _text(app, "#migration-next")
    finally:
        cli.send_signal(signal.SIGCONT)
        cli.wait(120)
    assert cli.returncode == 0, cli.stderr.read()


async def test_a_stopped_run_says_so_releases_the_lock_and_resumes(tmp_path: Path, monkeypatch):
    real_run = migration.STEP_RUNNERS["run"]

    def held_until_escape(ws, target, progress, token):
        """The real run, started once escape was pressed: however fast the machine, the
        stop lands before its first batch."""
        for _ in range(600):
            if token.cancelled:
                break
            threading.Event().wait(0.05)
        return real_run(ws, target, progress, token)

    monkeypatch.setitem(migration.STEP_RUNNERS, "run", held_until_escape)
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await _plan(app, pilot, ["1d"])

        await pilot.press("r")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        await _until(pilot, lambda: getattr(app.screen, "cancel_token", None))  # it started
        await pilot.press("escape")
        await settle(pilot)
        monkeypatch.setitem(migration.STEP_RUNNERS, "run", real_run)
        line = _text(app, "#migration-progress-line")
        assert line == "■ run of us:yahoo 1d stopped at a safe point: r resumes", line
        assert "stopped at a safe point" in _text(app, "#migration-report")
        assert _stage_1d(app) in ("planned", "migrating")
        assert "Next: " in _text(app, "#migration-next")
        assert run_lock.inspect(root).state is run_lock.LockState.FREE

        await _confirm(app, pilot, "r")
        assert _stage_1d(app) == "migrated"


async def test_a_refused_step_says_why_and_frees_the_screen(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await _plan(app, pilot, ["1d"])
        with run_lock.hold(root, "test: another writer"):
            await _until(pilot, lambda: "run lock is held" in _text(app, "#migration-next"))
            await _confirm(app, pilot, "r")
            line = _text(app, "#migration-progress-line")
            assert line.startswith("✗ run refused: ") and "lock" in line, line
            report = _text(app, "#migration-report")
            assert report.startswith("refused: ") and "\n" not in report
        assert app.screen.running is None
        await _confirm(app, pilot, "r")
        assert _stage_1d(app) == "migrated"


# --- snapshots --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def midway(tmp_path_factory) -> Path:
    """The demo with 1d run (one unreadable ticker failed) and 1h, 1m planned."""
    root = tmp_path_factory.mktemp("midway") / "ws"
    build_demo(root, tickers=14, seed=5, end=END, years_1d=2, years_1h=1)
    plan_migration(Workspace.open(root), US)
    run_migration(Workspace.open(root), US, ["1d"], workers=1)
    return root


def _snapshot_app(root: Path, theme: str) -> ParqctlApp:
    return ParqctlApp(Workspace.open(root), theme=theme, health_refresh_s=None, clock=lambda: 0)


def _keys(*pressed: str):
    """Open the screen, press the keys; the header's path and verdict fixed, no blink."""

    async def run_before(pilot) -> None:
        await settle_health(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
        pilot.app.title, pilot.app.sub_title = "parqctl · /srv/market-data", "WARNING"
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_snapshot_midway_at_120x36(snap_compare, midway: Path, theme: str):
    assert snap_compare(
        _snapshot_app(midway, theme), terminal_size=(120, 36), run_before=_keys("7")
    )


def test_snapshot_midway_at_80x24(snap_compare, midway: Path):
    assert snap_compare(
        _snapshot_app(midway, "dark"), terminal_size=(80, 24), run_before=_keys("7")
    )


def test_snapshot_plan_dialog_at_80x24(snap_compare, midway: Path):
    assert snap_compare(
        _snapshot_app(midway, "dark"), terminal_size=(80, 24), run_before=_keys("7", "p")
    )


async def test_a_dry_run_that_finds_failures_says_so_and_the_wizard_moves_on(midway: Path):
    app = ParqctlApp(Workspace.open(midway), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("down")  # 1h: planned; one of its legacy files is empty
        assert _row(app, 1)[1] == "1h" and "Next: e estimate" in _text(app, "#migration-next")
        await pilot.press("d")
        await settle(pilot)
        assert _text(app, "#migration-progress-line") == (
            "! dry-run of us:yahoo 1h finished with failures: see below"
        )
        assert "1 would fail" in _text(app, "#migration-report")
        assert "d dry-run !" in _text(app, "#migration-steps")
        assert "Next: r run: the dry-run found tickers that would fail" in _text(
            app, "#migration-next"
        )


async def test_failures_of_an_earlier_run_are_listed_and_advised_in_keys(midway: Path):
    """A run made elsewhere (the CLI, an earlier session) left a failed ticker: screen 7
    lists it and why, as `migrate status` does, and the health problem names the keys."""
    from core.health import health_report
    from screens.dashboard import describe_verdict

    verdict = plain(describe_verdict(health_report(Workspace.open(midway), gaps=False)), 300)
    assert (
        "migration us:yahoo 1d: 1 ticker(s) failed to migrate "
        "(see why: press 7; retry them: press 7 then r)"
    ) in verdict

    app = ParqctlApp(Workspace.open(midway), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        assert _row(app)[1] == "1d" and _row(app)[4] == "✗ 1"
        report = _text(app, "#migration-report").splitlines()
        assert report[0] == "1 ticker(s) of us:yahoo 1d failed to migrate (r retries them):"
        assert report[1].startswith("  ✗ ") and len(report) == 2
        assert "(see the report)" in _text(app, "#migration-next")
        await pilot.press("down")  # 1h: planned, nothing failed yet
        await pilot.pause()
        assert _text(app, "#migration-report") == ""
