"""JSON from files parqctl reads but did not just write (its own state, the collector's
metadata, a Parquet file's schema note): any of them may be damaged or forged.

Python's parser raises RecursionError, not ValueError, on arrays or objects nested a few
thousand deep (``[[[[...``, a few kilobytes): every reader that takes a ValueError for a
malformed file crashed on it instead. ``loads`` makes it one more JSONDecodeError (a
ValueError).
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
