"""What the memory store raises: each error says what was wrong and what to do about it.

The agent service maps `MemoryNotFoundError` to HTTP 404 and `InteractionStateError` to HTTP 409.
"""

from __future__ import annotations

from fncall.errors import FncallError


class MemoryStoreError(FncallError):
    """Base class of the memory store's errors."""


class MemoryNotFoundError(MemoryStoreError, LookupError):
    """A conversation, interaction or trace id that the store does not hold (deleted, or never created)."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(
            f"No {kind} with id {id!r} exists in the memory store (it was deleted or never created)."
        )
        self.kind = kind
        self.id = id


class InteractionStateError(MemoryStoreError):
    """An interaction was asked to move to a status its current status does not allow."""


class SchemaVersionError(MemoryStoreError):
    """The database's schema is newer than this version of fncall understands (or unreadable)."""
