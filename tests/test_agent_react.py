"""The ReAct protocol over the Runner's loop, driven by the Scripted backend: prompt rendering, the lenient
parser (one case per format small models really write), format errors, unknown actions, budgets and loops."""

from __future__ import annotations

from typing import Any

import pytest

from fncall.agents import Agent
from fncall.agents.react import (
    FORMAT_ERROR_TOOL,
    OBSERVATION_STOP,
    ReactProtocolLLM,
    ReactRunner,
    action_input_example,
    parse_react_reply,
    react_grammar,
    react_system_prompt,
    run_react,
    stream_react,
    tool_signature,
)
from fncall.errors import ConfigError
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.tools import tool
from fncall.types import (
    Completion,
    ErrorEvent,
    FinalAnswerEvent,
    LLMResponseEvent,
    Message,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    ToolSpec,
    Usage,
)

QUESTION = "How many Canadian dollars does one US dollar buy?"
ACTION = 'Thought: I need the rate.\nAction: get_rate\nAction Input: {"currency": "CAD"}'


@tool
def get_rate(currency: str) -> float:
    """The number of units of `currency` one US dollar buys."""
    return {"CAD": 1.5, "EUR": 0.9}[currency]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"boom: {reason}")


def make_agent(llm: Any, **settings: Any) -> Agent:
    tools = settings.pop("tools", [get_rate, add])
    return Agent(name="react", instructions="You answer questions.", llm=llm, tools=tools, **settings)


def last_user_text(request: ScriptedRequest) -> str:
    return next(m.text for m in reversed(request.messages) if m.role == "user")


# ------------------------------------------------------------------------------------- happy path


async def test_thought_action_observation_final_answer() -> None:
    llm = Scripted(
        [ACTION, "Thought: I now know the final answer\nFinal Answer: One US dollar buys 1.5 CAD."]
    )
    result = await run_react(make_agent(llm), QUESTION)

    assert result.outcome == "answered"
    assert result.final_answer == "One US dollar buys 1.5 CAD."
    assert [(c.name, c.arguments) for c in result.tool_calls()] == [("get_rate", {"currency": "CAD"})]
    assert [r.content for r in result.tool_results()] == ["1.5"]
    first, second = llm.requests
    # no native tools, and the stop sequence on "Observation:"
    assert first.tools == [] and second.tools == []
    assert first.tool_choice == "none"
    assert OBSERVATION_STOP in first.params.stop
    assert first.params.parallel_tool_calls is False
    # the tools are described in the system prompt as signatures with an example Action Input each
    system = first.messages[0]
    assert system.role == "system"
    assert system.text.startswith(
        "You answer questions.\n\nYou can use these tools:\n"
        "- get_rate(currency: string) - The number of units of `currency` one US dollar buys.\n"
        '  Action Input example: {"currency": "<currency>"}\n'
        "- add(a: integer, b: integer) - Add two integers.\n"
        '  Action Input example: {"a": 0, "b": 0}\n'
    )
    assert "Action: one tool name (get_rate, add)" in system.text
    assert [m.role for m in first.messages] == ["system", "user"]
    # the second turn sees its own step as ReAct text and the result as an Observation
    assert [m.role for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2].text == ACTION
    assert second.messages[3].text == "Observation: 1.5"
    # the run's own transcript stays canonical
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[2].tool_calls[0].name == "get_rate"
    assert result.messages[2].reasoning == "I need the rate."
    assert result.messages[4].reasoning == "I now know the final answer"


async def test_answer_without_any_tool() -> None:
    llm = Scripted(["Thought: no tool needed\nFinal Answer: Hello!"])
    result = await run_react(make_agent(llm), "Say hello.")
    assert (result.outcome, result.final_answer, result.tool_calls()) == ("answered", "Hello!", [])


async def test_existing_stop_sequences_are_kept() -> None:
    llm = Scripted(["Final Answer: ok"])
    agent = make_agent(llm, params={"stop": ["\n\n\n"]})
    await run_react(agent, QUESTION)
    assert llm.requests[0].params.stop == ["\n\n\n", OBSERVATION_STOP]


# -------------------------------------------------------------------------------- format variants

VARIANTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("canonical", ACTION, "get_rate", {"currency": "CAD"}),
    (
        "missing thought",
        'Action: get_rate\nAction Input: {"currency": "CAD"}',
        "get_rate",
        {"currency": "CAD"},
    ),
    (
        "markdown bold",
        '**Thought:** rate\n**Action:** get_rate\n**Action Input:** {"currency": "CAD"}',
        "get_rate",
        {"currency": "CAD"},
    ),
    (
        "bold label, colon outside",
        '**Action**: get_rate\n**Action Input**: {"currency": "CAD"}',
        "get_rate",
        {"currency": "CAD"},
    ),
    ("backticks", 'Action: `get_rate`\nAction Input: {"currency": "CAD"}', "get_rate", {"currency": "CAD"}),
    ("parentheses", 'Action: get_rate()\nAction Input: {"currency": "CAD"}', "get_rate", {"currency": "CAD"}),
    (
        "fenced JSON input",
        'Action: get_rate\nAction Input:\n```json\n{"currency": "CAD"}\n```',
        "get_rate",
        {"currency": "CAD"},
    ),
    ("key=value", "Action: add\nAction Input: a=1, b=2", "add", {"a": 1, "b": 2}),
    ("key: value", "Action: add\nAction Input: a: 1, b: 2", "add", {"a": 1, "b": 2}),
    ("bare string, one parameter", "Action: get_rate\nAction Input: CAD", "get_rate", {"currency": "CAD"}),
    ("quoted bare string", 'Action: get_rate\nAction Input: "CAD"', "get_rate", {"currency": "CAD"}),
    ("python dict", "Action: add\nAction Input: {'a': 1, 'b': 2}", "add", {"a": 1, "b": 2}),
    ("inline call", "Action: get_rate(currency='CAD')", "get_rate", {"currency": "CAD"}),
    ("JSON under the action", 'Action: add\n```json\n{"a": 1, "b": 2}\n```', "add", {"a": 1, "b": 2}),
    ("other case", 'Action: Get_Rate\nAction Input: {"currency": "CAD"}', "get_rate", {"currency": "CAD"}),
    ("one line", 'Thought: x. Action: add Action Input: {"a": 1, "b": 2}', "add", {"a": 1, "b": 2}),
    (
        "ml-commons JSON",
        '```json\n{"thought": "rate", "action": "get_rate", "action_input": {"currency": "CAD"}}\n```',
        "get_rate",
        {"currency": "CAD"},
    ),
    (
        "ml-commons JSON, input as a string",
        '{"thought": "rate", "action": "get_rate", "action_input": "{\\"currency\\": \\"CAD\\"}"}',
        "get_rate",
        {"currency": "CAD"},
    ),
    ("native-style JSON", '{"name": "add", "arguments": {"a": 1, "b": 2}}', "add", {"a": 1, "b": 2}),
    (
        "a made-up Observation after the action",
        ACTION + "\nObservation: 7\nThought: done\nFinal Answer: 7",
        "get_rate",
        {"currency": "CAD"},
    ),
]


@pytest.mark.parametrize(
    ("text", "name", "arguments"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
async def test_tolerated_action_formats(text: str, name: str, arguments: dict[str, Any]) -> None:
    llm = Scripted([text, "Final Answer: done"])
    result = await run_react(make_agent(llm), QUESTION)
    assert [(c.name, c.arguments) for c in result.tool_calls()] == [(name, arguments)]
    assert not result.tool_results()[0].is_error
    assert result.final_answer == "done"


@pytest.mark.parametrize(
    "text",
    [
        "Final Answer: 1.5 CAD",
        "Thought: done\nFINAL ANSWER: 1.5 CAD",
        "final answer: 1.5 CAD",
        "Final_Answer: 1.5 CAD",
        "**Final Answer:** 1.5 CAD",
        "**Final Answer**: 1.5 CAD",
        "Thought: I know it.\nAction: Final Answer\nAction Input: 1.5 CAD",
        '{"thought": "done", "final_answer": "1.5 CAD"}',
        '```json\n{"action": "Final Answer", "action_input": "1.5 CAD"}\n```',
    ],
)
async def test_final_answer_variants(text: str) -> None:
    result = await run_react(make_agent(Scripted([text])), QUESTION)
    assert (result.outcome, result.final_answer) == ("answered", "1.5 CAD")


async def test_several_names_on_the_action_line_runs_the_first_offered_and_says_so() -> None:
    llm = Scripted(['Action: lookup, get_rate, add\nAction Input: {"currency": "EUR"}', "Final Answer: 0.9"])
    result = await run_react(make_agent(llm), QUESTION)
    assert [c.name for c in result.tool_calls()] == ["get_rate"]
    observation = last_user_text(llm.requests[1])
    assert observation == (
        "Observation: 0.9\nNote: the Action line named several tools; only one runs per step, so get_rate "
        "ran (not lookup, add). Use the others in later steps if you still need them."
    )


# -------------------------------------------------------------------------------------- recovery


async def test_parse_failure_becomes_a_format_observation_then_the_model_recovers() -> None:
    llm = Scripted(["I should look up the rate first.", ACTION, "Final Answer: 1.5"])
    result = await run_react(make_agent(llm), QUESTION)

    assert result.outcome == "answered"
    assert result.final_answer == "1.5"
    format_call, real_call = result.tool_calls()
    assert format_call.name == FORMAT_ERROR_TOOL
    assert real_call.name == "get_rate"
    assert result.tool_results()[0].is_error
    assert result.tool_results()[0].data == {"error_kind": "invalid_format"}
    retry = llm.requests[1]
    assert retry.messages[-2] == Message.assistant("I should look up the rate first.")
    assert last_user_text(retry) == (
        "Observation: Your reply could not be used: it contained neither 'Action:' nor 'Final Answer:'.\n"
        'Reply either with "Final Answer:" and then your answer, or with\n'
        "Thought: why you need the tool\nAction: one tool name (get_rate, add)\n"
        "Action Input: the tool's JSON object, like its example above, with the real values from the question"
    )


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Thought: hmm, let me think.", "it had a Thought but neither an Action nor a Final Answer."),
        ("", "the reply was empty."),
        ("Thought: done\nFinal Answer:", "the Final Answer was empty."),
    ],
)
async def test_each_parse_failure_names_its_problem(reply: str, problem: str) -> None:
    llm = Scripted([reply, "Final Answer: ok"])
    result = await run_react(make_agent(llm), QUESTION)
    assert result.final_answer == "ok"
    assert result.tool_results()[0].content.startswith(f"Your reply could not be used: {problem}\n")


async def test_a_cut_off_reply_says_so() -> None:
    cut = Completion(message=Message.assistant("Thought: this goes on and on"), finish_reason="length")
    llm = Scripted([cut, "Final Answer: ok"])
    result = await run_react(make_agent(llm), QUESTION)
    assert "It was cut off by the token limit: keep the reply shorter." in result.tool_results()[0].content


async def test_unknown_action_gets_the_offered_names() -> None:
    llm = Scripted(['Action: lookup_fact\nAction Input: {"q": "rate"}', ACTION, "Final Answer: 1.5"])
    result = await run_react(make_agent(llm), QUESTION)
    assert result.outcome == "answered"
    unknown = result.tool_results()[0]
    assert unknown.is_error
    assert unknown.content == "Error: unknown tool 'lookup_fact'. Available tools: get_rate, add."
    assert last_user_text(llm.requests[1]) == (
        "Observation: Error: unknown tool 'lookup_fact'. Available tools: get_rate, add.\n"
        "(The action failed. Fix the Action Input or choose another action; do not invent a result. If you "
        "cannot get the information, say so in the Final Answer.)"
    )


async def test_tool_errors_and_bad_arguments_reach_the_model() -> None:
    llm = Scripted(
        [
            "Action: explode\nAction Input: now",
            "Action: add\nAction Input: hello world",
            "Final Answer: I could not do it.",
        ]
    )
    result = await run_react(make_agent(llm, tools=[explode, add]), QUESTION)
    failure, bad_arguments = result.tool_results()
    assert failure.content == "Error: explode raised ValueError: boom: now"
    assert bad_arguments.content.startswith(
        "Error: the arguments of add are not a valid JSON object: 'hello world'"
    )
    assert result.final_answer == "I could not do it."


# ------------------------------------------------------------------------------ the Runner's rules


async def test_max_steps_ends_with_a_summary_request_without_tools() -> None:
    llm = Scripted([ACTION, 'Action: get_rate\nAction Input: {"currency": "EUR"}', "Both rates are known."])
    result = await run_react(make_agent(llm, max_steps=2), QUESTION)
    assert result.outcome == "max_steps"
    assert result.final_answer.endswith(
        "Here's a summary of the steps completed so far: Both rates are known."
    )
    summary = llm.requests[-1]
    assert summary.tools == []
    assert "You can use these tools" not in summary.messages[0].text
    assert summary.messages[0].text == "You answer questions."


async def test_loop_detection_applies_to_react_actions() -> None:
    # Each repeat is first asked once more for the Final Answer alone (an ACTION again here): 7 replies.
    llm = Scripted([*[ACTION] * 7, "Summary: the rate is 1.5."])
    result = await run_react(make_agent(llm, loop_limit=3), QUESTION)
    assert result.outcome == "loop_detected"
    assert len(llm.requests) == 8
    contents = [r.content for r in result.tool_results()]
    assert contents[:2] == ["1.5", "1.5"]
    assert contents[2].startswith("Not executed: you already made this exact call (get_rate")
    assert contents[3] == "Not executed: this exact call was repeated after a warning."
    assert result.final_answer.endswith(
        "Here's a summary of the steps completed so far: Summary: the rate is 1.5."
    )


async def test_a_repeated_answered_action_is_asked_once_more_for_the_final_answer() -> None:
    llm = Scripted([ACTION, ACTION, "Thought: I know it now\nFinal Answer: One US dollar buys 1.5 CAD."])
    llm.reads_grammar = True  # as the local engine: the re-ask is constrained to a Final Answer
    result = await run_react(make_agent(llm), QUESTION)
    assert result.outcome == "answered"
    assert result.final_answer == "One US dollar buys 1.5 CAD."
    assert [call.name for call in result.tool_calls()] == ["get_rate"]  # the repeat never ran
    retry = llm.requests[2]
    assert retry.params.grammar == react_grammar([])
    assert _gbnf_rules(react_grammar([]))["root"] == "thought? final"
    assert retry.messages[0].text == "You answer questions."  # no tools offered for the answer
    assert retry.messages[-1].text == "Observation: 1.5"


async def test_max_tool_calls_applies() -> None:
    llm = Scripted([ACTION, "Action: add\nAction Input: a=1, b=2", "Summary."])
    result = await run_react(make_agent(llm, max_tool_calls=1), QUESTION)
    assert result.outcome == "max_tool_calls"
    assert result.tool_results()[1].content == "Not executed: the run's limit of 1 tool calls is used up."


async def test_named_tool_choice_offers_only_that_tool_on_the_first_turn() -> None:
    llm = Scripted(["Action: add\nAction Input: a=1, b=2", "Final Answer: 3"])
    await run_react(make_agent(llm, tool_choice={"name": "add"}), "1+2?")
    first, second = llm.requests
    assert "- add(" in first.messages[0].text and "- get_rate(" not in first.messages[0].text
    assert "- get_rate(" in second.messages[0].text


def test_required_tool_choice_is_stated_in_the_prompt() -> None:
    prompt = react_system_prompt("", [add.spec], "required")
    assert prompt.startswith(
        "You are a helpful assistant.\n\nYou can use these tools:\n"
        "- add(a: integer, b: integer) - Add two integers."
    )
    assert prompt.endswith("Use a tool (an Action) before you give the Final Answer.")


async def test_history_is_rendered_as_chat_before_the_question() -> None:
    history = [Message.user("Hi"), Message.assistant("Hello! How can I help?")]
    llm = Scripted(["Final Answer: 1.5"])
    await run_react(make_agent(llm), QUESTION, history=history)
    assert [(m.role, m.text) for m in llm.requests[0].messages[1:]] == [
        ("user", "Hi"),
        ("assistant", "Hello! How can I help?"),
        ("user", QUESTION),
    ]


async def test_stream_emits_the_runner_events() -> None:
    llm = Scripted([ACTION, "Final Answer: 1.5"])
    events = stream_react(make_agent(llm), QUESTION)
    seen = [event async for event in events]
    kinds = [event.type for event in seen]
    assert kinds == [
        "step_started",
        "llm_response",
        "tool_call",
        "tool_result",
        "step_started",
        "agent_text_delta",
        "llm_response",
        "final_answer",
    ]
    assert isinstance(seen[2], ToolCallEvent) and seen[2].call.arguments == {"currency": "CAD"}
    assert isinstance(seen[3], ToolResultEvent) and seen[3].result.content == "1.5"
    assert isinstance(seen[-1], FinalAnswerEvent) and seen[-1].text == "1.5"
    assert events.result.final_answer == "1.5"
    assert not any(isinstance(event, ErrorEvent) for event in seen)
    assert isinstance(seen[1], LLMResponseEvent) and seen[1].completion.finish_reason == "tool_calls"


async def test_usage_comes_from_the_real_backend() -> None:
    answer = Completion(
        message=Message.assistant("Final Answer: ok"), usage=Usage(prompt_tokens=7, completion_tokens=3)
    )
    result = await run_react(make_agent(Scripted([answer])), QUESTION)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 3)


async def test_a_native_tool_call_from_the_backend_is_taken_as_is() -> None:
    llm = Scripted([ToolCall(id="call_1", name="add", arguments={"a": 2, "b": 2}), "Final Answer: 4"])
    result = await run_react(make_agent(llm), "2+2?")
    assert [r.content for r in result.tool_results()] == ["4"]


async def test_the_agent_given_is_not_changed_and_runs_are_independent() -> None:
    llm = Scripted(["Final Answer: a", "Final Answer: b"])
    agent = make_agent(llm)
    runner = ReactRunner()
    assert (await runner.run(agent, "q1")).final_answer == "a"
    assert (await runner.run(agent, "q2")).final_answer == "b"
    assert agent.llm is llm


def test_the_format_error_name_is_reserved() -> None:
    @tool(name=FORMAT_ERROR_TOOL)
    def clash() -> str:
        """Clashes."""
        return ""

    with pytest.raises(ConfigError, match="reserved by the ReAct runner"):
        ReactRunner().run_sync(make_agent(Scripted([]), tools=[clash]), QUESTION)


# ------------------------------------------------------------------------------------ parser unit


def test_parser_keeps_unreadable_arguments_for_the_executor() -> None:
    step = parse_react_reply("Action: add\nAction Input: hello world", [add.spec])
    assert (step.kind, step.action, step.arguments, step.unparsed_arguments) == (
        "action",
        "add",
        None,
        "hello world",
    )


def test_parser_types_bare_values_by_the_schema() -> None:
    @tool
    def square(x: int) -> int:
        """Square a number."""
        return x * x

    step = parse_react_reply("Action: square\nAction Input: 7", [square.spec])
    assert step.arguments == {"x": 7}
    step = parse_react_reply("Action: get_rate\nAction Input: 42", [get_rate.spec])
    assert step.arguments == {"currency": "42"}


def test_parser_never_raises_on_odd_text() -> None:
    for text in ["{", "Action:", "Action Input: {}", "```", "Final Answer", "Action: ```\n{"]:
        step = parse_react_reply(text, [add.spec])
        assert step.kind in ("action", "final", "invalid")


# ------------------------------------------------------------------- signatures, not schemas (small models)

WEATHER = ToolSpec(
    name="get_weather",
    description="Get the weather\n  for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
            "detailed": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None},
        },
        "required": ["city", "days", "tags", "where"],
        "additionalProperties": False,
    },
)


def test_tool_signature_renders_types_enums_optionals_arrays_and_objects() -> None:
    assert tool_signature(WEATHER) == (
        'get_weather(city: string, unit: "celsius" | "fahrenheit" = "celsius", days: integer, '
        "tags: string[], where: {lat?: number}, detailed: boolean | null = null) - "
        "Get the weather for a city."
    )


def test_tool_signature_resolves_refs_and_marks_optionals_without_default() -> None:
    spec = ToolSpec(
        name="paint",
        description="",
        parameters={
            "$defs": {"Color": {"enum": ["red", "blue"], "type": "string"}},
            "type": "object",
            "properties": {
                "color": {"$ref": "#/$defs/Color"},
                "shades": {"type": "array", "items": {"$ref": "#/$defs/Color"}},
                "note": {"type": "string"},
            },
            "required": ["color"],
        },
    )
    assert tool_signature(spec) == (
        'paint(color: "red" | "blue", shades: ("red" | "blue")[] (optional), note: string (optional)) '
        "- (no description)"
    )
    assert action_input_example(spec) == '{"color": "red"}'


def test_action_input_example_uses_the_tools_own_names_and_json_types() -> None:
    assert action_input_example(WEATHER) == '{"city": "<city>", "days": 0, "tags": ["<tags>"], "where": {}}'
    assert action_input_example(add.spec) == '{"a": 0, "b": 0}'
    no_required = ToolSpec(
        name="f", parameters={"type": "object", "properties": {"x": {"type": "number"}, "y": {}}}
    )
    assert action_input_example(no_required) == '{"x": 0.0}'
    assert action_input_example(ToolSpec(name="g")) == "{}"


def test_the_prompt_contains_no_json_schema_keywords() -> None:
    prompt = react_system_prompt("", [WEATHER, add.spec, get_rate.spec])
    for keyword in ("properties", "$schema", "additionalProperties", '"type"', "required"):
        assert keyword not in prompt
    # the final-answer path comes before the tool path, so small talk takes it
    assert prompt.index("Final Answer:") < prompt.index("Action:")


# ---------------------------------------------------------------------- copied wrappers and placeholders


def test_a_copied_schema_wrapper_around_values_is_unwrapped_silently() -> None:
    reply = (
        'Action: get_weather\nAction Input: {"type": "object", "properties": {"city": "Paris", "days": 2, '
        '"tags": [], "where": {"lat": 1.0}}, "required": ["city"]}'
    )
    step = parse_react_reply(reply, [WEATHER])
    assert (step.kind, step.arguments, step.note) == (
        "action",
        {"city": "Paris", "days": 2, "tags": [], "where": {"lat": 1.0}},
        None,
    )


def test_a_wrapper_with_some_schema_values_keeps_the_values_and_says_so() -> None:
    @tool
    def convert(from_currency: str, to_currency: str, amount: float) -> float:
        """Convert."""
        return amount

    reply = (
        'Action: convert\nAction Input: {"type": "object", "properties": {"from_currency": "USD", '
        '"to_currency": "CAD", "amount": {"type": "number", "description": "The amount"}}}'
    )
    step = parse_react_reply(reply, [convert.spec])
    assert step.arguments == {"from_currency": "USD", "to_currency": "CAD"}
    assert step.note == (
        "Note: the Action Input was wrapped like a schema; its values were used, but amount had a schema "
        "instead of a value and was left out."
    )


def test_a_copied_schema_without_values_is_a_format_error() -> None:
    reply = (
        'Action: get_rate\nAction Input: {"type": "object", "properties": {"currency": {"type": "string"}}}'
    )
    step = parse_react_reply(reply, [get_rate.spec])
    assert (step.kind, step.problem) == (
        "invalid",
        'the Action Input was a JSON Schema, not the arguments. Write a JSON object like {"currency": '
        '"<currency>"} with the real values from the question in place of the placeholders.',
    )


def test_wrapper_shaped_arguments_are_kept_when_they_are_the_tools_own_parameters() -> None:
    @tool
    def define(type: str, properties: dict[str, Any]) -> str:
        """Define a thing."""
        return type

    reply = 'Action: define\nAction Input: {"type": "object", "properties": {"a": 1}}'
    assert parse_react_reply(reply, [define.spec]).arguments == {"type": "object", "properties": {"a": 1}}
    # inner keys that are not the tool's parameters: not a wrapper of its arguments, left as written
    reply = 'Action: add\nAction Input: {"type": "object", "properties": {"x": 1}}'
    assert parse_react_reply(reply, [add.spec]).arguments == {"type": "object", "properties": {"x": 1}}


@pytest.mark.parametrize(
    "action_input",
    [
        '{"currency": "<currency>"}',
        "<currency>",
        '{"type": "object", "properties": {"currency": "<currency>"}}',
    ],
)
def test_a_copied_placeholder_is_a_format_error(action_input: str) -> None:
    step = parse_react_reply(f"Action: get_rate\nAction Input: {action_input}", [get_rate.spec])
    assert (step.kind, step.problem) == (
        "invalid",
        'the Action Input kept the example\'s placeholder "<currency>". Write a JSON object like '
        '{"currency": "<currency>"} with the real values from the question in place of the placeholders.',
    )


@pytest.mark.parametrize(
    "action_input",
    [
        "the tool's arguments as one JSON object",
        "the tool's JSON object, like its example above, with the real values from the question",
    ],
)
async def test_the_formats_own_text_as_action_input_becomes_a_format_observation(action_input: str) -> None:
    llm = Scripted([f"Action: add\nAction Input: {action_input}", "Final Answer: hello"])
    result = await run_react(make_agent(llm), "Say hello.")
    assert result.final_answer == "hello"
    assert [c.name for c in result.tool_calls()] == [FORMAT_ERROR_TOOL]
    assert last_user_text(llm.requests[1]).startswith(
        "Observation: Your reply could not be used: the Action Input was the format's own text. "
        'Write a JSON object like {"a": 0, "b": 0}'
    )


async def test_a_final_answer_copied_from_the_format_is_a_format_error() -> None:
    llm = Scripted(["Final Answer: Your reply to the user.", "Final Answer: Hello there!"])
    result = await run_react(make_agent(llm), "Say hello.")
    assert result.final_answer == "Hello there!"
    assert last_user_text(llm.requests[1]).startswith(
        "Observation: Your reply could not be used: the Final Answer was the format's placeholder text; "
        "write the real answer."
    )


@pytest.mark.parametrize(
    "reply",
    [
        'Thought: I need the rate.\nAction: {"currency": "CAD"}\nAction Input: {"currency": "CAD"}',
        'Thought: I need the rate.\nAction: one tool name\nAction Input: {"currency": "CAD"}',
    ],
)
def test_an_action_line_without_a_tool_name_is_read_by_the_arguments_keys(reply: str) -> None:
    step = parse_react_reply(reply, [get_rate.spec, add.spec])
    assert step.kind == "action"
    assert step.action == "get_rate"
    assert step.arguments == {"currency": "CAD"}


def test_arguments_that_fit_no_single_tool_name_none() -> None:
    step = parse_react_reply(
        'Action: one tool name\nAction Input: {"currency": "CAD"}', [get_rate.spec, get_rate.spec]
    )
    assert step.action != "get_rate"


# ------------------------------------------------------------------------------- constrained replies


def _gbnf_rules(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.strip().splitlines())


def test_the_react_grammar_names_only_offered_tools_with_their_schemas() -> None:
    import llama_cpp

    gbnf = react_grammar([get_rate.spec, add.spec])
    rules = _gbnf_rules(gbnf)
    assert rules["root"] == "thought? (action | final)"
    assert rules["action"] == (
        '"Action: " ("get_rate" "\\nAction Input: " input0 | "add" "\\nAction Input: " input1)'
    )
    assert rules["thought"] == '"Thought: " [^\\n]+ "\\n"'
    assert rules["final"] == '"Final Answer: " [^\\x00]*'
    assert '"\\"currency\\""' in rules["input0-currency-kv"]
    assert _gbnf_rules(react_grammar([add.spec], required=True))["root"] == "thought? action"
    sampler = llama_cpp.llama_sampler_init_grammar(None, gbnf.encode(), b"root")  # llama.cpp's own parser
    assert sampler
    llama_cpp.llama_sampler_free(sampler)


async def test_a_constrained_protocol_sends_the_grammar_of_the_offered_tools() -> None:
    inner = Scripted([ACTION, "Final Answer: 1.5", ACTION])
    constrained = ReactProtocolLLM(inner, constrained=True)
    tools = [get_rate.spec, add.spec]
    completion = await constrained.complete([Message.user(QUESTION)], tools, "required")
    assert completion.message.tool_calls[0].name == "get_rate"
    assert inner.requests[0].params.grammar == react_grammar(tools, required=True)
    await constrained.complete([Message.user(QUESTION)], tools, "none")  # nothing to constrain
    assert inner.requests[1].params.grammar is None
    await ReactProtocolLLM(inner).complete([Message.user(QUESTION)], tools)
    assert inner.requests[2].params.grammar is None  # a backend that does not apply grammars gets none


def test_the_protocol_constrains_by_default_where_the_backend_applies_grammars() -> None:
    engine_like = Scripted([])
    engine_like.reads_grammar = True  # what the local engine says of itself
    assert ReactProtocolLLM(engine_like).constrained is True
    assert ReactProtocolLLM(engine_like, constrained=False).constrained is False
    assert ReactProtocolLLM(Scripted([])).constrained is False
