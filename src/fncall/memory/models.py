"""The memory database's tables: conversations, their interactions (one per user turn), each interaction's
traces (one per LLM step and tool step), and the schema version.

Only portable column types are used (strings for UUID ids, `JSON`, timezone-aware timestamps stored in UTC),
so the same models serve SQLite and PostgreSQL. Child rows go with their parent through `ON DELETE CASCADE`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

InteractionStatus = Literal["running", "completed", "failed", "interrupted", "paused"]
INTERACTION_STATUSES: tuple[str, ...] = get_args(InteractionStatus)

_ID_LENGTH = 36  # a UUID in its canonical text form


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite has no timezone type and hands back naive values; storing UTC and re-attaching it on the way out
    keeps ordering and comparisons right on both SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("memory timestamps must be timezone-aware (use datetime.now(UTC))")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ConversationRow(Base):
    """One conversation (a "memory" in ml-commons' words): the container of a chat's interactions."""

    __tablename__ = "conversations"

    memory_id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    agent_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # `metadata` is reserved on declarative classes, so the attribute has another name than its column.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    __table_args__ = (Index("ix_conversations_newest", "created_at", "memory_id"),)


class InteractionRow(Base):
    """One user turn: its input, the final response, its status, and a paused run's saved state.

    `trace_count` is the number of traces written so far; incrementing it is how trace numbers are handed
    out atomically. `owner` names the process running it, so a restart can tell dead runs from live ones.
    """

    __tablename__ = "interactions"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    memory_id: Mapped[str] = mapped_column(
        String(_ID_LENGTH), ForeignKey("conversations.memory_id", ondelete="CASCADE")
    )
    parent_interaction_id: Mapped[str | None] = mapped_column(
        String(_ID_LENGTH), ForeignKey("interactions.id", ondelete="SET NULL"), index=True
    )
    input: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    trace_count: Mapped[int] = mapped_column(Integer, default=0)
    run_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    interrupted_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in INTERACTION_STATUSES) + ")",
            name="ck_interactions_status",
        ),
        Index("ix_interactions_conversation", "memory_id", "created_at", "id"),
        Index("ix_interactions_history", "memory_id", "status", "created_at"),
        Index("ix_interactions_status", "status"),
    )


class TraceRow(Base):
    """One step of an interaction: an LLM call (origin "llm") or a tool call (origin = the tool's name)."""

    __tablename__ = "traces"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    interaction_id: Mapped[str] = mapped_column(
        String(_ID_LENGTH), ForeignKey("interactions.id", ondelete="CASCADE")
    )
    trace_number: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(200))
    step: Mapped[int | None] = mapped_column(Integer)
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    is_error: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column()
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (UniqueConstraint("interaction_id", "trace_number", name="uq_traces_number"),)


class SchemaVersionRow(Base):
    """A single row: the schema version the database was last written by (see schema_version.py)."""

    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
