"""Property tests: calls written in a family's syntax parse back exactly, whole or in any chunking."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fncall.formats.chat import CallScanner, ChatFormat, get_format
from fncall.types import (
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolSpec,
)

TOOL_NAMES = ["get_weather", "convert_currency", "search_web", "noop"]
TOOLS = [ToolSpec(name=name) for name in TOOL_NAMES]

_TRICKY = [
    "</tool_call>",
    "<tool_call>",
    "```",
    "```json\n{",
    '{"name": "get_weather", "arguments": {}}',
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|python_tag|>",
    "</think>",
    '\\"}',
    "}}]]",
    "é漢字🙂",
    "\u2028",
    "",
]
_string_values = st.one_of(
    st.text(alphabet=st.sampled_from(list('{}[]"\\:,;`<>/ |abcxyz\n\té漢🙂')), max_size=24),
    st.sampled_from(_TRICKY),
    st.text(max_size=8),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    _string_values,
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_string_values, children, max_size=3),
    max_leaves=8,
)
_arguments = st.dictionaries(_string_values, _json_values, max_size=4)
_calls = st.lists(st.tuples(st.sampled_from(TOOL_NAMES), _arguments), min_size=1, max_size=3)
# free text that contains no call syntax of any family
_free_text = st.text(
    alphabet=st.sampled_from(list("abcdefghij XYZ0123456789.!?'-()\né漢🙂")),
    max_size=40,
)


@dataclass
class Rendered:
    text: str
    arguments_texts: list[str]  # the raw arguments JSON of each call, as written


def _object(name: str, arguments_text: str, *, arguments_key: str, name_first: bool) -> str:
    name_part = f'"name": {json.dumps(name)}'
    arguments_part = f'"{arguments_key}": {arguments_text}'
    parts = [name_part, arguments_part] if name_first else [arguments_part, name_part]
    return "{" + ", ".join(parts) + "}"


@st.composite
def hermes_calls(draw: st.DrawFn, calls: list[tuple[str, dict[str, Any]]]) -> Rendered:
    """Tags, ```json fences, plain fences and bare objects: what Hermes and Qwen models write."""
    pieces, raws = [], []
    for name, arguments in calls:
        raw = json.dumps(arguments, ensure_ascii=draw(st.booleans()))
        key = draw(st.sampled_from(["arguments", "parameters"]))
        obj = _object(name, raw, arguments_key=key, name_first=draw(st.booleans()))
        form = draw(st.sampled_from(["tag", "tag_compact", "fence_json", "fence_plain", "bare"]))
        pieces.append(
            {
                "tag": f"<tool_call>\n{obj}\n</tool_call>",
                "tag_compact": f"<tool_call>{obj}</tool_call>",
                "fence_json": f"```json\n{obj}\n```",
                "fence_plain": f"```\n{obj}\n```",
                "bare": obj,
            }[form]
        )
        raws.append(raw)
    return Rendered("\n".join(pieces), raws)


@st.composite
def llama3_calls(draw: st.DrawFn, calls: list[tuple[str, dict[str, Any]]]) -> Rendered:
    objects, raws = [], []
    for name, arguments in calls:
        raw = json.dumps(arguments, ensure_ascii=draw(st.booleans()))
        key = draw(st.sampled_from(["parameters", "arguments"]))
        objects.append(_object(name, raw, arguments_key=key, name_first=draw(st.booleans())))
        raws.append(raw)
    separator = draw(st.sampled_from(["; ", ";", "\n", ";\n"]))
    prefix = draw(st.sampled_from(["", "<|python_tag|>"]))
    return Rendered(prefix + separator.join(objects), raws)


@st.composite
def mistral_calls(draw: st.DrawFn, calls: list[tuple[str, dict[str, Any]]]) -> Rendered:
    raws = [json.dumps(arguments, ensure_ascii=draw(st.booleans())) for _, arguments in calls]
    if draw(st.booleans()):
        objects = [
            _object(name, raw, arguments_key="arguments", name_first=draw(st.booleans()))
            for (name, _), raw in zip(calls, raws, strict=True)
        ]
        return Rendered("[TOOL_CALLS][" + ", ".join(objects) + "]", raws)
    text = "".join(f"[TOOL_CALLS]{name}[ARGS]{raw}" for (name, _), raw in zip(calls, raws, strict=True))
    return Rendered(text, raws)


_RENDERERS = {
    "hermes": hermes_calls,
    "generic": hermes_calls,
    "llama3": llama3_calls,
    "mistral": mistral_calls,
}


def _stream(chat_format: ChatFormat, text: str, cuts: Sequence[int]) -> tuple[list[StreamEvent], CallScanner]:
    parser = chat_format.stream_parser(TOOLS)
    events: list[StreamEvent] = []
    bounds = [0, *sorted(set(cuts)), len(text)]
    for start, end in itertools.pairwise(bounds):
        events += parser.feed(text[start:end])
    events += parser.finish()
    assert isinstance(parser, CallScanner)
    return events, parser


def _check_stream(events: list[StreamEvent], expected: list[ToolCall], raws: list[str]) -> str:
    """Checks the call events of a stream against the expected calls; returns the streamed text."""
    started: dict[int, str] = {}
    deltas: dict[int, list[str]] = {}
    ended: dict[int, ToolCall] = {}
    for event in events:
        if isinstance(event, ToolCallStartEvent):
            assert event.index not in started and event.index == len(started)
            started[event.index] = event.name
            deltas[event.index] = []
        elif isinstance(event, ToolCallDeltaEvent):
            assert event.index in started and event.index not in ended
            deltas[event.index].append(event.arguments_delta)
        elif isinstance(event, ToolCallEndEvent):
            assert event.index in started and event.index not in ended
            ended[event.index] = event.call
    assert sorted(ended) == list(range(len(expected)))
    for index, call in enumerate(expected):
        assert started[index] == call.name
        assert ended[index].name == call.name
        assert ended[index].arguments == call.arguments
        assert ended[index].unparsed_arguments is None
        assert "".join(deltas[index]) == raws[index]
        assert json.loads("".join(deltas[index])) == call.arguments
    return "".join(event.text for event in events if isinstance(event, TextDeltaEvent))


@pytest.mark.parametrize("family", ["hermes", "generic", "llama3", "mistral"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), calls=_calls, before=_free_text, after=_free_text)
def test_calls_parse_back_whole_and_in_any_chunking(
    family: str, data: st.DataObject, calls: list[tuple[str, dict[str, Any]]], before: str, after: str
) -> None:
    chat_format = get_format(family)
    rendered = data.draw(_RENDERERS[family](calls))
    if family == "llama3" and before.strip():
        before = before + "\n"  # Llama writes its JSON on a line of its own
    text = f"{before}\n{rendered.text}\n{after}"
    expected = [ToolCall(name=name, arguments=arguments) for name, arguments in calls]

    parsed = chat_format.parse(text, TOOLS)
    assert [(call.name, call.arguments) for call in parsed.tool_calls] == [
        (call.name, call.arguments) for call in expected
    ]
    assert all(call.unparsed_arguments is None for call in parsed.tool_calls)
    assert (parsed.content or "").split() == f"{before} {after}".split()
    assert parsed.truncated is False and parsed.reasoning is None

    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=30))
    events, parser = _stream(chat_format, text, cuts)
    streamed_text = _check_stream(events, expected, rendered.arguments_texts)
    assert streamed_text == (parsed.content or "")
    assert parser.truncated is False


@pytest.mark.parametrize("family", ["hermes", "generic", "llama3", "mistral"])
@settings(max_examples=60, deadline=None)
@given(calls=_calls)
def test_call_layout_output_parses_back(family: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """What a grammar built from call_layout() produces is what the parser reads."""
    chat_format = get_format(family)
    tool_calls = [ToolCall(name=name, arguments=arguments) for name, arguments in calls]
    text = chat_format.call_layout().render_calls(tool_calls)
    parsed = chat_format.parse(text, TOOLS)
    assert [(call.name, call.arguments) for call in parsed.tool_calls] == [
        (call.name, call.arguments) for call in tool_calls
    ]
    assert parsed.content is None


@settings(max_examples=80, deadline=None)
@given(data=st.data(), reasoning=_free_text, calls=_calls, answer=_free_text)
def test_reasoning_then_calls_in_any_chunking(
    data: st.DataObject, reasoning: str, calls: list[tuple[str, dict[str, Any]]], answer: str
) -> None:
    chat_format = get_format("hermes")
    rendered = data.draw(hermes_calls(calls))
    text = f"<think>{reasoning}</think>\n{answer}\n{rendered.text}"
    parsed = chat_format.parse(text, TOOLS)
    assert parsed.reasoning == (reasoning.strip() or None)
    assert (parsed.content or "") == answer.strip()
    assert [call.name for call in parsed.tool_calls] == [name for name, _ in calls]

    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=30))
    events, _ = _stream(chat_format, text, cuts)
    expected = [ToolCall(name=name, arguments=arguments) for name, arguments in calls]
    assert _check_stream(events, expected, rendered.arguments_texts) == answer.strip()
    streamed_reasoning = "".join(event.text for event in events if isinstance(event, ReasoningDeltaEvent))
    assert streamed_reasoning == reasoning.strip()


_any_text = st.lists(
    st.sampled_from(
        [
            *'{}[]"\\:,; `<>/|abn\n',
            *("<tool_call>", "</tool_call>", "```json\n", "[TOOL_CALLS]", "[ARGS]", "<think>", "</think>"),
            *("<|python_tag|>", '{"name": "noop", ', '"arguments": ', '"get_weather"'),
        ]
    ),
    max_size=40,
).map("".join)


@pytest.mark.parametrize("family", ["hermes", "llama3", "mistral"])
@settings(max_examples=200, deadline=None)
@given(data=st.data(), text=_any_text)
def test_arbitrary_text_streams_like_it_parses(family: str, data: st.DataObject, text: str) -> None:
    """Whatever the model writes, chunking never changes the outcome."""
    chat_format = get_format(family)
    parsed = chat_format.parse(text, TOOLS)
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=40))
    events, parser = _stream(chat_format, text, cuts)
    streamed_calls = [event.call for event in events if isinstance(event, ToolCallEndEvent)]
    assert [(c.name, c.arguments, c.unparsed_arguments) for c in streamed_calls] == [
        (c.name, c.arguments, c.unparsed_arguments) for c in parsed.tool_calls
    ]
    streamed_text = "".join(event.text for event in events if isinstance(event, TextDeltaEvent))
    assert streamed_text == (parsed.content or "")
    assert parser.truncated == parsed.truncated
