"""The canonical content digest: order-normalised, typed, null-aware, sensitive to any value."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from conftest import bar_table

from core.migration import months as mo
from core.migration.digest import content_digest


def _table() -> pa.Table:
    times = [datetime(2025, 1, 2) + timedelta(days=i) for i in range(40)]
    table = bar_table("AAPL", times)
    return table.append_column("adjclose", pa.array([float(i) / 3 for i in range(40)]))


def _with_value(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    i = table.column_names.index(column)
    return table.set_column(
        i, table.schema.field(column), pa.array(values, table.schema.field(column).type)
    )


@pytest.mark.parametrize(
    "column", ["stock", "date", "open", "high", "low", "close", "volume", "sequence", "adjclose"]
)
@pytest.mark.parametrize("row", [0, 17, 39])
def test_any_single_changed_value_changes_the_digest(column: str, row: int):
    table = _table()
    original = table.column(column)[row].as_py()
    if column == "stock":
        changed = "AAPM"
    elif column == "date":
        changed = datetime(2030, 1, 1)
    elif original is None:
        changed = 7
    elif isinstance(original, float):
        changed = original + 1e-9
    else:
        changed = original + 1
    assert content_digest(_with_value(table, column, row, changed)) != content_digest(table)


def test_row_and_column_order_and_chunking_do_not_matter():
    table = _table()
    reversed_rows = table.take(pa.array(list(range(table.num_rows - 1, -1, -1))))
    reordered = table.select(list(reversed(table.column_names)))
    chunked = pa.concat_tables([table.slice(0, 10), table.slice(10)])
    assert {content_digest(t) for t in (table, reversed_rows, reordered, chunked)} == {
        content_digest(table)
    }


def test_nulls_types_and_nans_are_told_apart():
    table = _table()
    digest = content_digest(table)
    assert content_digest(_with_value(table, "sequence", 3, 0)) != digest  # null vs 0
    assert content_digest(_with_value(table, "volume", 3, None)) != digest
    as_double = table.set_column(
        6, pa.field("volume", pa.float64()), table.column("volume").cast(pa.float64())
    )
    assert content_digest(as_double) != digest  # typed
    assert content_digest(table.drop_columns(["adjclose"])) != digest
    nan = _with_value(table, "close", 5, float("nan"))
    assert content_digest(nan) == content_digest(_with_value(table, "close", 5, float("nan")))
    assert content_digest(nan) != digest


def test_month_sets_round_trip_compactly():
    months = [mo.month_of(2024, m) for m in (1, 2, 3, 5)] + [mo.month_of(2025, 12)]
    text = mo.compact(months)
    assert text == "2024-01..2024-03,2024-05,2025-12"
    assert mo.expand(text) == months and mo.expand("") == []
