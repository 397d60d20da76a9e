"""Advice in the console's words: the keys to press, not the CLI command to run.

core says what to do in the CLI's words (``run `parqctl integrity` ``), which is right for
the CLI. Text the console shows passes through ``console_wording``, which names the keys
of the console's way to do the same (``press 6 then c``). A command the console has no
way to do (``migrate finalize``, ``quarantine list``'s reconciliation, ``fetch``) is
left as it is: the CLI is then the way.
"""

from __future__ import annotations

import re

# The command after `parqctl `, and the keys doing the same in the console; first match wins.
_KEYS = [
    (r"integrity --quarantine\b.*", "6 then Q on each error"),
    (r"integrity(?: --interval \S+)?", "6 then c"),
    (r"availability\b.*", "2"),
    (r"backfill(?: --interval \S+| --ticker \S+)*", "2 then b"),
    (r"quarantine add\b.*", "6 then Q on its finding"),
    (r"quarantine restore \S+", "4 then u"),
    (r"quarantine purge\b.*", "4 then p"),
    (r"lock status", "3"),
    (r"lock break(?: --force)?", "3 then b"),
    (r"migrate plan(?: --venue \S+)?(?: --interval \S+)?", "7 then p"),
    (r"migrate estimate\b.*", "7 then e"),
    (r"migrate dry-run", "7 then d"),
    (r"migrate status\b.*", "7"),
    (r"migrate run\b.*", "7 then r"),
    (r"migrate verify\b.*", "7 then v"),
    (r"migrate activate", "7 then a"),
    (r"migrate rollback", "7 then b"),
    (r"health\b.*", "1"),
    (r"disk", "5"),
    (r"sql\b.*", "8"),
]
_COMPILED = [(re.compile(pattern), keys) for pattern, keys in _KEYS]
_COMMAND = re.compile(r"(?:(?P<with>\s+with\s+)|\brun\s+)?`parqctl (?P<command>[^`]+)`")


def _in_keys(match: re.Match[str]) -> str:
    command = match.group("command").strip()
    for pattern, keys in _COMPILED:
        if pattern.fullmatch(command):
            # "remove it with `parqctl lock break`" -> "remove it: press 3 then b"
            return f"{': ' if match.group('with') else ''}press {keys}"
    return match.group(0)


# Where the console's way differs by what the command is for: it lists the last check's
# findings on opening screen 6, while c runs a new check.
_LISTS = re.compile(r"`parqctl integrity` lists them")


def console_wording(text: str) -> str:
    """``text`` with each CLI command the console can do replaced by its keys."""
    if "`parqctl " not in text:
        return text
    return _COMMAND.sub(_in_keys, _LISTS.sub("press 6 to list them", text))
