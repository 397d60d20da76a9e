"""parqctl's own Arrow cache files (the file index, the calendar sessions), read bounded.

    size = write_arrow(tmp_path, schema, batches, apart=("big_column",))
    main, apart = read_arrow(root, rel, apart=True)   # IPC files, or None when missing

A cache file holds Arrow IPC files compressed whole, each as one zstd stream, not IPC
files with compressed buffers: each of those buffers declares the size it decompresses
to, and pyarrow allocates it before looking, so a forged file of a few kilobytes could
make a command allocate terabytes. A stream is decompressed here up to
``MAX_ARROW_BYTES`` (both parts together) and refused beyond it; the IPC files are then
read in place from what was decompressed.

The columns named ``apart`` are kept in a second stream, decompressed only when asked
for: the index's session lists are most of it (the 740,000-file index's cold shard: 22 MB
on disk, 246 MB decompressed, of which the lists 180 MB), and most readers do not want
them. The file: ``MAGIC``, the first stream's length (8 bytes, little-endian), the first
stream, the second.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from core.safety.atomic import StateFileTooLarge, read_state_file

MAX_ARROW_BYTES = 768 * 1024 * 1024  # decompressed, per file: ~2.3 million index records
MAGIC = b"PQCTLAR1"
_HEADER = struct.Struct("<8sQ")


class ArrowCacheTooLarge(OSError):
    """What would be written is larger than ``read_arrow`` reads back."""


def write_arrow(
    path: Path,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    apart: tuple[str, ...] = (),
) -> int:
    """Write ``batches`` to ``path`` (a temp file: the caller renames it), the ``apart``
    columns in a stream of their own; returns the decompressed size. Raises
    ArrowCacheTooLarge (an OSError) beyond MAX_ARROW_BYTES."""
    parts = [pa.schema([f for f in schema if f.name not in apart], metadata=schema.metadata)]
    if apart:
        parts.append(pa.schema([f for f in schema if f.name in apart]))
    sinks = [pa.BufferOutputStream() for _ in parts]
    streams = [pa.CompressedOutputStream(sink, "zstd") for sink in sinks]
    writers = [pa.ipc.new_file(s, p) for s, p in zip(streams, parts, strict=True)]
    for batch in batches:
        for writer, part in zip(writers, parts, strict=True):
            writer.write_batch(batch.select(part.names))
        if sum(stream.tell() for stream in streams) > MAX_ARROW_BYTES:
            break
    for writer in writers:
        writer.close()
    size = sum(stream.tell() for stream in streams)
    for stream in streams:
        stream.close()
    if size > MAX_ARROW_BYTES:
        raise ArrowCacheTooLarge(
            f"{path.name}: more than {MAX_ARROW_BYTES // 2**20:,} MiB, which parqctl does not "
            "read back"
        )
    compressed = [sink.getvalue() for sink in sinks]
    with open(path, "xb") as out:
        out.write(_HEADER.pack(MAGIC, compressed[0].size))
        for stream in compressed:
            out.write(stream)
    return size


def read_arrow(
    root: Path, rel: Path | str, *, apart: bool = False
) -> tuple[pa.Buffer, pa.Buffer | None] | None:
    """The IPC files at ``root/rel`` (the second, of the ``apart`` columns, only when
    ``apart``; None when the file has none), or None when it is not there. Raises an
    OSError when it is not a regular file, not a parqctl cache file, or decompresses to
    more than MAX_ARROW_BYTES (read no further than that): a damaged cache to every
    caller."""
    data = read_state_file(root, rel)  # never waits on a FIFO, never follows a link
    if data is None:
        return None
    if len(data) < _HEADER.size:
        raise OSError(f"{rel}: not a parqctl cache file (too short)")
    magic, length = _HEADER.unpack_from(data)
    if magic != MAGIC or length > len(data) - _HEADER.size:
        raise OSError(f"{rel}: not a parqctl cache file")
    body = memoryview(data)[_HEADER.size :]
    main = _decompressed(rel, body[:length], MAX_ARROW_BYTES)
    if not apart or len(body) == length:
        return main, None
    return main, _decompressed(rel, body[length:], MAX_ARROW_BYTES - main.size)


def _decompressed(rel: Path | str, data: memoryview, limit: int) -> pa.Buffer:
    try:
        stream = pa.CompressedInputStream(pa.BufferReader(pa.py_buffer(data)), "zstd")
        content = stream.read(limit + 1)
    except pa.ArrowException as exc:
        raise OSError(f"{rel}: not a parqctl cache file ({exc})") from None
    if len(content) > limit:
        raise StateFileTooLarge(f"{rel}: decompresses to more than {MAX_ARROW_BYTES:,} bytes")
    return pa.py_buffer(content)
