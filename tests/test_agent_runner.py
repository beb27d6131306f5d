"""The function-calling loop, driven by the Scripted backend: tool execution, budgets, loop detection,
failures and the event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from fncall.agents import Agent, Runner, RunResult, RunState, Step, run, run_sync, stream
from fncall.agents.runner import EMPTY_REPLY_NUDGE, LOOP_WARNING, SUMMARY_REQUEST
from fncall.errors import LLMError
from fncall.llms.base import BaseLLM
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.tools import tool
from fncall.types import (
    AgentEvent,
    Completion,
    ErrorEvent,
    FinalAnswerEvent,
    GenerationParams,
    LLMResponseEvent,
    Message,
    StepStartedEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResultEvent,
    ToolSpec,
    Usage,
)

QUESTION = "What is 1 + 2?"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def get_rate(currency: str) -> float:
    """The number of units of `currency` one US dollar buys."""
    return {"CAD": 1.5, "EUR": 0.9}[currency]


@tool
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"boom: {reason}")


def make_agent(llm: Any, tools: Sequence[Any] = (add,), **settings: Any) -> Agent:
    return Agent(name="calc", instructions="You are a calculator.", llm=llm, tools=list(tools), **settings)


def call(name: str, call_id: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


def last_tool_content(request: ScriptedRequest) -> str:
    return next(m.text for m in reversed(request.messages) if m.role == "tool")


# ------------------------------------------------------------------------------------------ basics


async def test_single_call_then_answer() -> None:
    llm = Scripted([call("add", "call_1", a=1, b=2), "The sum is 3."])
    result = await run(make_agent(llm), QUESTION)

    assert result.outcome == "answered"
    assert result.final_answer == "The sum is 3."
    assert result.error is None
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[0] == Message.system("You are a calculator.")
    assert result.messages[2].tool_calls == [call("add", "call_1", a=1, b=2)]
    tool_message = result.messages[3]
    assert (tool_message.tool_call_id, tool_message.name, tool_message.content) == ("call_1", "add", "3")
    assert [r.content for r in result.tool_results()] == ["3"]
    assert [(s.index, s.kind) for s in result.steps] == [(1, "llm"), (1, "tool"), (2, "llm")]
    assert all(s.duration_s >= 0 for s in result.steps)

    assert len(llm.requests) == 2
    assert [spec.name for spec in llm.requests[0].tools] == ["add"]
    assert llm.requests[0].tool_choice == "auto"
    assert llm.requests[0].messages == result.messages[:2]
    assert llm.requests[1].messages == result.messages[:4]


async def test_parallel_calls_run_concurrently_and_answer_in_call_order() -> None:
    first_started = asyncio.Event()
    second_done = asyncio.Event()

    @tool
    async def first() -> str:
        """Needs `second` to run at the same time, or it never finishes."""
        first_started.set()
        await asyncio.wait_for(second_done.wait(), timeout=5)
        return "first finished"

    @tool
    async def second() -> str:
        """Finishes before `first`, once `first` has started."""
        await asyncio.wait_for(first_started.wait(), timeout=5)
        second_done.set()
        return "second finished"

    llm = Scripted([[call("first", "call_a"), call("second", "call_b")], "Both done."])
    events = stream(make_agent(llm, [first, second]), "Run both.")
    collected = [event async for event in events]
    result = events.result

    assert result.outcome == "answered"
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert [(m.tool_call_id, m.content, m.is_error) for m in tool_messages] == [
        ("call_a", "first finished", False),
        ("call_b", "second finished", False),
    ]
    assert [e.call.id for e in collected if isinstance(e, ToolCallEvent)] == ["call_a", "call_b"]
    assert [e.result.call_id for e in collected if isinstance(e, ToolResultEvent)] == ["call_a", "call_b"]


async def test_parallel_tool_calls_off_runs_a_batch_one_after_another() -> None:
    log: list[str] = []

    @tool
    async def note(label: str) -> str:
        """Record when this call starts and ends."""
        log.append(f"start {label}")
        await asyncio.sleep(0)
        log.append(f"end {label}")
        return label

    llm = Scripted([[call("note", "c1", label="a"), call("note", "c2", label="b")], "Done."])
    result = await run(make_agent(llm, [note], parallel_tool_calls=False), "Go.")

    assert result.outcome == "answered"
    assert log == ["start a", "end a", "start b", "end b"]
    assert llm.requests[0].params.parallel_tool_calls is False


async def test_second_call_uses_the_first_result() -> None:
    def responder(request: ScriptedRequest) -> ToolCall | str:
        tool_turns = sum(1 for m in request.messages if m.role == "tool")
        if tool_turns == 0:
            return call("get_rate", "call_rate", currency="CAD")
        if tool_turns == 1:
            rate = float(last_tool_content(request))
            return call("multiply", "call_mul", a=42, b=rate)
        return f"42 USD is {last_tool_content(request)} CAD."

    llm = Scripted(responder)
    result = await run(make_agent(llm, [get_rate, multiply]), "Convert 42 USD to CAD.")

    assert result.outcome == "answered"
    assert result.final_answer == "42 USD is 63.0 CAD."
    assert [c.arguments for c in result.tool_calls()] == [{"currency": "CAD"}, {"a": 42, "b": 1.5}]
    assert [s.index for s in result.steps] == [1, 1, 2, 2, 3]


async def test_history_keeps_one_system_prompt() -> None:
    first = await run(make_agent(Scripted(["Hi."])), "Hello")
    llm = Scripted(["Still here."])
    second = await run(make_agent(llm), "Are you there?", history=first.messages)

    assert [m.role for m in llm.requests[0].messages] == ["system", "user", "assistant", "user"]
    assert [m.text for m in second.messages] == [
        "You are a calculator.",
        "Hello",
        "Hi.",
        "Are you there?",
        "Still here.",
    ]


async def test_input_as_messages() -> None:
    llm = Scripted(["Fine."])
    await run(make_agent(llm), [Message.user("One"), Message.assistant("Two"), Message.user("Three")])
    assert [m.text for m in llm.requests[0].messages] == ["You are a calculator.", "One", "Two", "Three"]


async def test_required_tool_choice_applies_to_the_first_turn_only() -> None:
    llm = Scripted([call("add", "c1", a=1, b=2), "3"])
    await run(make_agent(llm, tool_choice="required"), QUESTION)
    assert [r.tool_choice for r in llm.requests] == ["required", "auto"]


async def test_generation_params_reach_the_backend() -> None:
    llm = Scripted(["ok"])
    await run(make_agent(llm, params=GenerationParams(temperature=0.0, max_tokens=64)), "Hi")
    sent = llm.requests[0].params
    assert (sent.temperature, sent.max_tokens, sent.parallel_tool_calls) == (0.0, 64, True)


def test_run_sync_outside_an_event_loop() -> None:
    result = run_sync(make_agent(Scripted([call("add", "c1", a=2, b=2), "4"])), "2 + 2?")
    assert (result.outcome, result.final_answer) == ("answered", "4")


async def test_run_sync_inside_an_event_loop_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="await run"):
        run_sync(make_agent(Scripted(["x"])), "Hi")


# ----------------------------------------------------------------------------- bad calls become errors


async def test_unknown_tool_becomes_an_error_result() -> None:
    llm = Scripted([call("subtract", "c1", a=3, b=1), "I cannot subtract."])
    result = await run(make_agent(llm), "3 - 1?")

    assert result.outcome == "answered"
    [error] = result.tool_results()
    assert error.is_error and error.call_id == "c1"
    assert "subtract" in error.content and "add" in error.content
    sent = llm.requests[1].messages[-1]
    assert (sent.role, sent.tool_call_id, sent.is_error) == ("tool", "c1", True)


async def test_invalid_json_arguments_become_an_error_result() -> None:
    broken = ToolCall(id="c1", name="add", unparsed_arguments='{"a": 1, "b":')
    llm = Scripted([broken, call("add", "c2", a=1, b=2), "3"])
    result = await run(make_agent(llm), QUESTION)

    assert result.outcome == "answered"
    first, second = result.tool_results()
    assert first.is_error and "JSON" in first.content
    assert (second.is_error, second.content) == (False, "3")
    assert result.messages[2].tool_calls[0].unparsed_arguments == '{"a": 1, "b":'


async def test_schema_violation_becomes_an_error_result() -> None:
    llm = Scripted([call("add", "c1", a="one", b=2), "Sorry."])
    result = await run(make_agent(llm), QUESTION)
    [error] = result.tool_results()
    assert error.is_error and "add" in error.content


async def test_tool_exception_becomes_an_error_result() -> None:
    llm = Scripted([call("explode", "c1", reason="test"), "It failed."])
    result = await run(make_agent(llm, [explode]), "Explode.")
    assert result.outcome == "answered"
    [error] = result.tool_results()
    assert error.is_error and "boom: test" in error.content


async def test_tool_timeout_becomes_an_error_result() -> None:
    @tool
    async def hang() -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "unreachable"

    llm = Scripted([call("hang", "c1"), "It timed out."])
    result = await run(make_agent(llm, [hang], tool_timeout_s=0.05), "Hang.")
    assert result.outcome == "answered"
    [error] = result.tool_results()
    assert error.is_error and "hang" in error.content


# -------------------------------------------------------------------------------------------- budgets


def _keeps_adding(summary: str | Exception) -> Any:
    """A model that adds a new pair each turn and, asked without tools, summarises (or fails)."""

    def responder(request: ScriptedRequest) -> ToolCall | str:
        if not request.tools:
            if isinstance(summary, Exception):
                raise summary
            return summary
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return call("add", f"c{turn}", a=turn, b=1)

    return responder


async def test_max_steps_ends_with_a_summary_call_without_tools() -> None:
    llm = Scripted(_keeps_adding("I added 0+1 and 1+1."))
    result = await run(make_agent(llm, max_steps=2), "Keep adding.")

    assert result.outcome == "max_steps"
    assert result.final_answer == (
        "Agent reached maximum iterations (2) without completing the task. "
        "Here's a summary of the steps completed so far: I added 0+1 and 1+1."
    )
    assert len(llm.requests) == 3
    summary_request = llm.requests[2]
    assert (summary_request.tools, summary_request.tool_choice) == ([], "none")
    reason = "Agent reached maximum iterations (2) without completing the task."
    assert summary_request.messages[-1] == Message.user(SUMMARY_REQUEST.format(reason=reason))
    assert [r.content for r in result.tool_results()] == ["1", "2"]
    assert result.messages[-1] == Message.assistant("I added 0+1 and 1+1.")
    assert [(s.index, s.kind, s.purpose) for s in result.steps if s.kind == "llm"] == [
        (1, "llm", "act"),
        (2, "llm", "act"),
        (3, "llm", "summary"),
    ]


async def test_budget_end_streams_an_error_then_the_summary_step() -> None:
    events = stream(make_agent(Scripted(_keeps_adding("Added 0+1.")), max_steps=1), "Keep adding.")
    collected = [event async for event in events]
    assert [(e.type, getattr(e, "step", None)) for e in collected] == [
        ("step_started", 1),
        ("llm_response", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("error", 1),
        ("step_started", 2),
        ("agent_text_delta", 2),
        ("llm_response", 2),
        ("final_answer", None),
    ]
    error = collected[4]
    assert isinstance(error, ErrorEvent) and error.kind == "max_steps"
    assert collected[-1] == FinalAnswerEvent(text=events.result.final_answer, outcome="max_steps")


async def test_max_steps_falls_back_to_a_deterministic_summary_when_the_summary_call_fails() -> None:
    llm = Scripted(_keeps_adding(LLMError("backend down")))
    result = await run(make_agent(llm, max_steps=2), "Keep adding.")

    assert result.outcome == "max_steps"
    assert result.final_answer == (
        "Agent reached maximum iterations (2) without completing the task. "
        "Here's a summary of the steps completed so far:\n"
        '1. add({"a": 0, "b": 1}) -> 1\n'
        '2. add({"a": 1, "b": 1}) -> 2'
    )
    assert result.steps[-1].purpose == "summary"
    assert result.steps[-1].error == "backend down"


async def test_max_tool_calls_refuses_calls_over_the_budget() -> None:
    invocations: list[int] = []

    @tool
    def count(n: int) -> int:
        """Count one call."""
        invocations.append(n)
        return n

    def responder(request: ScriptedRequest) -> list[ToolCall] | str:
        if not request.tools:
            return "Counted three."
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return [call("count", f"c{turn}a", n=2 * turn), call("count", f"c{turn}b", n=2 * turn + 1)]

    llm = Scripted(responder)
    result = await run(make_agent(llm, [count], max_tool_calls=3), "Count.")

    assert result.outcome == "max_tool_calls"
    assert invocations == [0, 1, 2]
    assert [(r.call_id, r.content, r.is_error) for r in result.tool_results()] == [
        ("c0a", "0", False),
        ("c0b", "1", False),
        ("c1a", "2", False),
        ("c1b", "Not executed: the run's limit of 3 tool calls is used up.", True),
    ]
    assert result.final_answer == (
        "Agent reached the maximum number of tool calls (3) without completing the task. "
        "Here's a summary of the steps completed so far: Counted three."
    )


async def test_reaching_the_tool_call_budget_exactly_still_lets_the_model_answer() -> None:
    llm = Scripted([call("add", "c1", a=1, b=2), "3"])
    result = await run(make_agent(llm, max_tool_calls=1), QUESTION)
    assert (result.outcome, result.final_answer) == ("answered", "3")


async def test_wall_clock_timeout_cancels_running_tools() -> None:
    cancelled = asyncio.Event()

    @tool
    async def slow() -> str:
        """Runs until cancelled."""
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "unreachable"

    llm = Scripted([call("slow", "c1"), "never asked"])
    result = await run(make_agent(llm, [slow], timeout_s=0.2, tool_timeout_s=60), "Be slow.")

    assert result.outcome == "timeout"
    assert cancelled.is_set()
    [error] = result.tool_results()
    assert (error.call_id, error.is_error) == ("c1", True)
    assert error.content == "Cancelled: the run's time limit ran out while slow was running."
    assert len(llm.requests) == 1  # the time budget is spent: no summary call
    assert result.final_answer == (
        "Agent ran out of time (0.2 s) before completing the task. "
        "Here's a summary of the steps completed so far:\n"
        "1. slow({}) -> error: Cancelled: the run's time limit ran out while slow was running."
    )


@pytest.mark.parametrize("streaming", [False, True], ids=["run", "stream"])
async def test_wall_clock_timeout_during_the_llm_call(streaming: bool) -> None:
    async def never(request: ScriptedRequest) -> str:
        await asyncio.Event().wait()
        return "unreachable"

    agent = make_agent(Scripted(never), timeout_s=0.1)
    if streaming:
        events = stream(agent, "Hi")
        collected = [event async for event in events]
        assert [e.type for e in collected] == ["step_started", "error", "final_answer"]
        result = events.result
    else:
        result = await run(agent, "Hi")
    assert result.outcome == "timeout"
    assert (
        result.final_answer == "Agent ran out of time (0.1 s) before completing the task. No tool was called."
    )
    assert result.steps[0].error == "the run's time limit ran out during the LLM call"


# ------------------------------------------------------------------------------------- loop detection


def _repeats_forever(request: ScriptedRequest) -> ToolCall | str:
    if not request.tools:
        return "I kept adding 1 and 2."
    turn = sum(1 for m in request.messages if m.role == "assistant")
    return call("add", f"c{turn}", a=1, b=2)


async def test_repeated_call_is_refused_then_the_run_ends_as_a_loop() -> None:
    invocations: list[tuple[int, int]] = []

    @tool(name="add")
    def counting_add(a: int, b: int) -> int:
        """Add two integers."""
        invocations.append((a, b))
        return a + b

    llm = Scripted(_repeats_forever)
    result = await run(make_agent(llm, [counting_add]), "Add.")

    assert result.outcome == "loop_detected"
    assert invocations == [(1, 2), (1, 2)]
    assert [(r.content, r.is_error) for r in result.tool_results()] == [
        ("3", False),
        ("3", False),
        (LOOP_WARNING.format(name="add", times=2), True),
        ("Not executed: this exact call was repeated after a warning.", True),
    ]
    assert result.final_answer == (
        'Agent stopped because the model kept repeating the call add({"a": 1, "b": 2}) without completing '
        "the task. Here's a summary of the steps completed so far: I kept adding 1 and 2."
    )
    assert len(llm.requests) == 5
    assert llm.requests[-1].tools == []


async def test_model_that_heeds_the_loop_warning_answers() -> None:
    llm = Scripted(
        [call("add", "c1", a=1, b=2), call("add", "c2", a=1, b=2), call("add", "c3", a=1, b=2), "3"]
    )
    result = await run(make_agent(llm, loop_limit=3), QUESTION)
    assert (result.outcome, result.final_answer) == ("answered", "3")
    assert result.tool_results()[-1].content == LOOP_WARNING.format(name="add", times=2)


async def test_loop_detection_can_be_turned_off() -> None:
    llm = Scripted([call("add", f"c{i}", a=1, b=2) for i in range(4)] + ["3"])
    result = await run(make_agent(llm, loop_limit=None), QUESTION)
    assert result.outcome == "answered"
    assert [r.content for r in result.tool_results()] == ["3", "3", "3", "3"]


# ----------------------------------------------------------------------------------------- LLM failures


async def test_llm_error_ends_the_run_with_an_outcome() -> None:
    llm = Scripted([call("add", "c1", a=1, b=2)])  # the second request finds no script left
    events = stream(make_agent(llm), QUESTION)
    collected = [event async for event in events]
    result = events.result

    assert result.outcome == "llm_error"
    assert result.error == "scripted backend has no response left (asked 2 times)"
    assert result.final_answer == (
        "The language model failed, so the task was not completed: scripted backend has no response left "
        "(asked 2 times). Here's a summary of the steps completed so far:\n"
        '1. add({"a": 1, "b": 2}) -> 3'
    )
    assert isinstance(collected[-2], ErrorEvent) and collected[-2].kind == "llm_error"
    assert collected[-2].step == 2
    assert collected[-1] == FinalAnswerEvent(text=result.final_answer, outcome="llm_error")


async def test_unexpected_backend_exception_is_an_llm_error() -> None:
    def broken(request: ScriptedRequest) -> str:
        raise ValueError("bad state")

    result = await run(make_agent(Scripted(broken)), "Hi")
    assert (result.outcome, result.error) == ("llm_error", "ValueError: bad state")


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def waits(request: ScriptedRequest) -> str:
        started.set()
        await asyncio.Event().wait()
        return "unreachable"

    task = asyncio.create_task(run(make_agent(Scripted(waits)), "Hi"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_empty_reply_is_retried_once_with_a_nudge() -> None:
    llm = Scripted(["", "Hello!"])
    result = await run(make_agent(llm), "Hi")
    assert (result.outcome, result.final_answer) == ("answered", "Hello!")
    assert llm.requests[1].messages[-1] == Message.user(EMPTY_REPLY_NUDGE)
    assert [s.purpose for s in result.steps] == ["act", "retry"]


async def test_two_empty_replies_end_the_run() -> None:
    result = await run(make_agent(Scripted(["", ""])), "Hi")
    assert (result.outcome, result.error) == ("llm_error", "empty reply")
    assert result.final_answer == (
        "The model replied with neither text nor a tool call twice, so the task was not completed. "
        "No tool was called."
    )


# ------------------------------------------------------------------------------------ events and usage


async def test_stream_events_come_in_order_and_match_the_steps() -> None:
    llm = Scripted([Message.assistant("Let me add.", [call("add", "c1", a=1, b=2)]), "The sum is 3."])
    events = stream(make_agent(llm), QUESTION)
    collected: list[AgentEvent] = [event async for event in events]
    result = events.result

    assert [(e.type, getattr(e, "step", None)) for e in collected] == [
        ("step_started", 1),
        ("agent_text_delta", 1),
        ("llm_response", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("step_started", 2),
        ("agent_text_delta", 2),
        ("llm_response", 2),
        ("final_answer", None),
    ]
    responses = [e for e in collected if isinstance(e, LLMResponseEvent)]
    llm_steps = [s for s in result.steps if s.kind == "llm"]
    assert [e.completion for e in responses] == [s.completion for s in llm_steps]
    assert [e.duration_s for e in responses] == [s.duration_s for s in llm_steps]
    tool_result_event = next(e for e in collected if isinstance(e, ToolResultEvent))
    assert tool_result_event.result == result.steps[1].result
    assert collected[-1] == FinalAnswerEvent(text="The sum is 3.", outcome="answered")
    assert [e.step for e in collected if isinstance(e, StepStartedEvent)] == [1, 2]


class _ChunkedLLM(BaseLLM):
    """Streams text in pieces and ends without a FinishEvent, like a provider translated chunk by chunk."""

    model = "chunked"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        for piece in self.pieces:
            yield TextDeltaEvent(text=piece)


async def test_streamed_text_deltas_are_forwarded_and_assembled() -> None:
    events = stream(make_agent(_ChunkedLLM(["Hel", "lo ", "there."])), "Hi")
    deltas = [e.text async for e in events if e.type == "agent_text_delta"]
    assert deltas == ["Hel", "lo ", "there."]
    assert events.result.final_answer == "Hello there."


async def test_result_is_unavailable_before_the_stream_ends() -> None:
    events = stream(make_agent(Scripted(["Hi"])), "Hi")
    with pytest.raises(RuntimeError, match="not finished"):
        _ = events.result
    await events.aclose()


async def test_usage_is_summed_over_all_llm_calls() -> None:
    def completion(message: Message, prompt: int, generated: int) -> Completion:
        finish = "tool_calls" if message.tool_calls else "stop"
        return Completion(
            message=message,
            finish_reason=finish,
            usage=Usage(prompt_tokens=prompt, completion_tokens=generated),
        )

    llm = Scripted(
        [
            completion(Message.assistant(tool_calls=[call("add", "c1", a=1, b=2)]), 100, 12),
            completion(Message.assistant("3"), 130, 1),
        ]
    )
    result = await run(make_agent(llm), QUESTION)
    assert result.usage == Usage(prompt_tokens=230, completion_tokens=13)


async def test_on_step_finished_sees_every_step_in_order() -> None:
    seen: list[tuple[int, str]] = []

    class TracingRunner(Runner):
        async def on_step_finished(self, state: RunState, step: Step) -> None:
            seen.append((step.index, step.kind))
            assert state.steps[-1] is step

    result: RunResult = await TracingRunner().run(
        make_agent(Scripted([call("add", "c1", a=1, b=2), "3"])), "?"
    )
    assert seen == [(s.index, s.kind) for s in result.steps] == [(1, "llm"), (1, "tool"), (2, "llm")]


def test_agent_accepts_plain_functions_and_validates_budgets() -> None:
    def subtract(a: int, b: int) -> int:
        """Subtract b from a."""
        return a - b

    agent = make_agent(Scripted([]), [add, subtract])
    assert agent.tools.names() == ["add", "subtract"]
    with pytest.raises(ValueError, match="max_steps"):
        make_agent(Scripted([]), max_steps=0)
    with pytest.raises(ValueError, match="loop_limit"):
        make_agent(Scripted([]), loop_limit=1)
