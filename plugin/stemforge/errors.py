"""Errors shared by the reading and writing paths and the apps built on them."""

from __future__ import annotations


class ExportError(ValueError):
    """A request that cannot be exported as asked; the message says what to change."""


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C, SIGTERM)."""


class DiskFull(OSError):
    """No space left where an output is written; the message says where (errno ENOSPC)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()
