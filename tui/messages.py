"""Messages that more than one screen posts to itself from its worker threads."""

from __future__ import annotations

from textual.message import Message

from core.jobs import Progress


class IndexProgress(Message):
    """How far a refresh of the file index has got; only the newest one matters."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IndexProgress)
