"""Persistent conversation memory: conversations, interactions (one per user turn) and traces (one per LLM
step and tool step), in SQLite by default and PostgreSQL by URL.

    store = await MemoryStore.open()              # $FNCALL_DATA_DIR/fncall.db
    conversation = await store.create_conversation("Exchange")
    history = await store.history(conversation.memory_id)
"""

from fncall.memory.errors import (
    InteractionStateError,
    MemoryNotFoundError,
    MemoryStoreError,
    SchemaVersionError,
)
from fncall.memory.models import InteractionStatus
from fncall.memory.recorder import (
    LLM_ORIGIN,
    RecordableResult,
    RecordableState,
    RecordableStep,
    TraceRecorder,
    record_run,
)
from fncall.memory.records import Conversation, Interaction, Page, Trace
from fncall.memory.schema_version import CURRENT_SCHEMA_VERSION
from fncall.memory.store import (
    DATABASE_URL_ENV,
    INTERRUPTED_ERROR,
    MemoryStore,
    TraceContent,
    default_database_url,
)

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DATABASE_URL_ENV",
    "INTERRUPTED_ERROR",
    "LLM_ORIGIN",
    "Conversation",
    "Interaction",
    "InteractionStateError",
    "InteractionStatus",
    "MemoryNotFoundError",
    "MemoryStore",
    "MemoryStoreError",
    "Page",
    "RecordableResult",
    "RecordableState",
    "RecordableStep",
    "SchemaVersionError",
    "Trace",
    "TraceContent",
    "TraceRecorder",
    "default_database_url",
    "record_run",
]
