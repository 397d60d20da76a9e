"""Errors a user can cause and fix: each carries a one-line message and what to do."""

from __future__ import annotations


class ParqctlError(Exception):
    """A failure caused by input or by the state of the workspace, not by a bug.

    The CLI prints ``message`` and ``hint`` on one line and exits with ``exit_code``;
    it never shows a traceback for these.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class WorkspaceError(ParqctlError):
    """Something about the workspace's directories stops the command (a link leading out)."""


class NotAWorkspaceError(WorkspaceError):
    """The directory is missing or is not a workspace: the same exit code in every command
    (``health`` included), so a cron job with a wrong path can be told apart."""

    exit_code = 6


class MetadataError(ParqctlError):
    """A metadata file is unreadable, malformed or of the wrong shape."""


class UnsafeTickerError(ParqctlError):
    """A ticker name that could escape its directory if joined into a path."""


class LockHeldError(ParqctlError):
    """The workspace's run lock is held by someone else."""

    exit_code = 3


class LockLostError(LockHeldError):
    """The run lock this process held was removed or taken by another writer."""


class DiskSpaceError(ParqctlError):
    """A write would cross the critical watermark, or the disk is full."""

    exit_code = 4


class DataError(ParqctlError):
    """A bar file is unreadable or does not match the format."""
