"""Bar files parqctl writes carry pandas metadata like the collector's files.

The collector writes its frames with ``df.to_parquet(path, index=False)``; its normaliser
gives ``stock`` the pandas ``string`` dtype and ``volume``/``sequence`` ``Int64``, and the
pandas metadata in the file brings those dtypes back on a plain ``pd.read_parquet``.
Without it the same file reads as str or object / int64 / float64. The reference here is
a frame with the collector's dtypes written by pandas itself, in this environment.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import bar_table, run_cli

from core.migration.digest import content_digest
from core.store.bars import BAR_COLUMNS, PANDAS_KEY, with_pandas_metadata, write_bar_file

pd = pytest.importorskip("pandas", reason="pandas (a yfinance dependency) reads the files back")

DAYS = [datetime(2025, 12, d) for d in (1, 2, 3)]


def _collector_frame(ticker: str, **extra) -> pd.DataFrame:
    """Bars with the dtypes of the collector's ``_normalize_price_frame``."""
    return pd.DataFrame(
        {
            "stock": pd.array([ticker] * len(DAYS), dtype="string"),
            "date": pd.Series(DAYS, dtype="datetime64[ns]"),
            "open": [100.0, 101.0, 102.0],
            "high": [101.0, 102.0, 103.0],
            "low": [99.0, 100.0, 101.0],
            "close": [100.0, 101.0, 102.0],
            "volume": pd.array([1000, None, 1002], dtype="Int64"),
            "sequence": pd.array([None] * len(DAYS), dtype="Int64"),
            **extra,
        }
    )


def _as_pandas_reads(tmp_path: Path, frame: pd.DataFrame) -> dict:
    """The dtypes pandas reads back from ``frame`` written by pandas, as the collector does."""
    path = tmp_path / "written-by-pandas.parquet"
    frame.to_parquet(path, index=False, compression="gzip")
    return pd.read_parquet(path).dtypes.to_dict()


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    assert isinstance(frame.index, pd.RangeIndex)  # no index column came back
    return frame


def test_write_bar_file_reads_back_in_pandas_with_the_collectors_dtypes(tmp_path: Path):
    expected = _as_pandas_reads(tmp_path, _collector_frame("AAPL"))
    path = tmp_path / "AAPL.parquet"
    write_bar_file(path, bar_table("AAPL", DAYS), durable=False)

    frame = _read(path)
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert frame.dtypes.to_dict() == expected
    assert frame["sequence"].isna().all() and frame["volume"].tolist() == [1000, 1001, 1002]


def test_an_extra_column_is_kept_and_described(tmp_path: Path):
    adjclose, note = [95.0, 96.0, 97.0], ["a", None, "c"]
    expected = _as_pandas_reads(
        tmp_path, _collector_frame("AAPL", adjclose=adjclose, note=pd.Series(note, dtype=object))
    )
    table = bar_table("AAPL", DAYS)
    table = table.append_column("adjclose", pa.array(adjclose))
    table = table.append_column("note", pa.array(note))
    path = tmp_path / "AAPL.parquet"
    write_bar_file(path, table, durable=False)

    frame = _read(path)
    assert frame.dtypes.to_dict() == expected
    assert frame["adjclose"].tolist() == adjclose and frame["note"].tolist()[::2] == ["a", "c"]
    described = [c["name"] for c in pq.read_schema(path).pandas_metadata["columns"]]
    assert described == [*BAR_COLUMNS, "adjclose", "note"]


def test_an_extra_columns_own_pandas_dtype_is_kept_when_it_fits(tmp_path: Path):
    adjvolume = pd.array([7, None, 9], dtype="Int64")
    source = _collector_frame("AAPL", adjvolume=adjvolume, ratio=[0.5, 0.25, 0.125])
    expected = _as_pandas_reads(tmp_path, source)
    table = pa.Table.from_pandas(source, preserve_index=False)
    pandas_meta = json.loads(table.schema.metadata[PANDAS_KEY])
    for column in pandas_meta["columns"]:
        if column["name"] == "ratio":  # a description that does not fit: ignored, not obeyed
            column["numpy_type"] = "Int64"
    table = table.replace_schema_metadata({PANDAS_KEY: json.dumps(pandas_meta).encode()})
    path = tmp_path / "AAPL.parquet"
    write_bar_file(path, table, durable=False)

    frame = _read(path)
    assert frame.dtypes.to_dict() == expected
    assert frame["adjvolume"].dtype == "Int64" and frame["ratio"].dtype == "float64"


def test_the_metadata_leaves_the_content_digest_and_other_keys_alone():
    table = bar_table("AAPL", DAYS).replace_schema_metadata({b"origin": b"test"})
    described = with_pandas_metadata(table)
    metadata = described.schema.metadata
    assert metadata[b"origin"] == b"test" and PANDAS_KEY in metadata
    assert content_digest(described) == content_digest(table)
    assert with_pandas_metadata(described) is described  # already described: unchanged


def _legacy_file(root: Path, ticker: str) -> Path:
    [path] = [
        p
        for p in root.rglob(f"{ticker}.parquet")
        if p.parent.name == "stocks_1d" and "ticker=" not in str(p)
    ]
    return path


def _partition_file(root: Path, ticker: str) -> Path:
    [path] = (root / "data/us/yahoo/stocks_1d").glob(f"ticker={ticker}/year=*/month=*/data.parquet")
    return path


def test_partition_files_written_by_migrate_run_read_back_with_the_collectors_dtypes(
    workspace: Path, tmp_path: Path
):
    # AAPL as the collector writes it, with an Int64 extra column; BRK-B with no pandas
    # metadata at all (as pyarrow alone writes it).
    adjvolume = pd.array([7, None, 9], dtype="Int64")
    collector_written = _collector_frame("AAPL", adjvolume=adjvolume)
    collector_written.to_parquet(_legacy_file(workspace, "AAPL"), index=False, compression="gzip")
    brk = _legacy_file(workspace, "BRK-B")
    pq.write_table(pq.read_table(brk).replace_schema_metadata(None), brk, compression="gzip")
    assert pq.read_schema(brk).metadata is None
    with_extra = _as_pandas_reads(tmp_path, collector_written)
    plain = _as_pandas_reads(tmp_path, _collector_frame("BRK-B"))

    for step in (["plan"], ["run", "--workers", "2"], ["verify", "--workers", "2"]):
        done = run_cli("-w", str(workspace), "migrate", *step, "--interval", "1d")
        assert done.returncode == 0, (step, done.stdout, done.stderr)

    aapl = _read(_partition_file(workspace, "AAPL"))
    assert aapl.dtypes.to_dict() == with_extra
    assert aapl["adjvolume"].isna().tolist() == [False, True, False]
    assert _read(_partition_file(workspace, "BRK-B")).dtypes.to_dict() == plain
