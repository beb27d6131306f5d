"""Pause and resume in the Runner (approvals and client-side tools), driven by the Scripted backend, plus the
runner hooks that came with it: `on_step` and `counts_against_budget`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from fncall.agents import (
    Agent,
    ApprovalDecision,
    PausedEvent,
    PendingCall,
    ReactRunner,
    RunEvent,
    Runner,
    RunResult,
    RunState,
    Step,
    resume,
    run,
)
from fncall.agents.react import FORMAT_ERROR_TOOL
from fncall.agents.runner import STOPPED_BEFORE_APPROVAL
from fncall.errors import InvalidRequestError
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.memory import MemoryStore, TraceRecorder
from fncall.tools import Tool, tool
from fncall.types import (
    AgentTextDeltaEvent,
    FinalAnswerEvent,
    LLMResponseEvent,
    Message,
    StepStartedEvent,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    ToolResultEvent,
)

QUESTION = "Clean up and add 1 + 2."


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Files:
    """A tool that needs approval, with a record of what it really did."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

        @tool(requires_approval=True)
        def delete_file(path: str) -> str:
            """Delete a file."""
            self.deleted.append(path)
            return f"deleted {path}"

        self.tool = delete_file


locate = Tool.from_schema(
    "get_location",
    "The user's location, read by the client.",
    {"type": "object", "properties": {"precision": {"type": "string"}}, "required": ["precision"]},
    None,
    client_side=True,
)


def call(name: str, call_id: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


def make_agent(llm: Scripted, files: Files, **settings: Any) -> Agent:
    return Agent(
        name="helper",
        instructions="You help.",
        llm=llm,
        tools=[add, files.tool, locate],
        **settings,
    )


def tool_messages(request: ScriptedRequest) -> list[Message]:
    return [message for message in request.messages if message.role == "tool"]


DELETE = call("delete_file", "call_del", path="/tmp/x")
ADD = call("add", "call_add", a=1, b=2)
LOCATE = call("get_location", "call_loc", precision="city")


async def paused_run(files: Files, *script: Any, **settings: Any) -> tuple[Scripted, RunResult]:
    llm = Scripted([[ADD, DELETE], *script])
    result = await Runner().run(make_agent(llm, files, **settings), QUESTION)
    assert result.outcome == "paused"
    return llm, result


# ------------------------------------------------------------------------------------------- pause


async def test_an_approval_call_pauses_after_the_ordinary_calls_of_its_turn_ran() -> None:
    files = Files()
    _, result = await paused_run(files)

    assert result.pending == [PendingCall(call=DELETE, reason="approval")]
    assert result.final_answer == ""
    assert files.deleted == []
    assert [(r.call_id, r.content) for r in result.tool_results()] == [("call_add", "3")]
    assert result.messages[-1] == Message.assistant(tool_calls=[ADD, DELETE])
    assert result.state is not None
    saved = json.loads(json.dumps(result.state))
    assert saved["pending"] == [{"call": DELETE.model_dump(mode="json"), "reason": "approval"}]
    assert saved["turn_results"][0]["content"] == "3"
    assert (saved["llm_turns"], saved["tool_calls_executed"], saved["step_index"]) == (1, 2, 1)
    assert saved["call_counts"] == {ADD.signature(): 1, DELETE.signature(): 1}


async def test_resume_approved_runs_the_tool_and_the_model_answers() -> None:
    files = Files()
    llm, paused = await paused_run(files, "Done: 3, and /tmp/x is gone.")
    assert paused.state is not None

    result = await Runner().resume(make_agent(llm, files), paused.state, approvals={"call_del": True})

    assert (result.outcome, result.final_answer) == ("answered", "Done: 3, and /tmp/x is gone.")
    assert files.deleted == ["/tmp/x"]
    assert [(m.tool_call_id, m.content) for m in tool_messages(llm.requests[1])] == [
        ("call_add", "3"),
        ("call_del", "deleted /tmp/x"),
    ]
    assert [(s.kind, s.index) for s in result.steps] == [("llm", 1), ("tool", 1), ("tool", 1), ("llm", 2)]
    assert result.pending == [] and result.state is None


@pytest.mark.parametrize(
    ("decision", "content"),
    [
        (ApprovalDecision(approved=False, reason="too risky"), "The user rejected this call: too risky"),
        (False, "The user rejected this call."),
    ],
)
async def test_a_rejected_call_does_not_run_and_the_model_reads_why(
    decision: bool | ApprovalDecision, content: str
) -> None:
    files = Files()
    llm, paused = await paused_run(files, "I left the file alone.")
    assert paused.state is not None

    result = await Runner().resume(make_agent(llm, files), paused.state, approvals={"call_del": decision})

    assert result.final_answer == "I left the file alone."
    assert files.deleted == []
    rejection = tool_messages(llm.requests[1])[1]
    assert (rejection.tool_call_id, rejection.content, rejection.is_error) == ("call_del", content, True)
    assert result.tool_results()[-1].data == {"error_kind": "rejected"}


async def test_edited_arguments_run_and_replace_the_call_in_the_transcript() -> None:
    files = Files()
    llm, paused = await paused_run(files, "Deleted the safer path.")
    assert paused.state is not None
    decision = ApprovalDecision(approved=True, arguments={"path": "/tmp/x.bak"})

    result = await Runner().resume(make_agent(llm, files), paused.state, approvals={"call_del": decision})

    assert files.deleted == ["/tmp/x.bak"]
    edited = call("delete_file", "call_del", path="/tmp/x.bak")
    assert llm.requests[1].messages[-3] == Message.assistant(tool_calls=[ADD, edited])
    assert result.tool_calls()[-1] == edited


async def test_edited_arguments_that_break_the_schema_are_refused_before_anything_runs() -> None:
    files = Files()
    llm, paused = await paused_run(files)
    assert paused.state is not None
    decision = ApprovalDecision(approved=True, arguments={"path": 42})

    with pytest.raises(InvalidRequestError) as caught:
        await Runner().resume(make_agent(llm, files), paused.state, approvals={"call_del": decision})

    assert caught.value.param == "approvals"
    assert "'call_del' (delete_file)" in caught.value.message
    assert files.deleted == [] and len(llm.requests) == 1


async def test_a_client_side_call_pauses_and_its_submitted_result_reaches_the_model() -> None:
    files = Files()
    llm = Scripted([LOCATE, "You are in Paris."])
    agent = make_agent(llm, files)
    paused = await run(agent, "Where am I?")
    assert paused.pending == [PendingCall(call=LOCATE, reason="client_side")]
    assert paused.state is not None

    result = await resume(agent, paused.state, tool_results={"call_loc": "Paris"})

    assert result.final_answer == "You are in Paris."
    last = tool_messages(llm.requests[1])[-1]
    assert (last.tool_call_id, last.name, last.content, last.is_error) == (
        "call_loc",
        "get_location",
        "Paris",
        False,
    )


async def test_a_client_side_error_result_reaches_the_model_as_an_error() -> None:
    files = Files()
    llm = Scripted([LOCATE, "I could not read your location."])
    agent = make_agent(llm, files)
    paused = await run(agent, "Where am I?")
    assert paused.state is not None
    submitted = ToolResult(call_id="anything", name="anything", content="GPS is off", is_error=True)

    result = await resume(agent, paused.state, tool_results={"call_loc": submitted})

    last = tool_messages(llm.requests[1])[-1]
    assert (last.tool_call_id, last.name, last.content, last.is_error) == (
        "call_loc",
        "get_location",
        "GPS is off",
        True,
    )
    assert result.tool_results()[-1] == ToolResult(
        call_id="call_loc", name="get_location", content="GPS is off", is_error=True
    )


async def test_a_tool_that_is_both_client_side_and_approval_waits_for_the_client() -> None:
    both = Tool.from_schema(
        "send_mail", "Send a mail.", {"type": "object"}, None, client_side=True, requires_approval=True
    )
    llm = Scripted([call("send_mail", "call_mail")])
    result = await run(Agent(name="m", llm=llm, tools=[both]), "mail Bob")
    assert [(p.call.id, p.reason) for p in result.pending] == [("call_mail", "client_side")]


async def test_calls_whose_arguments_break_the_schema_are_answered_at_once_not_held() -> None:
    files = Files()
    bad_delete = call("delete_file", "call_bad", path=7)
    bad_locate = call("get_location", "call_badloc")
    llm = Scripted([[bad_delete, bad_locate], "Sorry."])
    result = await run(make_agent(llm, files), QUESTION)

    assert result.outcome == "answered"
    assert files.deleted == []
    deleted, located = result.tool_results()
    assert deleted.is_error and deleted.data == {"error_kind": "invalid_arguments"}
    assert located.content == (
        "Error: invalid arguments for get_location:\n- 'precision' is a required property\n"
        "Fix these and call get_location again."
    )


# ------------------------------------------------------------------------------- bad resume requests


@pytest.mark.parametrize(
    ("approvals", "tool_results", "param", "named"),
    [
        ({}, {"call_loc": "Paris"}, "approvals", "'call_del'"),
        ({"call_del": True}, {}, "tool_results", "'call_loc'"),
        ({"call_del": True, "call_nope": True}, {"call_loc": "x"}, "approvals", "'call_nope'"),
        ({"call_del": True}, {"call_loc": "x", "call_nope": "y"}, "tool_results", "'call_nope'"),
        ({"call_del": True, "call_loc": True}, {"call_loc": "x"}, "approvals", "'call_loc'"),
        ({"call_del": True}, {"call_loc": "x", "call_del": "y"}, "tool_results", "'call_del'"),
    ],
)
async def test_a_missing_misplaced_or_unknown_answer_is_an_invalid_request(
    approvals: dict[str, Any], tool_results: dict[str, Any], param: str, named: str
) -> None:
    files = Files()
    llm = Scripted([[DELETE, LOCATE]])
    agent = make_agent(llm, files)
    paused = await run(agent, QUESTION)
    assert paused.state is not None

    with pytest.raises(InvalidRequestError) as caught:
        await resume(agent, paused.state, approvals=approvals, tool_results=tool_results)

    assert caught.value.param == param
    assert named in caught.value.message
    assert files.deleted == [] and len(llm.requests) == 1


async def test_a_state_that_is_not_paused_or_not_this_agents_is_an_invalid_request() -> None:
    files = Files()
    llm, paused = await paused_run(files)
    assert paused.state is not None
    answered = await run(make_agent(Scripted(["hi"]), files), "hello")
    not_paused = RunState(agent=make_agent(llm, files), messages=answered.messages).to_dict()
    other = Agent(name="someone-else", llm=llm, tools=[add, files.tool, locate])

    for agent, state in [
        (make_agent(llm, files), not_paused),
        (other, paused.state),
        (make_agent(llm, files), {**paused.state, "steps": "nope"}),
        (make_agent(llm, files), {**paused.state, "version": 99}),
    ]:
        with pytest.raises(InvalidRequestError) as caught:
            await Runner().resume(agent, state, approvals={"call_del": True})
        assert caught.value.param == "state"


# ----------------------------------------------------------------------------------- continuation


async def test_a_run_can_pause_twice() -> None:
    files = Files()
    second = call("delete_file", "call_del2", path="/tmp/y")
    llm = Scripted([DELETE, second, "Both deleted."])
    agent = make_agent(llm, files)

    first_pause = await run(agent, QUESTION)
    assert first_pause.state is not None
    second_pause = await resume(agent, first_pause.state, approvals={"call_del": True})
    assert second_pause.outcome == "paused"
    assert second_pause.pending == [PendingCall(call=second, reason="approval")]
    assert second_pause.state is not None and second_pause.state["step_index"] == 2
    result = await resume(agent, json.loads(json.dumps(second_pause.state)), approvals={"call_del2": True})

    assert (result.outcome, result.final_answer) == ("answered", "Both deleted.")
    assert files.deleted == ["/tmp/x", "/tmp/y"]
    assert [(s.kind, s.index) for s in result.steps] == [
        ("llm", 1),
        ("tool", 1),
        ("llm", 2),
        ("tool", 2),
        ("llm", 3),
    ]


async def test_max_steps_counts_the_steps_before_the_pause() -> None:
    files = Files()
    llm, paused = await paused_run(
        files, call("add", "call_more", a=3, b=4), "Summary: 3 and 7.", max_steps=2
    )
    assert paused.state is not None

    result = await Runner().resume(
        make_agent(llm, files, max_steps=2),
        json.loads(json.dumps(paused.state)),
        approvals={"call_del": True},
    )

    assert result.outcome == "max_steps"
    assert result.final_answer.startswith("Agent reached maximum iterations (2)")
    assert [r.content for r in result.tool_results()] == ["3", "deleted /tmp/x", "7"]
    assert len(llm.requests) == 3  # turns 1 and 2, then the summary request


async def test_max_tool_calls_counts_the_calls_before_the_pause_and_a_rejection_gives_its_call_back() -> None:
    files = Files()
    llm, paused = await paused_run(
        files,
        [call("add", "call_3", a=0, b=3), call("add", "call_4", a=0, b=4)],
        "Summary.",
        max_tool_calls=2,
    )
    assert paused.state is not None

    result = await Runner().resume(
        make_agent(llm, files, max_tool_calls=2), paused.state, approvals={"call_del": False}
    )

    assert result.outcome == "max_tool_calls"
    assert [r.content for r in result.tool_results()][-2:] == [
        "3",
        "Not executed: the run's limit of 2 tool calls is used up.",
    ]


async def test_loop_detection_counts_carry_over_a_pause() -> None:
    files = Files()
    llm, paused = await paused_run(files, ADD, "Done.", loop_limit=2)
    assert paused.state is not None
    result = await Runner().resume(
        make_agent(llm, files, loop_limit=2), paused.state, approvals={"call_del": True}
    )
    assert result.tool_results()[-1].content.startswith("Not executed: you already made this exact call (add")


async def test_a_run_that_stops_in_the_turn_does_not_pause() -> None:
    files = Files()
    llm = Scripted([[DELETE, ADD, call("add", "call_x", a=5, b=5)], "Summary."])
    result = await run(make_agent(llm, files, max_tool_calls=2), QUESTION)

    assert result.outcome == "max_tool_calls"
    assert result.pending == [] and result.state is None
    assert [r.content for r in result.tool_results()] == [
        STOPPED_BEFORE_APPROVAL,
        "3",
        "Not executed: the run's limit of 2 tool calls is used up.",
    ]


async def test_the_elapsed_time_carries_over() -> None:
    files = Files()
    llm, paused = await paused_run(files, "ok")
    assert paused.state is not None
    before = paused.state["elapsed_s"]
    result = await Runner().resume(make_agent(llm, files), paused.state, approvals={"call_del": True})
    assert result.duration_s >= before > 0


# --------------------------------------------------------------------------- persistence in memory


async def test_resume_after_a_restart_through_a_real_memory_store(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'paused.db'}"
    files = Files()
    store = await MemoryStore.open(url)
    conversation = await store.create_conversation("chat")
    recorder = TraceRecorder(store, conversation.memory_id, QUESTION)
    await recorder.start()
    paused = await Runner().run(
        make_agent(Scripted([[ADD, DELETE]]), files), QUESTION, on_step=recorder.on_step_finished
    )
    assert paused.state is not None
    await store.pause_interaction(recorder.interaction_id, paused.state)
    interaction_id = recorder.interaction_id
    await store.close()

    restarted = await MemoryStore.open(url)
    try:
        state = await restarted.resume_interaction(interaction_id)
        interaction = await restarted.get_interaction(interaction_id)
        resumed = TraceRecorder.for_interaction(restarted, interaction)
        llm = Scripted(["3, and /tmp/x is deleted."])
        result = await Runner().resume(
            make_agent(llm, files), state, approvals={"call_del": True}, on_step=resumed.on_step_finished
        )
        await resumed.finish(result)

        assert result.final_answer == "3, and /tmp/x is deleted."
        assert files.deleted == ["/tmp/x"]
        assert [(m.role, m.tool_call_id) for m in llm.requests[0].messages] == [
            ("system", None),
            ("user", None),
            ("assistant", None),
            ("tool", "call_add"),
            ("tool", "call_del"),
        ]
        traces = await restarted.list_traces(interaction_id)
        assert [(t.origin, t.step) for t in traces] == [
            ("llm", 1),
            ("add", 1),
            ("delete_file", 1),
            ("llm", 2),
        ]
        assert (await restarted.get_interaction(interaction_id)).status == "completed"
    finally:
        await restarted.close()


# ------------------------------------------------------------------------------------------ events


async def test_stream_then_resume_stream_event_order() -> None:
    files = Files()
    llm = Scripted([[ADD, DELETE], "Done."])
    agent = make_agent(llm, files)
    runner = Runner()

    stream = runner.stream(agent, QUESTION)
    first = [event async for event in stream]
    assert [(e.type, getattr(e, "step", None)) for e in first] == [
        ("step_started", 1),
        ("llm_response", 1),
        ("tool_call", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("paused", 1),
    ]
    assert isinstance(first[-1], PausedEvent)
    assert first[-1].pending == [PendingCall(call=DELETE, reason="approval")]
    assert stream.result.outcome == "paused"
    state = stream.result.state
    assert state is not None

    resumed = runner.resume_stream(agent, state, approvals={"call_del": True})
    second = [event async for event in resumed]
    assert [type(e) for e in second] == [
        ToolResultEvent,
        StepStartedEvent,
        AgentTextDeltaEvent,
        LLMResponseEvent,
        FinalAnswerEvent,
    ]
    assert isinstance(second[0], ToolResultEvent) and second[0].result.content == "deleted /tmp/x"
    assert isinstance(second[-1], FinalAnswerEvent) and second[-1].text == "Done."
    assert resumed.result.outcome == "answered"
    assert not any(isinstance(e, ToolCallEvent) for e in second)


def test_a_paused_event_round_trips_through_the_run_event_union() -> None:
    event = PausedEvent(step=3, pending=[PendingCall(call=LOCATE, reason="client_side")])
    assert TypeAdapter(RunEvent).validate_json(event.model_dump_json()) == event


def test_resume_stream_checks_the_request_before_it_is_iterated() -> None:
    files = Files()
    agent = make_agent(Scripted([]), files)
    with pytest.raises(InvalidRequestError) as caught:
        Runner().resume_stream(agent, {"nonsense": True})
    assert caught.value.param == "state"


# ------------------------------------------------------------------------------------------- hooks


async def test_on_step_is_called_once_per_step_sync_or_async() -> None:
    files = Files()
    seen: list[tuple[str, int]] = []
    awaited: list[tuple[str, int]] = []

    def record(state: RunState, step: Step) -> None:
        assert state.steps[-1] is step
        seen.append((step.kind, step.index))

    async def record_async(state: RunState, step: Step) -> None:
        awaited.append((step.kind, step.index))

    llm = Scripted([ADD, "3"])
    result = await run(make_agent(llm, files), QUESTION, on_step=record)
    assert seen == [(s.kind, s.index) for s in result.steps] == [("llm", 1), ("tool", 1), ("llm", 2)]

    paused = await run(make_agent(Scripted([DELETE, "ok"]), files), QUESTION, on_step=record_async)
    assert paused.state is not None
    await resume(
        make_agent(Scripted(["ok"]), files), paused.state, approvals={"call_del": True}, on_step=record_async
    )
    assert awaited == [("llm", 1), ("tool", 1), ("llm", 2)]


async def test_the_react_format_error_uses_neither_the_tool_budget_nor_loop_detection() -> None:
    files = Files()
    llm = Scripted(
        [
            "I am thinking.",
            "I am thinking.",
            "I am thinking.",
            'Action: add\nAction Input: {"a": 1, "b": 2}',
            "Final Answer: 3",
        ]
    )
    result = await ReactRunner().run(make_agent(llm, files, max_tool_calls=1, loop_limit=2), QUESTION)

    assert (result.outcome, result.final_answer) == ("answered", "3")
    assert [c.name for c in result.tool_calls()] == [FORMAT_ERROR_TOOL] * 3 + ["add"]
    assert result.tool_results()[-1].content == "3"


async def test_react_runs_pause_and_resume_too() -> None:
    files = Files()
    llm = Scripted(['Action: delete_file\nAction Input: {"path": "/tmp/x"}', "Final Answer: deleted"])
    runner = ReactRunner()
    paused = await runner.run(make_agent(llm, files), QUESTION)
    assert [(p.call.name, p.reason) for p in paused.pending] == [("delete_file", "approval")]
    assert paused.state is not None

    call_id = paused.pending[0].call.id
    result = await runner.resume(make_agent(llm, files), paused.state, approvals={call_id: True})

    assert (result.outcome, result.final_answer) == ("answered", "deleted")
    assert files.deleted == ["/tmp/x"]
    assert llm.requests[1].messages[-1] == Message.user("Observation: deleted /tmp/x")
