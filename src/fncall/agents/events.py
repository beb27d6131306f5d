"""The events a run streams: the canonical agent events of `fncall.types`, plus the runner's own `paused`.

`PausedEvent` lives here rather than in types.py because it carries `PendingCall`, an agents-layer type.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fncall.agents.result import PendingCall
from fncall.types import (
    AgentTextDeltaEvent,
    ErrorEvent,
    FinalAnswerEvent,
    LLMResponseEvent,
    StepStartedEvent,
    ToolCallEvent,
    ToolResultEvent,
)


class PausedEvent(BaseModel):
    """The last event of a run that paused: the calls waiting for an approval or a client-side result.

    Read `RunStream.result.state` to save the run, and continue it with `Runner.resume_stream`.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["paused"] = "paused"
    step: int
    pending: list[PendingCall]


RunEvent = Annotated[
    StepStartedEvent
    | LLMResponseEvent
    | ToolCallEvent
    | ToolResultEvent
    | AgentTextDeltaEvent
    | FinalAnswerEvent
    | ErrorEvent
    | PausedEvent,
    Field(discriminator="type"),
]
"""Every event `Runner.stream` and `Runner.resume_stream` yield (a TypeAdapter(RunEvent) parses them back)."""

__all__ = ["PausedEvent", "RunEvent"]
