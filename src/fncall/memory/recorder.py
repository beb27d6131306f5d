"""Records an agent run into memory while it happens: the interaction is written as "running" first, one
trace per LLM step and per tool step as each finishes, then the final answer (or the failure).

`TraceRecorder.on_step_finished` has the signature of the runner's `on_step_finished(state, step)` hook, so a
runner forwards its hook to it. The memory layer sits below the agents layer and does not import it: the
steps and results it records are described by the protocols below, which fncall.agents' `Step`, `RunState`
and `RunResult` satisfy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from fncall.memory.records import Interaction, Trace
from fncall.memory.store import MemoryStore
from fncall.types import Completion, Message, ToolCall, ToolResult, Usage

LLM_ORIGIN = "llm"
CANCELLED_ERROR = "The run was cancelled before it finished."
UNRECORDED_ERROR = "The run ended without its result being recorded."


class RecordableStep(Protocol):
    """One finished step of a run (fncall.agents.Step)."""

    @property
    def index(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def completion(self) -> Completion | None: ...
    @property
    def call(self) -> ToolCall | None: ...
    @property
    def result(self) -> ToolResult | None: ...
    @property
    def error(self) -> str | None: ...


class RecordableState(Protocol):
    """A run in progress (fncall.agents.RunState): its transcript, as sent to the model so far."""

    @property
    def messages(self) -> Sequence[Message]: ...


class RecordableResult(Protocol):
    """A finished run (fncall.agents.RunResult)."""

    @property
    def final_answer(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def error(self) -> str | None: ...
    @property
    def steps(self) -> Sequence[RecordableStep]: ...


class TraceRecorder:
    """Writes one interaction of a conversation: start, a trace per step, then finish or fail.

    Use it as an async context manager around the run: entering starts the interaction, leaving with an
    exception marks it failed (or interrupted, when the run was cancelled). Call `finish(result)` inside.

        async with TraceRecorder(store, memory_id, question) as recorder:
            result = await RecordingRunner(recorder).run(agent, question, history=history)
            await recorder.finish(result)
    """

    def __init__(
        self, store: MemoryStore, memory_id: str, input: str, *, parent_id: str | None = None
    ) -> None:
        self.store = store
        self.memory_id = memory_id
        self.input = input
        self.parent_id = parent_id
        self._interaction_id: str | None = None
        self._ended = False

    @classmethod
    def for_interaction(cls, store: MemoryStore, interaction: Interaction) -> TraceRecorder:
        """A recorder that continues an interaction already started (e.g. one just resumed after a pause);
        its traces are numbered after the ones it has."""
        recorder = cls(
            store, interaction.memory_id, interaction.input, parent_id=interaction.parent_interaction_id
        )
        recorder._interaction_id = interaction.id
        return recorder

    @property
    def interaction_id(self) -> str:
        if self._interaction_id is None:
            raise RuntimeError("the interaction is not started yet: call `await recorder.start()` first")
        return self._interaction_id

    async def start(self) -> Interaction:
        """Write the interaction as "running"; do this before the run starts."""
        if self._interaction_id is not None:
            raise RuntimeError(f"this recorder already started interaction {self._interaction_id!r}")
        interaction = await self.store.start_interaction(self.memory_id, self.input, self.parent_id)
        self._interaction_id = interaction.id
        return interaction

    async def on_step_finished(self, state: RecordableState, step: RecordableStep) -> Trace:
        """The runner's hook: one trace for the step. For an LLM step, `state.messages` is the transcript
        the model was sent; its trace keeps the messages that arrived since the model last spoke."""
        return await self.record_step(step, state.messages)

    async def record_step(self, step: RecordableStep, messages: Sequence[Message] = ()) -> Trace:
        """One trace: origin "llm" with the new input messages and the completion (or the error), or origin
        = the tool's name with the arguments and the result."""
        if step.kind == "tool" and step.call is not None:
            result = step.result
            return await self.store.add_trace(
                self.interaction_id,
                origin=step.call.name,
                input=step.call.arguments_json(),
                output=result.content if result is not None else (step.error or ""),
                is_error=result.is_error if result is not None else True,
                started_at=step.started_at,
                duration_s=step.duration_s,
                step=step.index,
            )
        if step.completion is None:
            output, is_error = step.error or "the LLM returned no completion", True
        else:
            output, is_error = _completion_json(step.completion), False
        return await self.store.add_trace(
            self.interaction_id,
            origin=LLM_ORIGIN,
            input=_json([_message_json(message) for message in _new_messages(messages)]),
            output=output,
            is_error=is_error,
            started_at=step.started_at,
            duration_s=step.duration_s,
            step=step.index,
        )

    async def finish(self, result: RecordableResult) -> Interaction:
        """Mark the interaction completed with the final answer and usage, or failed when the run ended
        because the LLM failed (then the final answer, which says why, is the error)."""
        self._ended = True
        if result.outcome == "llm_error":
            return await self.store.fail_interaction(
                self.interaction_id,
                result.final_answer or result.error or "The run failed.",
                result.usage,
                outcome=result.outcome,
            )
        return await self.store.finish_interaction(
            self.interaction_id, result.final_answer, result.usage, outcome=result.outcome
        )

    async def fail(self, error: str, usage: Usage | None = None) -> Interaction:
        """Mark the interaction failed with `error`, a sentence a user can read."""
        self._ended = True
        return await self.store.fail_interaction(self.interaction_id, error, usage)

    async def __aenter__(self) -> TraceRecorder:
        if self._interaction_id is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ended or self._interaction_id is None:
            return
        self._ended = True
        if exc is None:
            await self.store.interrupt_interaction(self._interaction_id, UNRECORDED_ERROR)
        elif isinstance(exc, asyncio.CancelledError):
            await self.store.interrupt_interaction(self._interaction_id, CANCELLED_ERROR)
        else:
            text = str(exc)
            await self.store.fail_interaction(
                self._interaction_id, f"The run failed: {type(exc).__name__}{': ' + text if text else ''}"
            )


async def record_run(
    store: MemoryStore,
    memory_id: str,
    input: str,
    result: RecordableResult,
    *,
    parent_id: str | None = None,
) -> Interaction:
    """Record a run that already finished (its steps as traces, then its result), for runners that were not
    given a recorder. Prefer `TraceRecorder` as the hook: it writes each step as it happens."""
    recorder = TraceRecorder(store, memory_id, input, parent_id=parent_id)
    await recorder.start()
    for step in result.steps:
        await recorder.record_step(step)
    return await recorder.finish(result)


def _new_messages(messages: Sequence[Message]) -> list[Message]:
    """The messages after the model's last turn (the user's input, tool results, a nudge), without the
    system prompt: what is new to the model in this step."""
    new: list[Message] = []
    for message in reversed(messages):
        if message.role == "assistant":
            break
        if message.role != "system":
            new.append(message)
    return new[::-1]


def _message_json(message: Message) -> dict[str, Any]:
    return message.model_dump(mode="json", exclude_defaults=True)


def _completion_json(completion: Completion) -> str:
    """The completion as JSON: its text, its tool calls (arguments as an object, or the raw text when they
    never parsed), why it stopped and what it cost."""
    message = completion.message
    output: dict[str, Any] = {"content": message.content}
    if message.tool_calls:
        output["tool_calls"] = [
            {
                "id": call.id,
                "name": call.name,
                "arguments": call.arguments if call.unparsed_arguments is None else call.unparsed_arguments,
            }
            for call in message.tool_calls
        ]
    output["finish_reason"] = completion.finish_reason
    output["usage"] = completion.usage.model_dump()
    return _json(output)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
