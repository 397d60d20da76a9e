"""Issue 11's table: the legacy 5,000-ticker store beside the partitioned one (740k files).

    .venv/bin/python benchmarks/partitioned.py [--partitioned PATH] [--legacy PATH]
                                               [--scratch] [--rounds N] [--skip ROW ...]

The first row is the CLI's start-up alone (what every other row pays; on a loaded machine
most of it). Each row is the CLI run in a fresh process, as an operator runs it, timed wall-clock, with
the peak resident memory of its whole process tree (sampled every 20 ms with psutil, the
index's worker processes included):

- ``availability --refresh`` (cold index), then ``availability --json`` warm (best and
  median of ``--rounds``), then after the collector's daily update (the current month of
  every ticker rewritten by temp file + rename, as the collector does; the month's file is
  first made from the ticker's newest, since the demo's bars end before the clock's month);
- ``health --json`` warm; ``disk --json`` first (no size cache) and warm; ``integrity
  --json`` first (no row checks cached) and warm;
- the console's first complete paint (benchmarks/console.py's launch, saved summary);
- the DuckDB yardstick: ``SELECT ticker, date_trunc('day', date), count(*)`` over the file
  list, grouped (a glob fails on ``ticker=EURUSD=X``: the ticker is taken from the path);
  the files the index read without error (DuckDB stops at the demo's damaged files).

The stores are worked on as hard-linked scratch copies (benchmarks.workspace.scratch_copy;
``--scratch`` says the partitioned one given already is such a copy, made for this). The default
partitioned store is ``partitioned-5000`` in the cache (benchmarks .cache, built by the
migration with ``parqctl migrate``). The machine is shared: print ``uptime`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from benchmarks.workspace import CACHE, cached_workspace, scratch_copy  # noqa: E402

PARQCTL = [sys.executable, "-m", "tui.cli"]
ROWS = ("cold", "warm", "daily", "health", "disk", "integrity", "console", "duckdb")


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(seconds, peak RSS bytes of the process tree, exit code)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    return time.perf_counter() - started, peak, proc.returncode


def _rss(process) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def cli(root: Path, *args: str) -> tuple[float, int, int]:
    return measured([*PARQCTL, "-w", str(root), *args])


def best_of(rounds: int, run) -> tuple[float, float, int]:
    """(best seconds, median seconds, peak bytes of all rounds), after one untimed run
    (the first after another command may catch up with what that one changed)."""
    run()
    results = [run() for _ in range(rounds)]
    times = [r[0] for r in results]
    return min(times), statistics.median(times), max(r[1] for r in results)


def current_months(root: Path) -> list[Path]:
    """Each partitioned ticker's file of the current month (by the clock), created where
    missing from its newest file's bars moved by whole weeks into this month, up to today:
    what the collector's first update of a month writes. The demo's bars end in its own
    month; the index's hot months are the clock's."""
    today = date.today()
    created = []
    for dataset in sorted((root / "data").glob("*/*/stocks_*")):
        for ticker in os.scandir(dataset):
            target = Path(ticker.path, f"year={today.year:04d}", f"month={today.month:02d}")
            if not (target / "data.parquet").exists():
                years = sorted(os.listdir(ticker.path))
                months = sorted(os.listdir(os.path.join(ticker.path, years[-1])))
                newest = Path(ticker.path, years[-1], months[-1], "data.parquet")
                target.mkdir(parents=True, exist_ok=True)
                temp = target / "data.parquet.tmp-bench"
                _write_moved(newest, temp, today)
                os.replace(temp, target / "data.parquet")
            created.append(target / "data.parquet")
    return created


def _write_moved(source: Path, target: Path, today: date) -> None:
    """``source``'s bars moved by whole weeks (weekdays kept) into ``today``'s month."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source)
    table = parquet.read()
    dates = table["date"]
    first = pc.min(dates).as_py().date()
    weeks = round((today.replace(day=1) - first.replace(day=1)).days / 7)
    moved = pc.add(dates, pa.scalar(timedelta(weeks=weeks), pa.duration(dates.type.unit)))
    days = pc.cast(moved, pa.date32())
    keep = pc.and_(
        pc.equal(pc.month(days), today.month),
        pc.less_equal(days, pa.scalar(today, pa.date32())),
    )
    table = table.set_column(table.schema.get_field_index("date"), "date", moved).filter(keep)
    codec = (
        parquet.metadata.row_group(0).column(0).compression
        if parquet.metadata.num_row_groups
        else "zstd"
    )
    pq.write_table(table, target, compression=codec.lower())


def daily_update(root: Path, files: list[Path]) -> int:
    """Rewrite the current month of every partitioned ticker, or on a legacy store every
    ticker's file, by a temp file and a rename, as the collector writes: a new inode, the
    cached copy intact. (The legacy files a migration leaves behind are not written.)"""
    if not files:
        files = sorted(f for legacy in root.glob("stocks_*") for f in legacy.glob("*.parquet"))
    for path in files:
        temp = path.with_name(path.name + ".tmp-bench")
        temp.write_bytes(path.read_bytes())
        os.replace(temp, path)
    return len(files)


def bar_files(root: Path) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(root):
        if "/.parqctl" in dirpath:
            continue
        found += [os.path.join(dirpath, n) for n in names if n.endswith(".parquet")]
    return found


DUCKDB_CODE = """
import json, sys, duckdb
files = json.load(open(sys.argv[1]))
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("SET memory_limit = '3GB'")  # unbounded, it took 19 GB here and was killed
con.execute("SET preserve_insertion_order = false")
rows = con.execute(
    "SELECT coalesce(regexp_extract(filename, 'ticker=([^/]+)/', 1), filename) AS ticker, "
    "date_trunc('day', date) AS day, count(*) FROM read_parquet(?, filename=true, "
    "hive_partitioning=false) GROUP BY ALL",
    [files],
).fetchall()
print(len(rows))
"""


def readable_files(root: Path) -> list[str]:
    """The bar files the index read without error (the demo's damaged files make DuckDB
    stop), else every bar file."""
    from core.availability.index import load_index

    index = load_index(root, sessions=False)
    if index.files.is_empty():
        return bar_files(root)
    return [str(root / p) for p in index.readable["path"].to_list()]


def duckdb_yardstick(root: Path) -> tuple[float, int, int]:
    listing = CACHE / f"files-{root.name}.json"
    listing.write_text(json.dumps(readable_files(root)))
    try:
        return measured([sys.executable, "-c", DUCKDB_CODE, str(listing)])
    finally:
        listing.unlink()


def console_first_paint(root: Path, rounds: int) -> tuple[float, float, int]:
    """benchmarks/console.py's launch in a fresh interpreter, with the saved summary."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import console

    runs = console.fresh_launches(root, rounds, saved=True)
    values = [run["complete"] for run in runs]
    return min(values), statistics.median(values), 0


def figures(root: Path, rounds: int, skip: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}

    def show(key: str, seconds: float, peak: int, extra: str = "") -> None:
        memory = f", {peak / 2**20:,.0f} MiB" if peak else ""
        out[key] = f"{seconds:8.2f} s{memory}{extra}"
        print(f"  {root.name:<32} {key:<34} {out[key]}", flush=True)

    best, median, peak = best_of(rounds, lambda: measured([*PARQCTL, "--help"]))
    show("start-up alone (parqctl --help)", best, peak, f" (median {median:.2f} s)")
    if "cold" not in skip:
        seconds, peak, _ = cli(root, "availability", "--refresh", "--json")
        show("availability --refresh (cold)", seconds, peak)
    else:
        cli(root, "availability", "--json")
    if "warm" not in skip:
        best, median, peak = best_of(rounds, lambda: cli(root, "availability", "--json"))
        show("availability warm", best, peak, f" (median {median:.2f} s)")
    if "health" not in skip:
        best, median, peak = best_of(rounds, lambda: cli(root, "health", "--json"))
        show("health --json warm", best, peak, f" (median {median:.2f} s)")
    if "disk" not in skip:  # the first builds the per-directory size cache
        seconds, peak, _ = cli(root, "disk", "--json")
        show("disk --json first", seconds, peak)
        best, median, peak = best_of(rounds, lambda: cli(root, "disk", "--json"))
        show("disk --json warm", best, peak, f" (median {median:.2f} s)")
    if "console" not in skip:
        best, median, _ = console_first_paint(root, rounds)
        show("console first complete paint", best, 0, f" (median {median:.2f} s)")
    if "integrity" not in skip:
        seconds, peak, _ = cli(root, "integrity", "--json")
        show("integrity first", seconds, peak)
        best, median, peak = best_of(rounds, lambda: cli(root, "integrity", "--json"))
        show("integrity warm", best, peak, f" (median {median:.2f} s)")
    if "daily" not in skip:
        months = current_months(root)
        if months:  # the month's first update: indexed before the daily one is timed
            cli(root, "availability", "--json")
        rewritten = daily_update(root, months)
        seconds, peak, _ = cli(root, "availability", "--json")
        show("availability after daily update", seconds, peak, f" ({rewritten:,} files)")
        best, median, peak = best_of(rounds, lambda: cli(root, "health", "--json"))
        show("health warm after it", best, peak, f" (median {median:.2f} s)")
    if "duckdb" not in skip:
        seconds, peak, code = duckdb_yardstick(root)
        show("DuckDB yardstick", seconds, peak, "" if code == 0 else f" (exit {code})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legacy", type=Path, help="default: the cached 5,000-ticker demo")
    parser.add_argument("--partitioned", type=Path, default=CACHE / "partitioned-5000")
    parser.add_argument(
        "--scratch",
        action="store_true",
        help="--partitioned is a scratch copy already (740k hard links take minutes): use it",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=ROWS)
    parser.add_argument("--only", choices=("legacy", "partitioned"))
    args = parser.parse_args()
    stores = {
        "legacy": args.legacy or cached_workspace(5000),
        "partitioned": args.partitioned,
    }
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    table: dict[str, dict[str, str]] = {}
    for label, source in stores.items():
        if args.only and label != args.only:
            continue
        scratch = args.scratch and label == "partitioned"
        root = source if scratch else scratch_copy(source, f"partitioned-bench-{label}")
        print(f"{label}: {root}", flush=True)
        table[label] = figures(root, args.rounds, set(args.skip))
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    keys = list(dict.fromkeys(k for row in table.values() for k in row))
    print(f"\n| command | {' | '.join(table)} |\n|---|{'---|' * len(table)}")
    for key in keys:
        print(f"| {key} | {' | '.join(table[s].get(key, '').strip() for s in table)} |")


if __name__ == "__main__":
    main()
