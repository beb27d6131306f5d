"""The mutable state of one run, and the LLM request the runner builds from it.

Kept apart from the runner so hooks (`Runner.next_request`, `Runner.on_step_finished`, `on_step`) see one
plain object, and so a paused run can be saved as JSON (`to_dict`) and continued later, in another process,
from that JSON (`from_dict`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from fncall.agents.agent import Agent
from fncall.agents.result import Outcome, PendingCall, RunResult, Step
from fncall.errors import InvalidRequestError
from fncall.types import GenerationParams, Message, ToolChoice, ToolResult, ToolSpec, Usage

if TYPE_CHECKING:
    from fncall.tools import ToolExecutor

StepCallback = Callable[["RunState", Step], Awaitable[Any] | None]
"""Called after each recorded step, like `Runner.on_step_finished`; may be sync or async. A memory
`TraceRecorder.on_step_finished` fits as is."""

STATE_VERSION = 1


@dataclass
class LLMRequest:
    """Everything one LLM call is given."""

    messages: list[Message]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    params: GenerationParams


class _SavedState(BaseModel):
    """The JSON form of a RunState: everything needed to continue the run, nothing tied to a process."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = STATE_VERSION
    agent_name: str
    messages: list[Message]
    steps: list[Step]
    usage: Usage
    step_index: int
    llm_turns: int
    tool_calls_executed: int
    call_counts: dict[str, int]
    empty_replies_in_a_row: int
    elapsed_s: float
    pending: list[PendingCall]
    turn_results: list[ToolResult]


@dataclass
class RunState:
    """Where a run stands: the transcript so far, the steps taken, the budgets used, and how it ended.

    While a run is paused, `pending` holds the calls that wait and `turn_results` the results of the other
    calls of the same turn; both reach `messages` (in call order) when the run resumes.
    """

    agent: Agent
    messages: list[Message]
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    step_index: int = 0
    llm_turns: int = 0
    tool_calls_executed: int = 0
    call_counts: Counter[str] = field(default_factory=Counter)
    empty_replies_in_a_row: int = 0
    elapsed_before_s: float = 0.0
    started_monotonic: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    outcome: Outcome | None = None
    final_answer: str = ""
    stop_reason: str | None = None
    error: str | None = None
    pending: list[PendingCall] = field(default_factory=list)
    turn_results: list[ToolResult] = field(default_factory=list)
    on_step: StepCallback | None = None
    result: RunResult | None = None
    executor: ToolExecutor | None = field(default=None, repr=False)
    """Built by `Runner.tool_executor` at the first tool turn; the later turns of the run reuse it."""

    def start_clock(self) -> None:
        """Fix the wall-clock deadline in the event loop's time, the clock asyncio.timeout_at() reads. Time
        spent before a pause counts against `timeout_s`; the time the run waited while paused does not."""
        self.started_monotonic = time.perf_counter()
        if self.agent.timeout_s is not None:
            remaining = self.agent.timeout_s - self.elapsed_before_s
            self.deadline = asyncio.get_running_loop().time() + remaining

    def time_is_up(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.perf_counter() - self.started_monotonic

    def stop(self, outcome: Outcome, reason: str, error: str | None = None) -> None:
        """End the loop with `outcome`; `reason` is the sentence that opens the final answer."""
        self.outcome = outcome
        self.stop_reason = reason
        self.error = error

    def pause(self, pending: list[PendingCall]) -> None:
        """End the loop for now: `pending` calls wait for a decision or a client-side result."""
        self.pending = list(pending)
        self.outcome = "paused"

    def to_result(self) -> RunResult:
        paused = self.outcome == "paused"
        return RunResult(
            agent_name=self.agent.name,
            final_answer=self.final_answer,
            outcome=self.outcome or "answered",
            messages=list(self.messages),
            steps=list(self.steps),
            usage=self.usage,
            duration_s=self.elapsed_s(),
            error=self.error,
            pending=list(self.pending) if paused else [],
            state=self.to_dict() if paused else None,
        )

    # ------------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """The run as plain JSON data (json.dumps works on it), for `from_dict` to continue later."""
        saved = _SavedState(
            agent_name=self.agent.name,
            messages=self.messages,
            steps=self.steps,
            usage=self.usage,
            step_index=self.step_index,
            llm_turns=self.llm_turns,
            tool_calls_executed=self.tool_calls_executed,
            call_counts=dict(self.call_counts),
            empty_replies_in_a_row=self.empty_replies_in_a_row,
            elapsed_s=self.elapsed_s(),
            pending=self.pending,
            turn_results=self.turn_results,
        )
        return saved.model_dump(mode="json")

    @classmethod
    def from_dict(cls, agent: Agent, data: Mapping[str, Any]) -> RunState:
        """The state `to_dict` saved, ready to run again with `agent` (which must carry the same name).
        Raises InvalidRequestError (param "state") when the data is not such a state."""
        try:
            saved = _SavedState.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "state"
            raise InvalidRequestError(
                f"The saved run state is not valid ({where}: {first['msg']}); pass the `state` a paused "
                "RunResult returned, unchanged.",
                param="state",
            ) from None
        if saved.agent_name != agent.name:
            raise InvalidRequestError(
                f"The saved run state belongs to the agent {saved.agent_name!r}, not {agent.name!r}: resume "
                "it with the agent that paused it.",
                param="state",
            )
        _check_paused_turn(saved)
        return cls(
            agent=agent,
            messages=saved.messages,
            steps=saved.steps,
            usage=saved.usage,
            step_index=saved.step_index,
            llm_turns=saved.llm_turns,
            tool_calls_executed=saved.tool_calls_executed,
            call_counts=Counter(saved.call_counts),
            empty_replies_in_a_row=saved.empty_replies_in_a_row,
            elapsed_before_s=saved.elapsed_s,
            pending=saved.pending,
            turn_results=saved.turn_results,
        )


def _check_paused_turn(saved: _SavedState) -> None:
    """A paused state ends with the assistant message whose calls wait; every waiting or finished call of
    the turn must be one of them, or resuming would answer calls the model never made."""
    if not saved.pending and not saved.turn_results:
        return
    last = saved.messages[-1] if saved.messages else None
    made = {call.id for call in last.tool_calls} if last is not None else set()
    answered = [item.call.id for item in saved.pending] + [result.call_id for result in saved.turn_results]
    unknown = [call_id for call_id in answered if call_id not in made]
    if unknown:
        raise InvalidRequestError(
            f"The saved run state is not consistent: the call {unknown[0]!r} is not among the calls of its "
            "last assistant message.",
            param="state",
        )
