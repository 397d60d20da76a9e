"""A small workspace with findings of every kind the integrity screen groups: one extra
column in five partition files of one ticker (five near-identical warnings), and two
unreadable files (errors to quarantine)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import bar_table

from core.store.layout import Venue, partition_dataset_dir, partition_file

EXTRA_MONTHS = (1, 2, 3, 4, 5)


def add_grouped_findings(root: Path) -> tuple[list[Path], list[Path]]:
    """Write the files; returns (the extra-column partition files, the unreadable files)."""
    dataset = partition_dataset_dir(root, Venue("us", "yahoo"), "1d")
    extra = []
    for month in EXTRA_MONTHS:
        path = partition_file(dataset, "AAPL", 2024, month)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = bar_table("AAPL", [datetime(2024, month, 2), datetime(2024, month, 3)])
        table = table.append_column("adj_close", pa.array([1.0, 2.0]))
        pq.write_table(table, path)
        extra.append(path)
    broken = []
    for relative in ("stocks_1d/BRK-B.parquet", "stocks_1d/MSFT.parquet"):
        path = root / relative
        path.write_bytes(b"PAR1 not a parquet file")
        broken.append(path)
    return extra, broken
