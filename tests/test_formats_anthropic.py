"""Anthropic Messages wire format <-> canonical types: requests, responses, streams and Bedrock bodies."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fncall.errors import InvalidRequestError, LLMError
from fncall.formats.anthropic import (
    BEDROCK_ANTHROPIC_VERSION,
    MessageStreamDecoder,
    MessageStreamEncoder,
    completion_to_message,
    decode_message_stream,
    from_bedrock_body,
    from_canonical,
    message_to_completion,
    parse_request,
    sse,
    to_bedrock_body,
    to_call_id,
    to_canonical,
    to_tool_use_id,
)
from fncall.llms.base import events_from_completion
from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolSpec,
    Usage,
)

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = ToolSpec(name="get_weather", description="Weather of a city.", parameters=WEATHER_SCHEMA)
TIME = ToolSpec(name="get_time", parameters={"type": "object", "properties": {}})
PARIS = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
ROME = ToolCall(id="call_2", name="get_weather", arguments={"city": "Rome"})


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def canonical(body: dict[str, Any]) -> tuple:
    return to_canonical(parse_request(body))


# ------------------------------------------------------------------------------------- request side


def test_request_to_canonical_with_tools_and_results() -> None:
    body = request(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        tools=[{"name": "get_weather", "description": "Weather of a city.", "input_schema": WEATHER_SCHEMA}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        metadata={"user_id": "u1"},
        service_tier="auto",  # unknown to us: ignored
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C", "cache_control": {}},
                    {"type": "text", "text": "And be quick."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "no data"},
                            {"type": "text", "text": "for Rome"},
                        ],
                        "is_error": True,
                    },
                ],
            },
        ],
    )
    messages, tools, tool_choice, params = canonical(body)
    assert messages == [
        Message.system("Be brief.\nUse tools."),
        Message.user("Weather in Paris and Rome?"),
        Message.assistant("Checking.", [PARIS, ROME]),
        Message(role="tool", content="21 C", tool_call_id="call_1", name="get_weather"),
        Message(
            role="tool", content="no data\nfor Rome", tool_call_id="call_2", name="get_weather", is_error=True
        ),
        Message.user("And be quick."),
    ]
    assert tools == [WEATHER]
    assert tool_choice == "required"
    assert params == GenerationParams(
        temperature=0.2, top_p=0.9, max_tokens=64, stop=["END"], parallel_tool_calls=False
    )


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        (None, "auto", True),
        ({"type": "auto"}, "auto", True),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "none"}, "none", True),
        ({"type": "any"}, "required", True),
        ({"type": "tool", "name": "get_time"}, {"name": "get_time"}, True),
    ],
)
def test_tool_choice(choice: dict | None, expected: Any, parallel: bool) -> None:
    tools = [{"name": "get_time", "input_schema": {"type": "object"}}]
    _, _, tool_choice, params = canonical(request(tools=tools, tool_choice=choice))
    assert tool_choice == expected
    assert params.parallel_tool_calls is parallel


@pytest.mark.parametrize(
    ("fields", "param", "fragment"),
    [
        ({"messages": []}, "messages", "at least one message"),
        (
            {
                "tools": [WEATHER.model_dump(include={"name"})],
                "tool_choice": {"type": "tool", "name": "nope"},
            },
            "tools[0].input_schema",
            "field required",
        ),
        (
            {
                "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
                "tool_choice": {"type": "tool", "name": "nope"},
            },
            "tool_choice.name",
            "'nope'",
        ),
        ({"tool_choice": {"type": "any"}}, "tool_choice", "offers none"),
        ({"tool_choice": {"type": "tool", "name": "get_weather"}}, "tool_choice", "offers none"),
        (
            {"tools": [{"name": "t", "input_schema": {"type": "string"}}]},
            "tools[0].input_schema",
            '"type": "object"',
        ),
        (
            {"tools": [{"name": "t", "input_schema": {"type": "object", "properties": {"a": {"type": 5}}}}]},
            "tools[0].input_schema",
            "not a valid JSON Schema",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type", "server tool"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}],
                    }
                ]
            },
            "messages[0].content[0].tool_use_id",
            "answers no tool_use",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]},
            "messages[0].content[0]",
            "'image'",
        ),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "'user' or 'assistant'"),
    ],
)
def test_invalid_requests(fields: dict, param: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        canonical(request(**fields))
    assert caught.value.param == param
    assert fragment in caught.value.message


def test_request_body_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse_request([1, 2])


def test_tool_result_after_an_earlier_turn_is_accepted_and_lenient_inputs() -> None:
    body = request(
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "x1", "name": "get_time"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x1"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "redacted_thinking", "data": "xyz"},
                ],
            },
            {"role": "user", "content": []},
        ],
        system="",
    )
    messages, _, _, _ = canonical(body)
    assert messages == [
        Message.user("a\nb"),
        Message.assistant(tool_calls=[ToolCall(id="x1", name="get_time")]),
        Message(role="tool", content="", tool_call_id="x1", name="get_time"),
        Message(role="assistant", reasoning="hm"),
        Message.user(""),
    ]


def test_from_canonical_merges_tool_results_into_one_user_turn() -> None:
    messages = [
        Message.system("Be brief."),
        Message.user("Weather?"),
        Message.assistant(tool_calls=[PARIS, ROME]),
        Message(role="tool", content="21 C", tool_call_id="call_1", name="get_weather"),
        Message(role="tool", content="boom", tool_call_id="call_2", name="get_weather", is_error=True),
        Message.user("Thanks"),
        Message.assistant("Paris is warm."),
    ]
    params = GenerationParams(max_tokens=99, temperature=0.5, stop=["X"], parallel_tool_calls=False)
    body = from_canonical(messages, [WEATHER, TIME], "required", params, model="claude-x", stream=True)
    assert body == {
        "model": "claude-x",
        "max_tokens": 99,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
                    {"type": "text", "text": "Thanks"},
                ],
            },
            {"role": "assistant", "content": "Paris is warm."},
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather of a city.", "input_schema": WEATHER_SCHEMA},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"],
        "temperature": 0.5,
        "stream": True,
    }
    # and back: the same conversation, tools and settings
    assert canonical(body) == (messages, [WEATHER, TIME], "required", params)


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        ("auto", True, None),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", True, {"type": "none"}),
        ({"name": "get_time"}, True, {"type": "tool", "name": "get_time"}),
    ],
)
def test_from_canonical_tool_choice(choice: Any, parallel: bool, wire: dict | None) -> None:
    params = GenerationParams(parallel_tool_calls=parallel)
    body = from_canonical([Message.user("hi")], [TIME], choice, params, model="m")
    assert body.get("tool_choice") == wire
    assert body["max_tokens"] == 1024
    assert "tool_choice" not in from_canonical([Message.user("hi")], [], choice, params, model="m")


# ------------------------------------------------------------------------------------ response side


def test_completion_to_message_and_back() -> None:
    completion = Completion(
        message=Message.assistant("Let me check.", [PARIS]),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=12, completion_tokens=7),
        model="m",
    )
    body = completion_to_message(completion, model="m", message_id="msg_1")
    assert body == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }
    assert message_to_completion(body) == completion
    sdk_message = anthropic.types.Message.model_validate(body)
    assert message_to_completion(sdk_message) == completion


@pytest.mark.parametrize(
    ("finish", "stop_sequence", "reason"),
    [
        ("stop", None, "end_turn"),
        ("stop", "END", "stop_sequence"),
        ("length", None, "max_tokens"),
        ("tool_calls", None, "tool_use"),
        ("content_filter", None, "refusal"),
    ],
)
def test_stop_reasons(finish: str, stop_sequence: str | None, reason: str) -> None:
    completion = Completion(message=Message.assistant("x"), finish_reason=finish)  # type: ignore[arg-type]
    body = completion_to_message(completion, model="m", message_id="msg_1", stop_sequence=stop_sequence)
    assert (body["stop_reason"], body["stop_sequence"]) == (reason, stop_sequence)
    expected_back = "stop" if finish == "stop" else finish
    assert message_to_completion(body).finish_reason == expected_back


def test_tool_call_ids_are_stable() -> None:
    assert to_tool_use_id("call_abc") == "toolu_abc"
    assert to_call_id("toolu_abc") == "call_abc"
    assert to_tool_use_id("custom-id") == to_call_id("custom-id") == "custom-id"


# ------------------------------------------------------------------------------------------ streams


def test_encoder_output_for_text_then_call() -> None:
    completion = Completion(
        message=Message.assistant("Hi", [PARIS]),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=5, completion_tokens=3),
    )
    encoder = MessageStreamEncoder(model="m", message_id="msg_1")
    out = [wire for event in events_from_completion(completion) for wire in encoder.encode(event)]
    assert out == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 3, "input_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    assert encoder.encode(FinishEvent(completion=completion)) == []  # finished once
    assert sse(out[-1]) == 'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_encoder_completes_what_a_backend_only_put_in_its_finish_event() -> None:
    completion = Completion(message=Message.assistant("Hello", [PARIS, ROME]), finish_reason="tool_calls")
    encoder = MessageStreamEncoder(model="m", message_id="msg_1")
    wire = encoder.encode(FinishEvent(completion=completion))
    assert [e["type"] for e in wire] == [
        "message_start",
        *["content_block_start", "content_block_delta", "content_block_stop"] * 3,
        "message_delta",
        "message_stop",
    ]
    assert message_of(decode_message_stream(wire)) == completion.message


def test_encoder_sends_the_parsed_input_when_argument_text_is_not_an_object() -> None:
    call = ToolCall(id="call_9", name="get_time", unparsed_arguments="oops")
    encoder = MessageStreamEncoder(model="m", message_id="msg_1")
    events = [
        ToolCallStartEvent(index=0, id="call_9", name="get_time"),
        ToolCallDeltaEvent(index=0, arguments_delta="oops"),
        ToolCallEndEvent(index=0, call=call),
    ]
    wire = [w for event in events for w in encoder.encode(event)]
    deltas = [w["delta"]["partial_json"] for w in wire if w["type"] == "content_block_delta"]
    assert deltas == ["{}"]


def message_of(events: list) -> Message:
    assert isinstance(events[-1], FinishEvent)
    return events[-1].completion.message


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
_calls = st.lists(
    st.builds(
        lambda suffix, name, arguments: ToolCall(id=f"call_{suffix}", name=name, arguments=arguments),
        st.text("abcdef0123456789", min_size=4, max_size=8),
        st.sampled_from(["get_weather", "get_time", "search"]),
        st.dictionaries(st.text(max_size=6), _json_values, max_size=3),
    ),
    max_size=3,
)


@given(
    text=st.none() | st.text(min_size=1, max_size=30),
    calls=_calls,
    chunk=st.integers(1, 7),
    usage=st.tuples(st.integers(0, 500), st.integers(0, 500)),
)
def test_stream_encoder_output_decodes_to_the_completion(
    text: str | None, calls: list[ToolCall], chunk: int, usage: tuple[int, int]
) -> None:
    """Chunked text and argument deltas, encoded then decoded, give back the same completion; and the
    partial_json of each tool_use block concatenates to its input."""
    completion = Completion(
        message=Message.assistant(text, calls),
        finish_reason="tool_calls" if calls else "stop",
        usage=Usage(prompt_tokens=usage[0], completion_tokens=usage[1]),
        model="m",
    )
    events: list = [TextDeltaEvent(text=text[i : i + chunk]) for i in range(0, len(text or ""), chunk)]
    for index, call in enumerate(calls):
        raw = call.arguments_json()
        events.append(ToolCallStartEvent(index=index, id=call.id, name=call.name))
        events += [
            ToolCallDeltaEvent(index=index, arguments_delta=raw[i : i + chunk])
            for i in range(0, len(raw), chunk)
        ]
        events.append(ToolCallEndEvent(index=index, call=call))
    events.append(FinishEvent(completion=completion))

    encoder = MessageStreamEncoder(model="m", message_id="msg_1")
    wire = [json.loads(json.dumps(w)) for event in events for w in encoder.encode(event)]
    decoded = decode_message_stream(wire)
    assert decoded[-1] == FinishEvent(completion=completion)
    tool_blocks = [
        w["index"]
        for w in wire
        if w["type"] == "content_block_start" and w["content_block"]["type"] == "tool_use"
    ]
    assert len(tool_blocks) == len(calls)
    for block_index, call in zip(tool_blocks, calls, strict=True):
        partial = "".join(
            w["delta"]["partial_json"]
            for w in wire
            if w["type"] == "content_block_delta" and w["index"] == block_index
        )
        assert json.loads(partial) == call.arguments
    # the non-stream body of the same completion round-trips too
    assert message_to_completion(completion_to_message(completion, model="m", message_id="x")) == completion


def test_decoder_reads_sdk_event_objects_and_initial_input() -> None:
    start = anthropic.types.RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [],
                "usage": {"input_tokens": 9, "output_tokens": 0},
            },
        }
    )
    events = [
        start,
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_7",
                "name": "get_time",
                "input": {"tz": "UTC"},
            },
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    decoded = decode_message_stream(events)
    assert decoded[:2] == [
        ToolCallStartEvent(index=0, id="call_7", name="get_time"),
        ToolCallEndEvent(index=0, call=ToolCall(id="call_7", name="get_time", arguments={"tz": "UTC"})),
    ]
    assert decoded[2] == FinishEvent(
        completion=Completion(
            message=Message.assistant(
                tool_calls=[ToolCall(id="call_7", name="get_time", arguments={"tz": "UTC"})]
            ),
            finish_reason="tool_calls",
            usage=Usage(prompt_tokens=9, completion_tokens=4),
            model="claude-x",
        )
    )


def test_decoder_raises_on_error_events() -> None:
    decoder = MessageStreamDecoder()
    with pytest.raises(LLMError, match="overloaded_error"):
        decoder.feed({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


# -------------------------------------------------------------------------------------------- Bedrock


def test_bedrock_body_round_trip() -> None:
    messages = [
        Message.system("Be brief."),
        Message.user("Weather?"),
        Message.assistant(tool_calls=[PARIS]),
        Message(role="tool", content="21 C", tool_call_id="call_1", name="get_weather"),
    ]
    params = GenerationParams(max_tokens=300, temperature=0.0)
    body = to_bedrock_body(messages, [WEATHER], {"name": "get_weather"}, params)
    assert body["anthropic_version"] == BEDROCK_ANTHROPIC_VERSION == "bedrock-2023-05-31"
    assert "model" not in body
    assert "stream" not in body
    assert body["max_tokens"] == 300
    assert body["system"] == "Be brief."
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert from_bedrock_body(body) == (messages, [WEATHER], {"name": "get_weather"}, params)


def test_bedrock_body_needs_its_version() -> None:
    body = to_bedrock_body([Message.user("hi")])
    del body["anthropic_version"]
    with pytest.raises(InvalidRequestError) as caught:
        from_bedrock_body(body)
    assert caught.value.param == "anthropic_version"
