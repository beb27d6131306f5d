"""What a run leaves behind: its steps (one per LLM call and one per tool call) and the result as a whole.

Both are pydantic models so the agent service can return and store them as JSON without a conversion layer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fncall.types import Completion, Message, ToolCall, ToolResult, Usage

Outcome = Literal["answered", "max_steps", "max_tool_calls", "timeout", "loop_detected", "llm_error"]
"""How a run ended: with the model's own answer, or with the budget or failure that stopped it."""

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


class RunResult(BaseModel):
    """The end of a run: the answer, how the run ended, and everything that happened on the way."""

    model_config = ConfigDict(extra="forbid")

    agent_name: str
    final_answer: str
    outcome: Outcome
    messages: list[Message]
    steps: list[Step] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0
    error: str | None = None

    def tool_results(self) -> list[ToolResult]:
        """The result of every tool call, in the order the calls were made."""
        return [step.result for step in self.steps if step.kind == "tool" and step.result is not None]

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model made, in order (including calls the runner refused to execute)."""
        return [step.call for step in self.steps if step.kind == "tool" and step.call is not None]
