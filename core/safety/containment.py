"""Where parqctl may create, rename or delete: inside the workspace, or below a directory
the operator declared in ``.parqctl/config.toml`` (``[storage] extra_roots``).

Operators do put a dataset on another volume behind a symlink; anything else a link (or a
hand-edited plan) points at is refused with one line naming the link. Writers check each
path right before they change it, not once at the start: a link can be swapped in while a
long job runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ParqctlError
from core.store.workspace import Workspace


def allowed_roots(ws: Workspace) -> list[Path]:
    return [Path(os.path.realpath(ws.root))] + [
        Path(os.path.realpath(r)) for r in ws.config.extra_roots
    ]


def require_inside(ws: Workspace, path: Path, action: str) -> None:
    """Refuse (ParqctlError) unless ``path``, links resolved, is inside an allowed root."""
    real = Path(os.path.realpath(path))
    if any(real.is_relative_to(root) for root in allowed_roots(ws)):
        return
    link = outside_link(ws.root, path)
    where = (
        f"{link} is a symbolic link to {os.path.realpath(link)}, outside the workspace"
        if link is not None
        else f"{path} is outside the workspace {ws.root}"
    )
    raise ParqctlError(
        f"{where}: refusing to {action} {path}",
        "parqctl changes nothing outside the workspace; if that volume is meant to hold the "
        "workspace's data, list it under [storage] extra_roots in .parqctl/config.toml",
    )


def outside_link(root: Path, path: Path) -> Path | None:
    """The first symbolic link on the way from ``root`` down to ``path``, if any."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    current = Path(root)
    for part in parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def declared_links(ws: Workspace) -> list[tuple[Path, Path]]:
    """(link, its target) for the datasets that live in a declared extra root."""
    found = []
    for dataset in ws.datasets():
        link = outside_link(ws.root, dataset.path)
        if link is not None:
            found.append((link, Path(os.path.realpath(link))))
    return sorted(set(found))
