"""The console's screenshots: SVG files in ``.parqctl/screenshots/``, inside the workspace,
named after the screen and the time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from core.safety.atomic import confined, opened_dir, write_bytes
from core.store.workspace import STATE_DIR

SCREENSHOT_DIR = Path(STATE_DIR) / "screenshots"


def save(root: Path, screen: str, svg: str, when: datetime) -> Path:
    """Write ``svg`` atomically as ``<screen>-<YYYYmmdd-HHMMSS>.svg``; returns its path. A
    link on the way is refused (UnsafeLinkError), as for every state file."""
    with opened_dir(root, SCREENSHOT_DIR, create=True):
        pass  # made, and reached without following a link
    target = confined(root, SCREENSHOT_DIR / f"{screen}-{when:%Y%m%d-%H%M%S}.svg")
    write_bytes(target, svg.encode("utf-8"))
    return target
