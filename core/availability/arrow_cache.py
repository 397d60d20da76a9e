"""parqctl's own Arrow cache files (the file index, the calendar sessions), read bounded.

    size = write_arrow(tmp_path, schema, batches)   # uncompressed bytes written
    data = read_arrow(root, rel)                     # bytes of an IPC file, or None

A cache file is an Arrow IPC file compressed whole as one zstd stream, not an IPC file
with compressed buffers: each of those buffers declares the size it decompresses to, and
pyarrow allocates it before looking, so a forged file of a few kilobytes could make a
command allocate terabytes. A stream is decompressed here up to ``MAX_ARROW_BYTES`` and
refused beyond it, and the IPC file is then read in place from what was decompressed.
(The 740,000-file index's cold shard: 22 MB on disk, 246 MB decompressed, 0.2 s.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from core.safety.atomic import StateFileTooLarge, read_state_file

MAX_ARROW_BYTES = 768 * 1024 * 1024  # decompressed, per file: ~2.3 million index records


class ArrowCacheTooLarge(OSError):
    """What would be written is larger than ``read_arrow`` reads back."""


def write_arrow(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Write ``batches`` to ``path`` (a temp file: the caller renames it); returns the
    decompressed size. Raises ArrowCacheTooLarge (an OSError) beyond MAX_ARROW_BYTES."""
    with pa.CompressedOutputStream(str(path), "zstd") as out:
        with pa.ipc.new_file(out, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                if out.tell() > MAX_ARROW_BYTES:
                    break
        size = out.tell()
    if size > MAX_ARROW_BYTES:
        raise ArrowCacheTooLarge(
            f"{path.name}: more than {MAX_ARROW_BYTES // 2**20:,} MiB, which parqctl does not "
            "read back"
        )
    return size


def read_arrow(root: Path, rel: Path | str) -> pa.Buffer | None:
    """The decompressed IPC file at ``root/rel``, or None when it is not there. Raises an
    OSError when it is not a regular file, not a zstd stream, or decompresses to more than
    MAX_ARROW_BYTES (read no further than that): a damaged cache to every caller."""
    data = read_state_file(root, rel)  # never waits on a FIFO, never follows a link
    if data is None:
        return None
    try:
        stream = pa.CompressedInputStream(pa.BufferReader(data), "zstd")
        content = stream.read(MAX_ARROW_BYTES + 1)
    except pa.ArrowException as exc:
        raise OSError(f"{rel}: not a parqctl cache file ({exc})") from None
    if len(content) > MAX_ARROW_BYTES:
        raise StateFileTooLarge(f"{rel}: decompresses to more than {MAX_ARROW_BYTES:,} bytes")
    return pa.py_buffer(content)
