"""An agent is data: who it is (instructions), which model it asks, which tools it may use, and its budgets.

The loop that runs it lives in `runner.py`, so the same agent can be built in Python or, later, registered
from a JSON spec and run by the same runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fncall.llms.base import LLM
from fncall.tools import Tool, ToolRegistry
from fncall.types import GenerationParams, ToolChoice

ToolsInput = ToolRegistry | Sequence[Tool | Callable[..., Any]]


class Agent(BaseModel):
    """A function-calling agent: a system prompt, an LLM backend, tools and the budgets of one run.

    `tools` accepts a ToolRegistry or a list of tools and plain typed functions (turned into a registry).
    Budgets end a run with a defined outcome instead of an exception: `max_steps` LLM calls, `max_tool_calls`
    tool executions, `timeout_s` seconds of wall clock. `loop_limit` is how many times the same call (name and
    arguments) may be proposed before it is refused; None turns loop detection off.
    `parallel_tool_calls=False` asks the model for one call at a time and runs any batch it still sends in
    order, one after another.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str
    instructions: str = ""
    llm: LLM
    tools: ToolRegistry = Field(default_factory=lambda: ToolRegistry([]))
    max_steps: int = Field(default=10, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    loop_limit: int | None = Field(default=3, ge=2)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    tool_timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    params: GenerationParams = Field(default_factory=GenerationParams)

    @field_validator("tools", mode="before")
    @classmethod
    def _as_registry(cls, value: Any) -> Any:
        if isinstance(value, ToolRegistry):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str):
            return ToolRegistry(list(value))
        return value
