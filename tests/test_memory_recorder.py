"""TraceRecorder as the hook of a real Runner on the Scripted backend: one trace per step, the interaction
finished or failed with the run's result, history fed back into the next turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fncall.agents import Agent, Runner, RunResult, RunState, Step
from fncall.agents.runner import SUMMARY_REQUEST
from fncall.llms.scripted import Scripted
from fncall.memory import LLM_ORIGIN, MemoryStore, TraceRecorder, record_run
from fncall.memory.recorder import CANCELLED_ERROR, UNRECORDED_ERROR
from fncall.tools import ToolRegistry, tool
from fncall.types import Message, ToolCall


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"boom: {reason}")


class RecordingRunner(Runner):
    """The way a runner hands its steps to memory: forward the on_step_finished hook."""

    def __init__(self, recorder: TraceRecorder) -> None:
        self.recorder = recorder

    async def on_step_finished(self, state: RunState, step: Step) -> None:
        await self.recorder.on_step_finished(state, step)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    opened = await MemoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'recorder.db'}")
    try:
        yield opened
    finally:
        await opened.close()


def make_agent(llm: Scripted, **settings: Any) -> Agent:
    return Agent(
        name="calc",
        instructions="You are a calculator.",
        llm=llm,
        tools=ToolRegistry([add, explode]),
        **settings,
    )


async def run_turn(store: MemoryStore, memory_id: str, agent: Agent, question: str) -> tuple[str, RunResult]:
    async with TraceRecorder(store, memory_id, question) as recorder:
        assert (await store.get_interaction(recorder.interaction_id)).status == "running"
        history = await store.history(memory_id)
        result = await RecordingRunner(recorder).run(agent, question, history=history)
        await recorder.finish(result)
    return recorder.interaction_id, result


async def test_a_run_with_tool_calls_is_recorded_step_by_step(store: MemoryStore) -> None:
    conversation = await store.create_conversation("calc")
    llm = Scripted(
        [
            [
                ToolCall(id="call_1", name="add", arguments={"a": 1, "b": 2}),
                ToolCall(id="call_2", name="explode", arguments={"reason": "x"}),
            ],
            "The sum is 3.",
        ]
    )
    interaction_id, result = await run_turn(store, conversation.memory_id, make_agent(llm), "What is 1 + 2?")

    interaction = await store.get_interaction(interaction_id)
    assert interaction.status == "completed"
    assert interaction.response == "The sum is 3."
    assert interaction.outcome == "answered"
    assert interaction.usage == result.usage
    assert interaction.usage.completion_tokens > 0

    traces = await store.list_traces(interaction_id)
    assert [(t.trace_number, t.origin, t.step, t.is_error) for t in traces] == [
        (1, LLM_ORIGIN, 1, False),
        (2, "add", 1, False),
        (3, "explode", 1, True),
        (4, LLM_ORIGIN, 2, False),
    ]
    first_llm, added, exploded, answer = traces
    assert json.loads(first_llm.input) == [{"role": "user", "content": "What is 1 + 2?"}]
    first_output = json.loads(first_llm.output)
    assert first_output["content"] is None
    assert first_output["finish_reason"] == "tool_calls"
    assert first_output["tool_calls"] == [
        {"id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}},
        {"id": "call_2", "name": "explode", "arguments": {"reason": "x"}},
    ]
    assert first_output["usage"] == result.steps[0].completion.usage.model_dump()  # type: ignore[union-attr]
    assert (added.input, added.output) == ('{"a": 1, "b": 2}', "3")
    assert json.loads(exploded.input) == {"reason": "x"}
    assert exploded.output == result.tool_results()[1].content
    assert "boom: x" in exploded.output
    assert [m["role"] for m in json.loads(answer.input)] == ["tool", "tool"]
    assert json.loads(answer.input)[0]["tool_call_id"] == "call_1"
    assert json.loads(answer.output)["content"] == "The sum is 3."
    for trace, step in zip(traces, result.steps, strict=True):
        assert (trace.started_at, trace.duration_s) == (step.started_at, step.duration_s)


async def test_history_carries_completed_turns_into_the_next_run(store: MemoryStore) -> None:
    conversation = await store.create_conversation("calc")
    first_llm = Scripted(["Hello! Ask me a sum."])
    await run_turn(store, conversation.memory_id, make_agent(first_llm), "Hi")
    second_llm = Scripted(["Still 3."])
    await run_turn(store, conversation.memory_id, make_agent(second_llm), "And 1 + 2?")

    assert second_llm.requests[0].messages == [
        Message.system("You are a calculator."),
        Message.user("Hi"),
        Message.assistant("Hello! Ask me a sum."),
        Message.user("And 1 + 2?"),
    ]
    turns = await store.list_interactions(conversation.memory_id)
    assert [(i.input, i.response, i.status) for i in turns.items] == [
        ("Hi", "Hello! Ask me a sum.", "completed"),
        ("And 1 + 2?", "Still 3.", "completed"),
    ]


async def test_an_llm_failure_marks_the_interaction_failed(store: MemoryStore) -> None:
    conversation = await store.create_conversation("calc")
    llm = Scripted([])  # no response at all: the backend raises LLMError
    interaction_id, result = await run_turn(store, conversation.memory_id, make_agent(llm), "q")

    assert result.outcome == "llm_error"
    interaction = await store.get_interaction(interaction_id)
    assert (interaction.status, interaction.response, interaction.outcome) == ("failed", None, "llm_error")
    assert interaction.error == result.final_answer
    assert "no response left" in interaction.error
    traces = await store.list_traces(interaction_id)
    assert [(t.origin, t.is_error) for t in traces] == [(LLM_ORIGIN, True)]
    assert traces[0].output == result.steps[0].error
    assert await store.history(conversation.memory_id) == []


async def test_a_spent_step_budget_is_completed_with_its_outcome_and_summary_trace(
    store: MemoryStore,
) -> None:
    conversation = await store.create_conversation("calc")
    llm = Scripted([ToolCall(id="call_1", name="add", arguments={"a": 1, "b": 2}), "I added 1 and 2: 3."])
    interaction_id, result = await run_turn(
        store, conversation.memory_id, make_agent(llm, max_steps=1), "What is 1 + 2?"
    )

    assert result.outcome == "max_steps"
    interaction = await store.get_interaction(interaction_id)
    assert (interaction.status, interaction.outcome) == ("completed", "max_steps")
    assert interaction.response == result.final_answer
    traces = await store.list_traces(interaction_id)
    assert [t.origin for t in traces] == [LLM_ORIGIN, "add", LLM_ORIGIN]
    summary_input = json.loads(traces[2].input)
    assert summary_input[-1]["role"] == "user"
    assert summary_input[-1]["content"].startswith(SUMMARY_REQUEST.split("{reason}")[0])


async def test_an_exception_in_the_block_fails_the_interaction(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    with pytest.raises(RuntimeError):
        async with TraceRecorder(store, conversation.memory_id, "q") as recorder:
            raise RuntimeError("the service broke")
    interaction = await store.get_interaction(recorder.interaction_id)
    assert (interaction.status, interaction.error) == (
        "failed",
        "The run failed: RuntimeError: the service broke",
    )


async def test_a_cancelled_run_is_interrupted(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    started = asyncio.Event()
    recorder = TraceRecorder(store, conversation.memory_id, "q")

    async def run_forever() -> None:
        async with recorder:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run_forever())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    interaction = await store.get_interaction(recorder.interaction_id)
    assert (interaction.status, interaction.error) == ("interrupted", CANCELLED_ERROR)


async def test_leaving_the_block_without_finish_is_not_silent(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    async with TraceRecorder(store, conversation.memory_id, "q") as recorder:
        pass
    interaction = await store.get_interaction(recorder.interaction_id)
    assert (interaction.status, interaction.error) == ("interrupted", UNRECORDED_ERROR)


async def test_record_run_writes_a_finished_result(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    llm = Scripted([ToolCall(id="call_1", name="add", arguments={"a": 2, "b": 2}), "4"])
    result = await Runner().run(make_agent(llm), "2 + 2?")

    interaction = await record_run(store, conversation.memory_id, "2 + 2?", result)

    assert (interaction.status, interaction.response, interaction.trace_count) == ("completed", "4", 3)
    traces = await store.list_traces(interaction.id)
    assert [(t.origin, t.output) for t in traces][1] == ("add", "4")
    assert traces[0].input == "[]"  # without the run's state the recorder cannot tell what was sent


async def test_a_resumed_interaction_continues_its_trace_numbers(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    llm = Scripted(["paused here"])
    recorder = TraceRecorder(store, conversation.memory_id, "q")
    await recorder.start()
    first = await RecordingRunner(recorder).run(make_agent(llm), "q")
    await store.pause_interaction(
        recorder.interaction_id, {"messages": [m.model_dump() for m in first.messages]}
    )

    await store.resume_interaction(recorder.interaction_id)
    resumed = TraceRecorder.for_interaction(store, await store.get_interaction(recorder.interaction_id))
    second = await RecordingRunner(resumed).run(make_agent(Scripted(["done"])), "go on")
    await resumed.finish(second)

    traces = await store.list_traces(recorder.interaction_id)
    assert [t.trace_number for t in traces] == [1, 2]
    assert (await store.get_interaction(recorder.interaction_id)).response == "done"
