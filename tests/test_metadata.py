from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import MetadataError
from core.store import metadata
from core.store.layout import Venue
from core.store.workspace import Workspace

COLLECTOR_TICKERS = {
    "AAPL": {
        "ticker": "AAPL",
        "added_date": "2025-01-02",
        "status": "active",
        "last_checked": "2025-12-05",
        "source": "csv",
        "manually_removed": False,
        "intervals": {
            "1d": {
                "status": "active",
                "last_found_date": "2025-12-05",
                "newest_bar_date": "2025-12-04",
                "last_fetch_at": "2025-12-05T01:02:03Z",
                "permanently_dead": False,
                "storage": {
                    "mode": "partitioned",
                    "market": "us",
                    "source": "yahoo",
                    "dataset": "stocks",
                },
            },
            "1h": {"status": "cooling", "not_found_streak_days": 3},
        },
    },
    "OLD": {"ticker": "OLD", "status": "weird-new-status", "future_key": [1, {"x": None}]},
}


def test_unknown_keys_and_values_survive_a_rewrite(tmp_path: Path):
    path = tmp_path / "tickers.json"
    path.write_text(json.dumps(COLLECTOR_TICKERS))
    registry = metadata.load_tickers(path)
    entry = registry.get("AAPL")
    assert entry.storage("1d").venue == Venue("us", "yahoo")
    assert entry.storage("1d").root == "data"
    entry.set_storage(
        "1h", metadata.StorageBlock.partitioned_raw(Venue("us", "yahoo"), "2025-12-06T00:00:00Z")
    )
    metadata.save(path, registry)

    rewritten = json.loads(path.read_text())
    expected = json.loads(json.dumps(COLLECTOR_TICKERS))
    expected["AAPL"]["intervals"]["1h"]["storage"] = {
        "mode": "partitioned",
        "venue": "us:yahoo",
        "market": "us",
        "source": "yahoo",
        "dataset": "stocks",
        "root": "data",
        "verified_at": "2025-12-06T00:00:00Z",
    }
    assert rewritten == expected
    assert list(rewritten["AAPL"]) == list(COLLECTOR_TICKERS["AAPL"])

    registry.get("AAPL").clear_storage("1h")
    metadata.save(path, registry)
    assert json.loads(path.read_text()) == json.loads(json.dumps(COLLECTOR_TICKERS))


def test_malformed_json_names_file_line_and_column(tmp_path: Path):
    path = tmp_path / "tickers.json"
    path.write_text('{\n  "AAPL": {"ticker": "AAPL",}\n}\n')
    with pytest.raises(MetadataError) as err:
        metadata.load_tickers(path)
    assert str(path) in err.value.message
    assert "line 2, column 29" in err.value.message
    assert err.value.hint


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("[]", "the top level"),
        ('{"AAPL": 3}', "entry 'AAPL'"),
        ('{"AAPL": {"intervals": []}}', "'AAPL'.intervals"),
        ('{"AAPL": {"intervals": {"1d": {"storage": "x"}}}}', "'AAPL'.intervals.1d.storage"),
    ],
)
def test_wrong_shapes_are_named(tmp_path: Path, content: str, where: str):
    path = tmp_path / "tickers.json"
    path.write_text(content)
    with pytest.raises(MetadataError, match="should be") as err:
        metadata.load_tickers(path)
    assert where in err.value.message


def test_not_utf8_is_reported(tmp_path: Path):
    path = tmp_path / "intervals.json"
    path.write_bytes(b'["1d", "\xff"]')
    with pytest.raises(MetadataError, match="not UTF-8"):
        metadata.load_intervals(path)


def test_storage_config_most_specific_wins(tmp_path: Path):
    path = tmp_path / "storage_config.json"
    path.write_text(
        json.dumps(
            {
                "partitioned": False,
                "markets": {"de": True},
                "sources": {"de/xetra": False, "us/yahoo": True},
                "extra": 1,
            }
        )
    )
    config = metadata.load_storage_config(path)
    assert config.is_partitioned(Venue("us", "yahoo"))
    assert not config.is_partitioned(Venue("de", "xetra"))
    assert config.is_partitioned(Venue("de", "other"))
    assert not config.is_partitioned(Venue("uk", "lse"))
    config.set_source(Venue("uk", "lse"), True)
    metadata.save(path, config)
    assert json.loads(path.read_text())["extra"] == 1
    assert metadata.load_storage_config(path).is_partitioned(Venue("uk", "lse"))


def test_storage_config_bad_flag(tmp_path: Path):
    path = tmp_path / "storage_config.json"
    path.write_text('{"partitioned": "yes"}')
    with pytest.raises(MetadataError, match="partitioned"):
        metadata.load_storage_config(path)


def test_migration_plan_is_read_as_the_collector_writes_it(tmp_path: Path):
    plan = {
        "schema_version": 1,
        "generated_at": "2025-12-01T00:00:00Z",
        "created_by": "yf_parqed",
        "legacy_root": "data/legacy",
        "venues": [
            {
                "id": "us:yahoo",
                "market": "US",
                "source": "yahoo",
                "status": "pending",
                "intervals": {
                    "1d": {
                        "legacy_path": "data/legacy/stocks_1d",
                        "partition_path": "data/us/yahoo/stocks_1d",
                        "status": "migrating",
                        "totals": {"legacy_rows": None, "partition_rows": None},
                        "jobs": {"total": 10, "completed": 4},
                        "resume_token": None,
                        "verification": {"method": "row_counts", "verified_at": None},
                        "backups": [],
                    }
                },
            }
        ],
    }
    (tmp_path / "tickers.json").write_text("{}")
    (tmp_path / "migration_plan.json").write_text(json.dumps(plan))
    ws = Workspace.open(tmp_path)
    [(venue, interval, record)] = ws.migration_plan.interval_states()
    assert (venue, interval, record["status"]) == ("us:yahoo", "1d", "migrating")
    ws.save_migration_plan(ws.migration_plan)
    assert json.loads((tmp_path / "migration_plan.json").read_text()) == plan


def test_intervals_must_be_a_list_of_names(tmp_path: Path):
    path = tmp_path / "intervals.json"
    path.write_text('{"1d": true}')
    with pytest.raises(MetadataError, match="list of interval names"):
        metadata.load_intervals(path)
