"""The canonical content digest of a bar table: equal digests mean equal rows.

Rows are taken sorted by date and columns in a fixed order (the bar columns, then extra
columns by name); each column contributes its name, a stable type name, its validity
(one byte per row) and its values with nulls zeroed, encoded by hand as little-endian
bytes, so the digest depends neither on how a file was written (row groups, encodings,
chunking) nor on the library version. NaN payloads are made canonical; -0.0 stays
distinct from 0.0 (it is a different stored value). Hashed with BLAKE2b-256.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.store.bars import BAR_COLUMNS

DIGEST_VERSION = b"parqctl-bars-digest-v1\x00"
_CANONICAL_NAN = np.array([np.nan], dtype="<f8").view("<u8")[0]


def column_order(names: list[str]) -> list[str]:
    """The bar columns in their fixed order, then any extra columns sorted by name."""
    present = set(names)
    return [c for c in BAR_COLUMNS if c in present] + sorted(present - set(BAR_COLUMNS))


def stable_type_name(dtype: pa.DataType) -> str:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "utf8"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "binary"
    if pa.types.is_timestamp(dtype):
        return f"timestamp[{dtype.unit},{dtype.tz or ''}]"
    return str(dtype)


def content_digest(table: pa.Table) -> str:
    """BLAKE2b-256 hex digest of the table's rows sorted by date (stable) and its columns."""
    if "date" in table.column_names and not _is_sorted(table.column("date")):
        table = table.take(pc.sort_indices(table, [("date", "ascending")]))
    h = hashlib.blake2b(digest_size=32)
    h.update(DIGEST_VERSION)
    h.update(struct.pack("<Q", table.num_rows))
    for name in column_order(table.column_names):
        column = table.column(name)
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        _update_with_column(h, name, array)
    return h.hexdigest()


def _is_sorted(dates: pa.ChunkedArray) -> bool:
    if len(dates) < 2 or dates.null_count:
        return len(dates) < 2
    values = dates.to_numpy()
    return bool((values[1:] >= values[:-1]).all())


def _put(h: hashlib.blake2b, data: bytes) -> None:
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def _update_with_column(h: hashlib.blake2b, name: str, array: pa.Array) -> None:
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    dtype = array.type
    _put(h, name.encode("utf-8"))
    _put(h, stable_type_name(dtype).encode("utf-8"))
    if array.null_count:
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False).astype(np.uint8)
        _put(h, b"V" + valid.tobytes())
    else:
        _put(h, b"A")  # every row valid
    _put(h, _value_bytes(array, dtype))


def _value_bytes(array: pa.Array, dtype: pa.DataType) -> bytes:
    if pa.types.is_floating(dtype):
        values = _zero_nulls(array.cast(pa.float64()), 0.0)
        bits = values.astype("<f8").view("<u8").copy()
        bits[np.isnan(values)] = _CANONICAL_NAN
        return bits.tobytes()
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_duration(dtype):
        storage = pa.int64() if dtype.bit_width == 64 else pa.int32()
        array = array.view(storage)
        dtype = storage
    if pa.types.is_integer(dtype):
        values = _zero_nulls(array, 0)
        return values.astype("<i8" if pa.types.is_signed_integer(dtype) else "<u8").tobytes()
    if pa.types.is_boolean(dtype):
        return _zero_nulls(array, False).astype(np.uint8).tobytes()
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype):
        return _variable_bytes(array)
    if pa.types.is_large_binary(dtype):
        return _variable_bytes(array)
    # Rare extra-column types (decimals, lists, structs): their Python values as JSON.
    return json.dumps(array.to_pylist(), default=str, sort_keys=True).encode("utf-8")


def _zero_nulls(array: pa.Array, zero) -> np.ndarray:
    if array.null_count:
        array = array.fill_null(zero)
    return array.to_numpy(zero_copy_only=False)


def _variable_bytes(array: pa.Array) -> bytes:
    """Lengths (int64 each) then the concatenated bytes; nulls count as empty."""
    binary = array.cast(pa.large_binary()) if not pa.types.is_large_binary(array.type) else array
    binary = binary.fill_null(b"")
    offsets = np.frombuffer(binary.buffers()[1], dtype="<i8")[
        binary.offset : binary.offset + len(binary) + 1
    ]
    data = binary.buffers()[2]
    body = data.to_pybytes()[offsets[0] : offsets[-1]] if data is not None else b""
    return np.diff(offsets).astype("<i8").tobytes() + body
