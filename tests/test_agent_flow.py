"""Flow agents: templated arguments over the input, parameters and earlier outputs, the optional answer step,
error handling, validation of the steps, and the events a flow emits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from fncall.agents.flow import FlowAgent, FlowRunner, FlowStep, run_flow, stream_flow
from fncall.errors import LLMError
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.tools import tool
from fncall.tools.builtin import convert_currency
from fncall.types import ErrorEvent, FinalAnswerEvent, LLMResponseEvent, Message, ToolCallEvent


@tool
def lookup_amount(text: str) -> dict[str, Any]:
    """Find the amount and currency a sentence mentions (a fixed table for tests)."""
    return {"amount": 42.0, "currency": "USD", "text": text}


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@tool
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


@tool
async def slow(text: str) -> str:
    """Never finishes in time."""
    await asyncio.sleep(30)
    return text


TOOLS = [lookup_amount, convert_currency, shout, fail, slow]


def flow(steps: list[dict[str, Any]], **settings: Any) -> FlowAgent:
    return FlowAgent(name="flow", tools=TOOLS, steps=[FlowStep(**step) for step in steps], **settings)


CONVERT_STEPS = [
    {"tool": "lookup_amount", "arguments": {"text": "{{ input }}"}},
    {
        "tool": "convert_currency",
        "name": "converted",
        "arguments": {
            "amount": "{{ steps.lookup_amount.data.amount }}",
            "from_currency": "{{ steps.lookup_amount.data.currency }}",
            "to_currency": "{{ parameters.target }}",
        },
    },
]
CONVERTED = '{"from_currency":"USD","to_currency":"CAD","converted_amount":131.95}'


async def test_arguments_come_from_the_input_parameters_and_earlier_outputs() -> None:
    agent = flow(CONVERT_STEPS, parameters={"target": "CAD"})
    result = await run_flow(agent, "I have 42 dollars")

    assert result.outcome == "answered"
    lookup, convert = result.tool_calls()
    assert lookup.arguments == {"text": "I have 42 dollars"}
    # a template that is one expression keeps its type: the amount stays a number
    assert convert.arguments == {"amount": 42.0, "from_currency": "USD", "to_currency": "CAD"}
    assert result.final_answer == CONVERTED
    assert [m.role for m in result.messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


async def test_run_parameters_override_the_agent_defaults() -> None:
    agent = flow(CONVERT_STEPS, parameters={"target": "CAD"})
    result = await run_flow(agent, "42 dollars", parameters={"target": "EUR"})
    assert result.tool_calls()[1].arguments["to_currency"] == "EUR"


async def test_mixed_text_templates_render_as_text_with_filters() -> None:
    steps = [
        {"tool": "lookup_amount", "name": "found", "arguments": {"text": "{{ input }}"}},
        {
            "tool": "shout",
            "arguments": {"text": "got {{ steps.found.data.amount }} {{ steps.found.data | json }}"},
        },
        {"tool": "shout", "name": "again", "arguments": {"text": "{{ steps['shout'].output | lower }}!"}},
    ]
    result = await run_flow(flow(steps), "x")
    assert result.tool_calls()[1].arguments == {
        "text": 'got 42.0 {"amount": 42.0, "currency": "USD", "text": "x"}'
    }
    assert result.final_answer == 'got 42.0 {"amount": 42.0, "currency": "usd", "text": "x"}!'.upper()


async def test_final_llm_step_writes_the_answer_from_the_outputs() -> None:
    prompts: list[ScriptedRequest] = []

    def answer(request: ScriptedRequest) -> str:
        prompts.append(request)
        return "42 US dollars is 131.95 Canadian dollars."

    agent = flow(
        CONVERT_STEPS,
        llm=Scripted(answer),
        system_prompt="Answer in one sentence.",
        answer_prompt="Question: {{ input }}\nResult: {{ steps.converted.output }}",
        parameters={"target": "CAD"},
    )
    history = [Message.user("Hi"), Message.assistant("Hello.")]
    result = await run_flow(agent, "42 USD to CAD?", history=history)

    assert (result.outcome, result.final_answer) == ("answered", "42 US dollars is 131.95 Canadian dollars.")
    (request,) = prompts
    assert request.tools == []
    assert [(m.role, m.text) for m in request.messages] == [
        ("system", "Answer in one sentence."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "Question: 42 USD to CAD?\nResult: " + CONVERTED),
    ]
    assert [step.kind for step in result.steps] == ["tool", "tool", "llm"]
    assert result.usage.completion_tokens == 7  # the Scripted backend counts words


async def test_a_failing_tool_stops_the_flow_with_a_clear_message() -> None:
    steps = [
        {"tool": "shout", "arguments": {"text": "{{ input }}"}},
        {"tool": "fail", "arguments": {"reason": "the service is down"}},
        {"tool": "shout", "name": "never", "arguments": {"text": "x"}},
    ]
    events = stream_flow(flow(steps), "hi")
    seen = [event async for event in events]
    result = events.result

    assert result.outcome == "tool_error"
    assert result.final_answer == (
        "The flow flow stopped at step 2 (fail) because the tool fail failed: "
        "Error: fail raised ValueError: the service is down"
    )
    assert result.error == "Error: fail raised ValueError: the service is down"
    assert [call.name for call in result.tool_calls()] == ["shout", "fail"]
    errors = [event for event in seen if isinstance(event, ErrorEvent)]
    assert [(e.kind, e.step) for e in errors] == [("tool_error", 2)]
    assert isinstance(seen[-1], FinalAnswerEvent) and seen[-1].outcome == "tool_error"


async def test_on_error_continue_goes_on_and_later_steps_see_the_error() -> None:
    steps = [
        {"tool": "fail", "arguments": {"reason": "flaky"}, "on_error": "continue"},
        {
            "tool": "shout",
            "arguments": {"text": "{{ 'fallback' if steps.fail.is_error else steps.fail.output }}"},
        },
    ]
    result = await run_flow(flow(steps), "hi")
    assert (result.outcome, result.final_answer) == ("answered", "FALLBACK")
    assert result.tool_results()[0].is_error


async def test_a_template_that_reads_missing_data_is_a_step_error() -> None:
    steps = [
        {"tool": "lookup_amount", "arguments": {"text": "{{ input }}"}},
        {"tool": "shout", "arguments": {"text": "{{ steps.lookup_amount.data.missing }}"}},
    ]
    result = await run_flow(flow(steps), "hi")
    assert result.outcome == "tool_error"
    content = result.tool_results()[1].content
    assert content.startswith("Error: could not fill in the arguments of step 'shout': ")
    assert "missing" in content


async def test_schema_violations_are_tool_errors() -> None:
    steps = [{"tool": "convert_currency", "arguments": {"amount": "{{ input }}", "from_currency": "USD"}}]
    result = await run_flow(flow(steps), "lots")
    assert result.outcome == "tool_error"
    assert result.tool_results()[0].content.startswith("Error: invalid arguments for convert_currency:")


async def test_an_llm_failure_in_the_answer_step_is_an_llm_error() -> None:
    def broken(request: ScriptedRequest) -> str:
        raise LLMError("backend unreachable")

    agent = flow(
        [{"tool": "shout", "arguments": {"text": "x"}}], llm=Scripted(broken), answer_prompt="{{ input }}"
    )
    result = await run_flow(agent, "hi")
    assert result.outcome == "llm_error"
    assert result.final_answer == "The language model failed, so the flow has no answer: backend unreachable"


async def test_the_flow_time_limit_cancels_a_running_tool() -> None:
    agent = flow([{"tool": "slow", "arguments": {"text": "x"}}], timeout_s=0.05)
    result = await run_flow(agent, "hi")
    assert result.outcome == "timeout"
    assert (
        result.tool_results()[0].content == "Cancelled: the flow's time limit ran out while slow was running."
    )
    assert result.final_answer == "The flow flow ran out of time (0.05 s)."


async def test_streamed_answer_step_forwards_text() -> None:
    agent = flow(
        [{"tool": "shout", "arguments": {"text": "{{ input }}"}}],
        llm=Scripted(["It says HI."]),
        answer_prompt="Say what {{ steps.shout.output }} is.",
    )
    events = FlowRunner().stream(agent, "hi")
    kinds = [event.type async for event in events]
    assert kinds == [
        "step_started",
        "tool_call",
        "tool_result",
        "step_started",
        "agent_text_delta",
        "llm_response",
        "final_answer",
    ]
    assert events.result.final_answer == "It says HI."


async def test_events_carry_step_numbers() -> None:
    seen = [event async for event in stream_flow(flow(CONVERT_STEPS, parameters={"target": "CAD"}), "x")]
    calls = [event for event in seen if isinstance(event, ToolCallEvent)]
    assert [(event.step, event.call.name) for event in calls] == [
        (1, "lookup_amount"),
        (2, "convert_currency"),
    ]
    assert not any(isinstance(event, LLMResponseEvent) for event in seen)


def test_result_is_read_only_after_the_stream_ends() -> None:
    events = stream_flow(flow([{"tool": "shout", "arguments": {"text": "x"}}]), "hi")
    with pytest.raises(RuntimeError, match="not finished yet"):
        _ = events.result


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("steps", "settings", "message"),
    [
        (
            [
                {"tool": "shout", "arguments": {"text": "{{ steps.later.output }}"}},
                {"tool": "shout", "name": "later"},
            ],
            {},
            "steps[0].arguments.text: refers to step 'later', which runs later",
        ),
        (
            [{"tool": "shout", "arguments": {"text": "{{ steps.nowhere.output }}"}}],
            {},
            "steps[0].arguments.text: refers to an unknown step 'nowhere' (steps before it: none yet)",
        ),
        (
            [{"tool": "shout", "arguments": {"text": "{{ steps.shout.output }}"}}],
            {},
            "steps[0].arguments.text: refers to its own step 'shout'",
        ),
        ([{"tool": "shout"}, {"tool": "shout"}], {}, "steps[1].name: another step is already called 'shout'"),
        ([{"tool": "search"}], {}, "steps[0].tool: unknown tool 'search'"),
        (
            [{"tool": "shout", "arguments": {"text": "{{ input "}}],
            {},
            "steps[0].arguments.text: the template",
        ),
        ([{"tool": "shout"}], {"answer_prompt": "{{ input }}"}, "llm: an answer_prompt needs an llm"),
        (
            [{"tool": "shout"}],
            {"answer_prompt": "{{ steps.other.output }}", "llm": Scripted([])},
            "answer_prompt: refers to an unknown step 'other'",
        ),
    ],
)
def test_invalid_flows_are_rejected_naming_the_field(
    steps: list[dict[str, Any]], settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        flow(steps, **settings)
    assert message in str(caught.value)


def test_a_flow_needs_steps_and_step_names_must_be_identifiers() -> None:
    with pytest.raises(ValidationError, match="steps"):
        FlowAgent(name="empty", tools=TOOLS, steps=[])
    with pytest.raises(ValidationError, match="a step name must be letters"):
        FlowStep(tool="shout", name="my step")


async def test_templates_run_sandboxed() -> None:
    agent = flow([{"tool": "shout", "arguments": {"text": "{{ input.__class__.__mro__ }}"}}])
    result = await run_flow(agent, "hi")
    assert result.outcome == "tool_error"
    assert result.tool_results()[0].content == (
        "Error: could not fill in the arguments of step 'shout': access to attribute '__class__' of 'str' "
        "object is unsafe."
    )


async def test_any_exception_in_a_template_is_a_step_error() -> None:
    result = await run_flow(flow([{"tool": "shout", "arguments": {"text": "{{ 1 / 0 }}"}}]), "hi")
    assert result.outcome == "tool_error"
    assert result.tool_results()[0].content == (
        "Error: could not fill in the arguments of step 'shout': division by zero"
    )
