"""Per dataset: tickers, files, bytes and strays, from the file index's summary instead of
a walk of the data tree.

Walking a partitioned store of 740,000 files costs most of a minute; the index's
``summary.json`` (one row per dataset and ticker) and ``state.json`` (strays, directories
that could not be read) answer the same question in milliseconds, as of the index's last
refresh (``IndexState.refreshed_at``: the hot months, new tickers and parqctl's own
writes) and its last full scan (``full_scan_at``: everything else). Trade datasets are
not indexed: they are walked, as before. A dataset the index has never seen (created
since, or no index at all) is walked too, so nothing is left out.
"""

from __future__ import annotations

from pathlib import Path

from core.availability.index_state import IndexState, load_state, load_summary
from core.store.workspace import Dataset, DatasetInventory, GroupUsage, inventory


def indexed_inventories(
    root: Path, datasets: list[Dataset]
) -> tuple[list[DatasetInventory], IndexState]:
    """The inventory of each dataset, from the index where it has the dataset."""
    state = load_state(root)
    summary = load_summary(root, ("dataset", "ticker", "files", "bytes"))
    groups: dict[str, dict[str, GroupUsage]] = {}
    if summary is not None:
        columns = [summary[name] for name in ("dataset", "ticker", "files", "bytes")]
        for dataset, ticker, files, size in zip(*columns, strict=True):
            groups.setdefault(dataset, {})[ticker] = GroupUsage(files, size)
    strays: dict[str, list[Path]] = {}
    for stray in state.strays:
        strays.setdefault(stray.dataset, []).append(root / stray.path)
    unreadable: dict[str, list] = {}
    for item in state.unreadable:
        for dataset in datasets:
            if item.path == dataset.path or dataset.path in item.path.parents:
                unreadable.setdefault(dataset.path.relative_to(root).as_posix(), []).append(item)
    result = []
    for dataset in datasets:
        rel = dataset.path.relative_to(root).as_posix()
        if dataset.kind == "trades" or summary is None or rel not in groups:
            result.append(inventory(dataset))
            continue
        result.append(
            DatasetInventory(
                dataset,
                groups=groups[rel],
                stray_files=strays.get(rel, []),
                unreadable=unreadable.get(rel, []),
            )
        )
    return result, state
