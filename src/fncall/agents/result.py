"""What a run leaves behind: its steps (one per LLM call and one per tool call) and the result as a whole.

Both are pydantic models so the agent service can return and store them as JSON without a conversion layer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fncall.types import Completion, Message, ToolCall, ToolResult, Usage

Outcome = Literal[
    "answered", "max_steps", "max_tool_calls", "timeout", "loop_detected", "llm_error", "tool_error", "paused"
]
"""How a run ended: with the model's own answer, with the budget or failure that stopped it (`tool_error`:
a flow step failed), or `paused` until a human approves a call or the client returns a client-side tool's
result (`Runner.resume`)."""

PauseReason = Literal["approval", "client_side"]
"""Why a call waits: its tool `requires_approval`, or it is `client_side` and the client must run it."""

StepPurpose = Literal["act", "retry", "summary"]
"""Why an LLM step was taken: a normal turn, a retry after an empty reply, or the closing summary."""


class Step(BaseModel):
    """One LLM call or one tool call of a run.

    `index` is the step number the run's events carry: an LLM call and the tool calls it asked for share it.
    An LLM step holds its `completion` (or `error`); a tool step its `call` and `result`.
    """

    model_config = ConfigDict(extra="forbid")

    index: int
    kind: Literal["llm", "tool"]
    started_at: datetime
    duration_s: float
    purpose: StepPurpose = "act"
    completion: Completion | None = None
    call: ToolCall | None = None
    result: ToolResult | None = None
    error: str | None = None


class PendingCall(BaseModel):
    """A call the run paused on: answer it in `Runner.resume` (an approval decision or a tool result)."""

    model_config = ConfigDict(extra="forbid")

    call: ToolCall
    reason: PauseReason


class RunResult(BaseModel):
    """The end of a run: the answer, how the run ended, and everything that happened on the way.

    A paused run (`outcome == "paused"`) has no final answer yet: `pending` lists the calls waiting for a
    decision or a result, and `state` is the JSON snapshot `Runner.resume` continues from.
    """

    model_config = ConfigDict(extra="forbid")

    agent_name: str
    final_answer: str
    outcome: Outcome
    messages: list[Message]
    steps: list[Step] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0
    error: str | None = None
    pending: list[PendingCall] = Field(default_factory=list)
    state: dict[str, Any] | None = None

    def tool_results(self) -> list[ToolResult]:
        """The result of every tool call, in the order the calls were made."""
        return [step.result for step in self.steps if step.kind == "tool" and step.result is not None]

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model made, in order (including calls the runner refused to execute)."""
        return [step.call for step in self.steps if step.kind == "tool" and step.call is not None]
