"""The gap summary saved for the console's start (core.availability.saved_gaps): kept only while what it
was computed from is unchanged, and painted before the recomputed one arrives."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from console_support import settle, status

from core.availability import saved_gaps
from core.availability.index import index_path, refresh_index
from core.health import health_report, with_gap_watch, with_gaps
from core.store.demo import build_demo
from core.store.workspace import Workspace
from tui.app import ParqctlApp

END = date(2025, 12, 5)
TODAY = END + timedelta(days=3)
NOW = 1_765_200_000.0  # 2025-12-08


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saved") / "ws"
    build_demo(root, tickers=20, seed=3, end=END, years_1d=2, years_1h=1)
    refresh_index(root)
    return root


@pytest.fixture
def demo(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root


def computed(root: Path):
    return saved_gaps.health_report_saving_gaps(Workspace(root), now=NOW, today=TODAY)


def test_the_summary_is_saved_and_read_back_as_computed(demo: Path):
    full = computed(demo)
    assert full.gaps is not None and full.gaps.intervals
    assert full.gaps.expiring_sessions or any(iv.missing_sessions for iv in full.gaps.intervals)
    assert saved_gaps.load(demo, TODAY) == full.gaps
    # The same as health's own two steps, problems included.
    quick = health_report(Workspace(demo), now=NOW, today=TODAY, gaps=False)
    saved = saved_gaps.load(demo, TODAY)
    # Freshness is not saved (it counts to the time of the check): it comes with the
    # recomputed summary, which refreshes the index (its time moves on).
    full = with_gaps(quick, Workspace(demo), TODAY)
    assert full.freshness is not None and not full.freshness.stalled
    assert full.index_refreshed_at >= quick.index_refreshed_at
    assert with_gap_watch(quick, saved) == dataclasses.replace(
        full, freshness=None, index_refreshed_at=quick.index_refreshed_at
    )


@pytest.mark.parametrize(
    "change",
    ["tickers.json", "intervals.json", "storage_config.json", "index", "config", "another day"],
)
def test_the_summary_is_not_used_once_what_it_came_from_changed(demo: Path, change: str):
    computed(demo)
    today = TODAY
    if change == "index":
        path = index_path(demo)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    elif change == "config":
        config = demo / ".parqctl" / "config.toml"
        config.write_text(config.read_text() + "\n" if config.exists() else "\n")
    elif change == "another day":
        today = TODAY + timedelta(days=1)
    else:
        path = demo / change
        path.write_text(path.read_text() + " ")
    assert saved_gaps.load(demo, today) is None


def test_a_damaged_or_foreign_summary_is_ignored(demo: Path):
    computed(demo)
    path = demo / saved_gaps.SAVED_FILE
    record = json.loads(path.read_text())
    del record["summary"]["intervals"][0]["missing_sessions"]  # saved by another version
    path.write_text(json.dumps(record))
    assert saved_gaps.load(demo, TODAY) is None
    path.write_text("{")
    assert saved_gaps.load(demo, TODAY) is None


async def test_the_console_paints_coverage_from_the_saved_summary_first(demo: Path):
    full = computed(demo)
    # A saved summary that says something the recomputation will not: a made-up count.
    made_up = dataclasses.replace(
        full.gaps,
        intervals=[dataclasses.replace(iv, missing_sessions=4242) for iv in full.gaps.intervals],
    )
    saved_gaps.save(demo, made_up)
    states = []

    class Recording(ParqctlApp):
        def _publish_health(self, state) -> None:
            states.append(state)
            super()._publish_health(state)

    app = Recording(Workspace.open(demo), health_refresh_s=None, clock=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(100):
            await settle(pilot, rounds=1)
            if app.health is not None and app.health.final:
                break
        recomputed = status(app, "interval")
    first = states[0]
    assert first.gaps_saved and not first.gaps_pending  # complete at the first paint
    assert first.report.gaps == made_up
    assert app.health.report.gaps == full.gaps and "4,242" not in recomputed
    assert saved_gaps.load(demo, TODAY) == full.gaps  # the refresh saved the true one again
