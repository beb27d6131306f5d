"""What the memory store returns: plain pydantic values, detached from the database session, ready to be
sent as JSON by the agent service (`GET /v1/memory`, `.../interactions`, `.../traces`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from fncall.memory.models import InteractionStatus
from fncall.types import Usage

T = TypeVar("T")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conversation(_Record):
    """A conversation: `memory_id` is what a client passes to continue it."""

    memory_id: str
    name: str
    agent_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Interaction(_Record):
    """One user turn and what became of it.

    `status` is "running" from before the run starts until it ends as "completed" (with `response`),
    "failed" (with `error`), "paused" (waiting, with a saved run state) or "interrupted" (its process
    stopped mid-run; `interrupted_at` says when that was noticed). `outcome` is the run's own account of how
    it ended ("answered", "max_steps", ...) when the recorder knows it.
    """

    id: str
    memory_id: str
    input: str
    response: str | None = None
    status: InteractionStatus
    outcome: str | None = None
    error: str | None = None
    parent_interaction_id: str | None = None
    usage: Usage = Field(default_factory=Usage)
    trace_count: int = 0
    created_at: datetime
    updated_at: datetime
    interrupted_at: datetime | None = None


class Trace(_Record):
    """One step of an interaction, numbered from 1 in the order the steps were recorded.

    `origin` is "llm" for a model call and the tool's name for a tool call; `step` is the run's step number
    (an LLM call and the tool calls it asked for share one).
    """

    id: str
    interaction_id: str
    trace_number: int
    origin: str
    step: int | None = None
    input: str
    output: str
    is_error: bool = False
    started_at: datetime
    duration_s: float = 0.0


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` back to get the next one (None: this was the last)."""

    items: list[T]
    next_cursor: str | None = None
