from __future__ import annotations

from pathlib import Path

import pytest
from conftest import mounted_tmpfs

from core.config import Watermarks, load_config
from core.disk.watermarks import Level, disk_status, ensure_room, level_for
from core.errors import DiskSpaceError, MetadataError


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    with mounted_tmpfs(tmp_path / "mnt", "4m") as mount:
        yield mount


def test_levels():
    marks = Watermarks()
    assert [level_for(p, marks) for p in (10, 80, 89.9, 90, 95, 100)] == [
        Level.OK,
        Level.WARN,
        Level.WARN,
        Level.CRITICAL,
        Level.BLOCK,
        Level.BLOCK,
    ]


def test_a_write_that_would_cross_critical_is_refused(small_tmpfs: Path):
    marks = Watermarks()
    status = disk_status(small_tmpfs, marks)
    assert status.level == Level.OK and status.total == 4 * 1024 * 1024
    ensure_room(small_tmpfs, marks, 1024 * 1024)
    (small_tmpfs / "fill").write_bytes(b"x" * (3 * 1024 * 1024 + 512 * 1024))
    assert disk_status(small_tmpfs, marks).level == Level.WARN
    with pytest.raises(DiskSpaceError, match="critical watermark 90%") as err:
        ensure_room(small_tmpfs, marks, 256 * 1024)
    assert str(small_tmpfs) in err.value.message


def test_config_defaults_and_overrides(tmp_path: Path):
    assert load_config(tmp_path).watermarks == Watermarks(80, 90, 95)
    (tmp_path / ".parqctl").mkdir()
    (tmp_path / ".parqctl/config.toml").write_text(
        '[watermarks]\nwarn = 70\ncritical = 85\n\n[calendars]\nUK = "XLON"\n\n[retention_days]\n"1m" = 30\n'
    )
    config = load_config(tmp_path)
    assert config.watermarks == Watermarks(70, 85, 95)
    assert config.calendars["uk"] == "XLON" and config.calendars["us"] == "XNYS"
    assert config.retention_days["1m"] == 30 and config.retention_days["1h"] == 730


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[watermarks\n", "malformed TOML"),
        ("[watermarks]\nwarn = 96\n", "warn <= critical <= block"),
        ("[watermarks]\nblock = 120\n", "watermarks.block"),
        ('[retention_days]\n"1m" = "week"\n', "retention_days.1m"),
    ],
)
def test_bad_config_is_named(tmp_path: Path, toml: str, message: str):
    (tmp_path / ".parqctl").mkdir()
    (tmp_path / ".parqctl/config.toml").write_text(toml)
    with pytest.raises(MetadataError, match=message) as err:
        load_config(tmp_path)
    assert "config.toml" in err.value.message
