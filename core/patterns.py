"""What a filter typed by the operator matches: a substring, or a shell glob.

``AAP`` matches every name holding AAP (AAPL, XAAP); ``A*``, ``*.DE`` or ``BRK-[AB]`` are
globs over the whole name. Case is ignored either way. One rule for every filter, in the
console's lists as in the heatmap.
"""

from __future__ import annotations

import fnmatch

_GLOB_CHARACTERS = frozenset("*?[")


def matcher(pattern: str):
    """A test ``text -> bool`` for ``pattern`` (an empty pattern matches everything)."""
    wanted = pattern.strip().upper()
    if not wanted:
        return lambda text: True
    if not _GLOB_CHARACTERS.isdisjoint(wanted):
        return lambda text: fnmatch.fnmatchcase(text.upper(), wanted)
    return lambda text: wanted in text.upper()
