"""The mutable state of one run, and the LLM request the runner builds from it.

Kept apart from the runner so hooks (`Runner.next_request`, `Runner.on_step_finished`) see one plain object,
and so a later pause/resume can serialise it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from fncall.agents.agent import Agent
from fncall.agents.result import Outcome, RunResult, Step
from fncall.types import GenerationParams, Message, ToolChoice, ToolSpec, Usage


@dataclass
class LLMRequest:
    """Everything one LLM call is given."""

    messages: list[Message]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    params: GenerationParams


@dataclass
class RunState:
    """Where a run stands: the transcript so far, the steps taken, the budgets used, and how it ended."""

    agent: Agent
    messages: list[Message]
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    step_index: int = 0
    llm_turns: int = 0
    tool_calls_executed: int = 0
    call_counts: Counter[str] = field(default_factory=Counter)
    empty_replies_in_a_row: int = 0
    started_monotonic: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    outcome: Outcome | None = None
    final_answer: str = ""
    stop_reason: str | None = None
    error: str | None = None
    result: RunResult | None = None

    def start_clock(self) -> None:
        """Fix the wall-clock deadline in the event loop's time, the clock asyncio.timeout_at() reads."""
        self.started_monotonic = time.perf_counter()
        if self.agent.timeout_s is not None:
            self.deadline = asyncio.get_running_loop().time() + self.agent.timeout_s

    def time_is_up(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started_monotonic

    def stop(self, outcome: Outcome, reason: str, error: str | None = None) -> None:
        """End the loop with `outcome`; `reason` is the sentence that opens the final answer."""
        self.outcome = outcome
        self.stop_reason = reason
        self.error = error

    def to_result(self) -> RunResult:
        return RunResult(
            agent_name=self.agent.name,
            final_answer=self.final_answer,
            outcome=self.outcome or "answered",
            messages=list(self.messages),
            steps=list(self.steps),
            usage=self.usage,
            duration_s=self.elapsed_s(),
            error=self.error,
        )
