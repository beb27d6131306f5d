"""The OpenAI wire format: requests and responses both ways, streaming chunks both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fncall.errors import InvalidRequestError, LLMError
from fncall.formats.openai import (
    ChatCompletionRequest,
    ChunkDecoder,
    ChunkEncoder,
    completion_to_response,
    from_canonical,
    response_to_completion,
    to_canonical,
)
from fncall.llms.base import events_from_completion
from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolResult,
    ToolSpec,
    Usage,
)

CONVERT = ToolSpec(
    name="convert_currency",
    description="Convert an amount between currencies.",
    parameters={
        "type": "object",
        "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
        "required": ["amount", "from", "to"],
    },
)
WEATHER = ToolSpec(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
CALL_A = ToolCall(id="call_a", name="convert_currency", arguments={"amount": 42, "from": "USD", "to": "CAD"})
CALL_B = ToolCall(id="call_b", name="get_weather", arguments={"city": "Paris"})


def parse(body: dict[str, Any]) -> tuple[list[Message], list[ToolSpec], Any, GenerationParams]:
    return to_canonical(ChatCompletionRequest.model_validate(body))


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def tool_body(name: str = "get_weather", parameters: Any = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


# ============================================================================================ requests


def test_request_round_trip_through_the_wire() -> None:
    messages = [
        Message.system("You convert currencies."),
        Message.user("42 USD to CAD, and the weather in Paris?"),
        Message.assistant(tool_calls=[CALL_A, CALL_B]),
        Message.tool(ToolResult(call_id="call_a", name="convert_currency", content="57.12")),
        Message.tool(ToolResult(call_id="call_b", name="get_weather", content="sunny")),
        Message.assistant("42 USD is 57.12 CAD; Paris is sunny."),
    ]
    params = GenerationParams(
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
        stop=["\n\n"],
        seed=7,
        parallel_tool_calls=False,
        grammar='root ::= "yes"',
    )
    body = from_canonical(messages, [CONVERT, WEATHER], {"name": "get_weather"}, params, "qwen")
    assert body["grammar"] == 'root ::= "yes"'  # llama.cpp's field, which fncall's server reads too

    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {
                    "name": "convert_currency",
                    "arguments": '{"amount": 42, "from": "USD", "to": "CAD"}',
                },
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
        ],
    }
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_a", "content": "57.12"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert (body["model"], body["max_tokens"], body["stop"], body["seed"]) == ("qwen", 64, ["\n\n"], 7)

    back_messages, back_tools, back_choice, back_params = parse(json.loads(json.dumps(body)))
    assert back_messages == messages
    assert back_tools == [CONVERT, WEATHER]
    assert back_choice == {"name": "get_weather"}
    assert back_params == params


def test_from_canonical_without_tools_sends_no_tool_fields() -> None:
    body = from_canonical([Message.user("hi")], [], "auto", None, "m")
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_from_canonical_can_name_the_token_limit_max_completion_tokens() -> None:
    body = from_canonical(
        [Message.user("hi")],
        [],
        "auto",
        GenerationParams(max_tokens=5),
        "m",
        max_tokens_field="max_completion_tokens",
    )
    assert body["max_completion_tokens"] == 5
    assert "max_tokens" not in body


def test_unparsable_arguments_survive_the_round_trip() -> None:
    broken = ToolCall(id="call_x", name="get_weather", unparsed_arguments='{"city": "Par')
    body = from_canonical(
        [Message.user("hi"), Message.assistant(tool_calls=[broken])], [WEATHER], "auto", None, "m"
    )
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Par'
    assert parse(body)[0][1].tool_calls == [broken]


def test_langchain_style_assistant_with_null_content_and_named_tool_messages() -> None:
    messages, _, _, _ = parse(
        {
            "model": "x",
            "messages": [
                user("weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "rain"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "sun"}]},
            ],
            "tools": [tool_body()],
        }
    )
    assert messages[1] == Message.assistant(
        tool_calls=[ToolCall(id="c1", name="get_weather"), ToolCall(id="c2", name="get_weather")]
    )
    assert messages[2] == Message(role="tool", content="rain", tool_call_id="c1", name="get_weather")
    assert messages[3] == Message(role="tool", content="sun", tool_call_id="c2", name="get_weather")


def test_text_parts_are_joined_and_developer_is_system() -> None:
    messages, _, _, _ = parse(
        {
            "messages": [
                {
                    "role": "developer",
                    "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
                },
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ]
        }
    )
    assert messages == [Message.system("Be brief."), Message.user("ab")]


def test_unknown_fields_are_ignored() -> None:
    messages, _, _, params = parse(
        {
            "model": "x",
            "messages": [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
            "logprobs": True,
            "chat_template_kwargs": {"enable_thinking": False},
            "stop": "END",
            "max_tokens": 10,
            "max_completion_tokens": 20,
        }
    )
    assert messages == [Message.user("hi")]
    assert params.stop == ["END"]
    assert params.max_tokens == 20


def test_arguments_sent_as_an_object_are_accepted() -> None:
    messages, _, _, _ = parse(
        {
            "messages": [
                user(),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
                    ],
                },
            ]
        }
    )
    assert messages[1].tool_calls == [ToolCall(id="c", name="get_weather", arguments={"city": "Oslo"})]


def test_a_tool_result_answering_no_earlier_call_is_accepted() -> None:
    messages, _, _, _ = parse(
        {"messages": [user(), {"role": "tool", "tool_call_id": "ghost", "content": "1"}]}
    )
    assert messages[1] == Message(role="tool", content="1", tool_call_id="ghost")


def test_legacy_functions_and_function_call_are_mapped() -> None:
    messages, tools, choice, _ = parse(
        {
            "messages": [
                user("weather in Rome?"),
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
                {"role": "function", "name": "get_weather", "content": "warm"},
            ],
            "functions": [{"name": "get_weather", "parameters": WEATHER.parameters}],
            "function_call": {"name": "get_weather"},
        }
    )
    assert tools == [WEATHER]
    assert choice == {"name": "get_weather"}
    call = messages[1].tool_calls[0]
    assert (call.name, call.arguments) == ("get_weather", {"city": "Rome"})
    assert messages[2] == Message(role="tool", content="warm", tool_call_id=call.id, name="get_weather")


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "get_weather"}}, {"name": "get_weather"}),
        (None, "auto"),
    ],
)
def test_tool_choice_forms(tool_choice: Any, expected: Any) -> None:
    body: dict[str, Any] = {"messages": [user()], "tools": [tool_body()]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    assert parse(body)[2] == expected


def test_a_tool_without_parameters_gets_an_empty_object_schema() -> None:
    _, tools, _, _ = parse({"messages": [user()], "tools": [tool_body("ping")]})
    assert tools == [ToolSpec(name="ping", parameters={"type": "object", "properties": {}})]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [user()], "n": 2}, "n"),
        (
            {
                "messages": [user()],
                "tools": [tool_body()],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
        ({"messages": [user()], "tool_choice": "required"}, "tool_choice"),
        (
            {"messages": [user()], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            "tool_choice",
        ),
        (
            {"messages": [user()], "functions": [{"name": "f"}], "function_call": {"name": "g"}},
            "function_call",
        ),
        (
            {
                "messages": [user()],
                "tools": [tool_body(parameters={"type": "object", "properties": {"a": {"type": "strin"}}})],
            },
            "tools[0].function.parameters",
        ),
        ({"messages": [user()], "tools": [tool_body(), tool_body()]}, "tools[1].function.name"),
        ({"messages": [user(), {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}],
                    }
                ]
            },
            "messages[0].content[1].type",
        ),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
    ],
)
def test_invalid_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse(body)
    assert caught.value.param == param
    assert caught.value.message


# =========================================================================================== responses


def test_completion_to_response_is_a_chat_completion_object() -> None:
    completion = Completion(
        message=Message.assistant(tool_calls=[CALL_B]),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=9, completion_tokens=4),
    )
    response = completion_to_response(completion, model="served", request_id="chatcmpl-1", created=123)
    assert response == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 123,
        "model": "served",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }


@pytest.mark.parametrize(
    "completion",
    [
        Completion(
            message=Message.assistant("Hello."), usage=Usage(prompt_tokens=3, completion_tokens=2), model="m"
        ),
        Completion(message=Message.assistant("cut"), finish_reason="length", model="m"),
        Completion(
            message=Message.assistant("Let me check.", [CALL_A, CALL_B]),
            finish_reason="tool_calls",
            model="m",
        ),
        Completion(
            message=Message(role="assistant", content="42", reasoning="thinking..."),
            model="m",
            usage=Usage(prompt_tokens=1),
        ),
    ],
)
def test_response_round_trip(completion: Completion) -> None:
    response = completion_to_response(completion, model="m", request_id="chatcmpl-x", created=1)
    assert response_to_completion(response) == completion
    assert response_to_completion(ChatCompletion.model_validate(response)) == completion


@pytest.mark.parametrize(
    ("wire_reason", "with_call", "expected"),
    [
        ("stop", True, "tool_calls"),
        ("function_call", True, "tool_calls"),
        ("eos", False, "stop"),
        (None, False, "stop"),
        ("length", True, "length"),
    ],
)
def test_finish_reasons_of_other_servers_are_normalised(
    wire_reason: Any, with_call: bool, expected: str
) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "x"}
    if with_call:
        message["tool_calls"] = [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]
    completion = response_to_completion({"choices": [{"message": message, "finish_reason": wire_reason}]})
    assert completion.finish_reason == expected


def test_a_response_without_choices_is_an_llm_error() -> None:
    with pytest.raises(LLMError, match="no choices"):
        response_to_completion({"id": "x", "choices": []})


# ============================================================================================ streaming


def encode_all(events: list[StreamEvent], include_usage: bool = False) -> list[dict]:
    encoder = ChunkEncoder("served", "chatcmpl-s", 5, include_usage=include_usage)
    return [chunk for event in events for chunk in encoder.encode(event)]


def decode_all(chunks: list[Any]) -> tuple[list[StreamEvent], Completion]:
    decoder = ChunkDecoder()
    events = [event for chunk in chunks for event in decoder.decode(chunk)]
    events += decoder.finish()
    assert isinstance(events[-1], FinishEvent)
    return events, events[-1].completion


def streamed_call_events(fragments: list[str], call: ToolCall = CALL_A) -> list[StreamEvent]:
    completion = Completion(
        message=Message.assistant(tool_calls=[call]),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=5, completion_tokens=7),
    )
    return [
        ToolCallStartEvent(index=0, id=call.id, name=call.name),
        *[ToolCallDeltaEvent(index=0, arguments_delta=f) for f in fragments],
        ToolCallEndEvent(index=0, call=call),
        FinishEvent(completion=completion),
    ]


def test_chunk_encoder_streams_a_tool_call_like_openai() -> None:
    arguments = CALL_A.arguments_json()
    chunks = encode_all(streamed_call_events([arguments[:10], arguments[10:]]), include_usage=True)
    deltas = [chunk["choices"][0]["delta"] if chunk["choices"] else None for chunk in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "convert_currency", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:10]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[10:]}}]},
        {},
        None,
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1]] == [None] * 4 + ["tool_calls"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert chunks[-1]["choices"] == []
    assert {(chunk["id"], chunk["object"], chunk["model"], chunk["created"]) for chunk in chunks} == {
        ("chatcmpl-s", "chat.completion.chunk", "served", 5)
    }


def test_chunk_encoder_without_usage_sends_no_usage_field() -> None:
    chunks = encode_all(events_from_completion(Completion(message=Message.assistant("hi"))))
    assert all("usage" not in chunk for chunk in chunks)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "hi"},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chunk_encoder_sends_what_only_the_finish_event_holds() -> None:
    completion = Completion(message=Message.assistant("Checking.", [CALL_B]), finish_reason="tool_calls")
    chunks = encode_all([FinishEvent(completion=completion)])
    _, decoded = decode_all(chunks)
    assert decoded.message == completion.message
    assert decoded.finish_reason == "tool_calls"


def test_chunk_encoder_completes_arguments_the_deltas_left_unfinished() -> None:
    arguments = CALL_A.arguments_json()
    chunks = encode_all(streamed_call_events([arguments[:-1]]))
    fragments = [
        call["function"]["arguments"]
        for chunk in chunks
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert "".join(fragments) == arguments


@pytest.mark.parametrize(
    "completion",
    [
        Completion(
            message=Message.assistant("Hello there."), usage=Usage(prompt_tokens=4, completion_tokens=2)
        ),
        Completion(
            message=Message.assistant("Two calls.", [CALL_A, CALL_B]),
            finish_reason="tool_calls",
            usage=Usage(completion_tokens=9),
        ),
        Completion(message=Message.assistant("cut off"), finish_reason="length"),
        Completion(message=Message(role="assistant", content="x", reasoning="hmm")),
    ],
)
def test_encoder_output_decodes_to_the_same_completion(completion: Completion) -> None:
    events, decoded = decode_all(encode_all(events_from_completion(completion), include_usage=True))
    assert decoded.model_copy(update={"model": None}) == completion
    assert decoded.model == "served"
    ends = [event.call for event in events if isinstance(event, ToolCallEndEvent)]
    assert ends == completion.message.tool_calls


@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8), text=st.text(max_size=30))
def test_any_fragmentation_of_arguments_concatenates_to_the_final_json(cuts: list[int], text: str) -> None:
    call = ToolCall(id="call_h", name="note", arguments={"text": text, "n": [1, 2, {"k": None}]})
    arguments = call.arguments_json()
    points = sorted({min(cut, len(arguments)) for cut in cuts})
    fragments = [arguments[a:b] for a, b in zip([0, *points], [*points, len(arguments)], strict=True)]
    chunks = encode_all(streamed_call_events(fragments, call))
    wire_fragments = [
        call_delta["function"]["arguments"]
        for chunk in chunks
        for call_delta in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert "".join(wire_fragments) == arguments
    _, decoded = decode_all(chunks)
    assert decoded.message.tool_calls == [call]


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "model": "srv",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def test_decoder_accepts_name_and_whole_arguments_in_one_delta() -> None:
    events, completion = decode_all(
        [
            chunk({"role": "assistant"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ]
                }
            ),
            chunk({}, "tool_calls", usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
        ]
    )
    assert [type(e).__name__ for e in events] == [
        "ToolCallStartEvent",
        "ToolCallDeltaEvent",
        "ToolCallEndEvent",
        "FinishEvent",
    ]
    assert completion == Completion(
        message=Message.assistant(
            tool_calls=[ToolCall(id="c1", name="get_weather", arguments={"city": "Oslo"})]
        ),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=3, completion_tokens=4),
        model="srv",
    )


def test_decoder_splits_calls_that_reuse_index_zero_and_reads_object_arguments() -> None:
    _, completion = decode_all(
        [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "function": {"name": "get_weather", "arguments": {"city": "A"}},
                        }
                    ]
                }
            ),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c2",
                            "function": {"name": "get_weather", "arguments": {"city": "B"}},
                        }
                    ]
                }
            ),
            chunk({}, "stop"),
        ]
    )
    assert completion.message.tool_calls == [
        ToolCall(id="c1", name="get_weather", arguments={"city": "A"}),
        ToolCall(id="c2", name="get_weather", arguments={"city": "B"}),
    ]
    assert completion.finish_reason == "tool_calls"


def test_decoder_handles_missing_index_and_arguments_before_the_name() -> None:
    _, completion = decode_all(
        [
            chunk({"content": "Sure. "}),
            chunk({"tool_calls": [{"id": "c9", "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"function": {"name": "get_weather", "arguments": ' "Rome"}'}}]}),
        ]
    )
    assert completion.message.content == "Sure. "
    assert completion.message.tool_calls == [
        ToolCall(id="c9", name="get_weather", arguments={"city": "Rome"})
    ]


def test_decoder_reads_sdk_chunk_objects_and_reports_mid_stream_errors() -> None:
    sdk_chunk = ChatCompletionChunk.model_validate(
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
        }
    )
    decoder = ChunkDecoder()
    assert decoder.decode(sdk_chunk) == [TextDeltaEvent(text="hi")]
    with pytest.raises(LLMError, match="out of memory"):
        decoder.decode({"error": {"message": "out of memory"}})
