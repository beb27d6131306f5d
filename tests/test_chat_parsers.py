"""Edge cases of the tool-call parsers: forms models really write, cut-off calls, non-calls, linear cost."""

from __future__ import annotations

import json

import pytest

from fncall.formats.chat import CallScanner, ParsedOutput, StreamParser, get_format
from fncall.types import (
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolSpec,
)

TOOLS = [ToolSpec(name="get_weather"), ToolSpec(name="convert_currency")]
HERMES = get_format("hermes")
LLAMA3 = get_format("llama3")
MISTRAL = get_format("mistral")
GENERIC = get_format("generic")


def _calls(parsed: ParsedOutput) -> list[tuple[str, dict]]:
    return [(call.name, call.arguments) for call in parsed.tool_calls]


def _feed_chars(parser: StreamParser, text: str) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for char in text:
        events += parser.feed(char)
    return events + parser.finish()


# ------------------------------------------------------------------------------------ hermes forms


def test_several_tagged_calls_with_text_around() -> None:
    text = (
        "Let me check both.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "convert_currency", "arguments": {"amount": 42, "to": "CAD"}}\n</tool_call>\n'
        "One moment."
    )
    parsed = HERMES.parse(text, TOOLS)
    assert _calls(parsed) == [
        ("get_weather", {"city": "Paris"}),
        ("convert_currency", {"amount": 42, "to": "CAD"}),
    ]
    assert parsed.content == "Let me check both.\nOne moment."
    assert parsed.truncated is False
    assert len({call.id for call in parsed.tool_calls}) == 2
    assert all(call.id.startswith("call_") for call in parsed.tool_calls)


def test_qwen_json_fence_is_a_call() -> None:
    text = (
        '```json\n{"name": "convert_currency", "arguments": {"amount": 42, "from": "USD", "to": "CAD"}}\n```'
    )
    parsed = HERMES.parse(text, TOOLS)
    assert _calls(parsed) == [("convert_currency", {"amount": 42, "from": "USD", "to": "CAD"})]
    assert parsed.content is None


def test_qwen_plain_fence_and_bare_object_and_parameters_key() -> None:
    plain = HERMES.parse('```\n{"name": "get_weather", "parameters": {"city": "Oslo"}}\n```', TOOLS)
    bare = HERMES.parse('{"name": "get_weather", "arguments": {"city": "Oslo"}}', TOOLS)
    assert _calls(plain) == _calls(bare) == [("get_weather", {"city": "Oslo"})]


def test_strings_with_braces_quotes_and_closing_tags_stay_inside_arguments() -> None:
    arguments = {"q": 'a "quoted" </tool_call> {x} ``` \\ [TOOL_CALLS]', "n": [1, {"k": "}"}]}
    text = f'<tool_call>\n{{"name": "get_weather", "arguments": {json.dumps(arguments)}}}\n</tool_call>'
    assert _calls(HERMES.parse(text, TOOLS)) == [("get_weather", arguments)]


def test_unknown_name_in_tags_is_kept_as_a_call() -> None:
    parsed = HERMES.parse('<tool_call>{"name": "launch_rocket", "arguments": {}}</tool_call>', TOOLS)
    assert _calls(parsed) == [("launch_rocket", {})]


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"name": "launch_rocket", "arguments": {"name": "get_weather"}}\n```',
        'A schema looks like {"type": "object", "properties": {"name": {"type": "string"}}} here.',
        'Write {"name": "Bob", "age": 3} to save a person.',
        "Use {curly braces} and {{doubled}} ones; a lone } too.",
        "```python\nprint({'name': 'get_weather'})\n```",
        "Code: ```\nx = 1\n``` done ```",
        '{"arguments": {"city": "Paris"}}',
    ],
)
def test_json_that_is_not_an_offered_call_stays_content_unchanged(text: str) -> None:
    parsed = HERMES.parse(text, TOOLS)
    assert parsed.tool_calls == []
    assert parsed.content == text.strip()
    assert parsed.truncated is False


def test_missing_closing_tag_still_gives_the_call() -> None:
    parsed = HERMES.parse('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}', TOOLS)
    assert _calls(parsed) == [("get_weather", {"city": "Rome"})]
    assert parsed.truncated is False


def test_missing_final_brace_before_closing_tag_keeps_arguments_and_drops_the_tag() -> None:
    parsed = HERMES.parse(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}\n</tool_call> ok', TOOLS
    )
    assert _calls(parsed) == [("get_weather", {"city": "Rome"})]
    assert parsed.content == "ok"


def test_double_encoded_arguments_are_decoded_once() -> None:
    parser = HERMES.stream_parser(TOOLS)
    events = _feed_chars(parser, '{"name": "get_weather", "arguments": "{\\"city\\": \\"Lima\\"}"}')
    deltas = [event.arguments_delta for event in events if isinstance(event, ToolCallDeltaEvent)]
    end = next(event for event in events if isinstance(event, ToolCallEndEvent))
    assert deltas == ['{"city": "Lima"}']
    assert end.call.arguments == {"city": "Lima"}


def test_invalid_arguments_are_kept_unparsed_not_dropped() -> None:
    parsed = HERMES.parse(
        '<tool_call>{"name": "get_weather", "arguments": {"city": Paris}}</tool_call>', TOOLS
    )
    assert parsed.tool_calls[0].name == "get_weather"
    assert parsed.tool_calls[0].unparsed_arguments == '{"city": Paris}'


def test_call_without_arguments_gets_an_empty_object() -> None:
    parser = HERMES.stream_parser(TOOLS)
    events = parser.feed('<tool_call>{"name": "get_weather"}</tool_call>') + parser.finish()
    assert [type(event) for event in events] == [ToolCallStartEvent, ToolCallDeltaEvent, ToolCallEndEvent]
    assert events[1].arguments_delta == "{}"
    assert events[2].call.arguments == {}


# ------------------------------------------------------------------------------------- truncation


def test_call_cut_inside_arguments_is_reported_with_unparsed_arguments() -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par'
    parsed = HERMES.parse(text, TOOLS, truncated=True)
    assert parsed.truncated is True
    assert [(call.name, call.unparsed_arguments) for call in parsed.tool_calls] == [
        ("get_weather", '{"city": "Par')
    ]
    parser = HERMES.stream_parser(TOOLS)
    events = _feed_chars(parser, text)
    end = [event for event in events if isinstance(event, ToolCallEndEvent)]
    deltas = "".join(event.arguments_delta for event in events if isinstance(event, ToolCallDeltaEvent))
    assert parser.truncated is True
    assert end[0].call.unparsed_arguments == deltas == '{"city": "Par'


def test_call_cut_before_its_arguments_is_reported_truncated() -> None:
    parsed = HERMES.parse('<tool_call>\n{"name": "get_weather", "argu', TOOLS)
    assert parsed.truncated is True
    assert [(call.name, call.unparsed_arguments) for call in parsed.tool_calls] == [("get_weather", "")]


def test_call_cut_inside_its_name_comes_back_as_text_marked_truncated() -> None:
    parsed = HERMES.parse('Sure <tool_call>\n{"name": "get_wea', TOOLS)
    assert parsed.tool_calls == []
    assert parsed.truncated is True
    assert parsed.content == 'Sure <tool_call>\n{"name": "get_wea'


def test_bare_candidate_cut_by_max_tokens_is_marked_truncated_only_when_told() -> None:
    assert HERMES.parse('{"name": "get_wea', TOOLS, truncated=True).truncated is True
    assert HERMES.parse('{"name": "get_wea', TOOLS).truncated is False


# --------------------------------------------------------------------------------------- streaming


def test_tags_split_at_every_position_give_the_same_result() -> None:
    text = 'Hi <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call> bye'
    for cut in range(1, len(text)):
        parser = HERMES.stream_parser(TOOLS)
        events = parser.feed(text[:cut]) + parser.feed(text[cut:]) + parser.finish()
        calls = [event.call for event in events if isinstance(event, ToolCallEndEvent)]
        assert [(call.name, call.arguments) for call in calls] == [("get_weather", {"city": "Oslo"})]
        assert "".join(event.text for event in events if isinstance(event, TextDeltaEvent)) == "Hi bye"


def test_start_event_comes_as_soon_as_the_name_is_known_and_arguments_stream() -> None:
    parser = HERMES.stream_parser(TOOLS)
    assert parser.feed('<tool_call>\n{"name": "get_wea') == []
    assert parser.in_call is True
    started = parser.feed('ther"')
    assert [type(event) for event in started] == [ToolCallStartEvent]
    assert (started[0].index, started[0].name) == (0, "get_weather")
    assert parser.feed(', "arguments": {"ci') == [ToolCallDeltaEvent(index=0, arguments_delta='{"ci')]
    assert parser.feed('ty": "Oslo"}') == [ToolCallDeltaEvent(index=0, arguments_delta='ty": "Oslo"}')]
    ended = parser.feed("}\n</tool_call>")
    assert [type(event) for event in ended] == [ToolCallEndEvent]
    assert ended[0].call.id == started[0].id
    assert parser.in_call is False


def test_arguments_before_name_are_buffered_until_the_name_arrives() -> None:
    parser = HERMES.stream_parser(TOOLS)
    assert parser.feed('{"arguments": {"city": "Oslo"}, ') == []
    events = parser.feed('"name": "get_weather"}')
    assert events[0] == ToolCallStartEvent(index=0, id=events[0].id, name="get_weather")
    assert events[1] == ToolCallDeltaEvent(index=0, arguments_delta='{"city": "Oslo"}')
    assert isinstance(events[2], ToolCallEndEvent)


def test_text_that_might_start_a_trigger_is_held_back_then_released() -> None:
    parser = HERMES.stream_parser(TOOLS)
    assert parser.feed("a <tool_") == [TextDeltaEvent(text="a")]
    released = parser.feed("box> b")
    assert "".join(event.text for event in released if isinstance(event, TextDeltaEvent)) == " <tool_box> b"
    assert parser.feed("<thi") == []
    assert parser.finish() == [TextDeltaEvent(text="<thi")]


def test_reasoning_goes_to_reasoning_and_can_start_open() -> None:
    parsed = HERMES.parse("<think>\nThe user wants weather.\n</think>\n\nChecking.", TOOLS)
    assert parsed.reasoning == "The user wants weather."
    assert parsed.content == "Checking."
    opened = HERMES.parse(
        'Need a call.</think>{"name": "get_weather", "arguments": {}}', TOOLS, reasoning_open=True
    )
    assert opened.reasoning == "Need a call."
    assert _calls(opened) == [("get_weather", {})]
    parser = HERMES.stream_parser(TOOLS)
    events = _feed_chars(parser, "<think>a</thin</think>b")
    reasoning = "".join(event.text for event in events if isinstance(event, ReasoningDeltaEvent))
    assert reasoning == "a</thin"
    assert events[-1] == TextDeltaEvent(text="b")


@pytest.mark.parametrize("chat_format", [HERMES, LLAMA3, MISTRAL], ids=lambda f: f.name)
def test_cost_is_linear_when_a_64kb_argument_arrives_one_character_at_a_time(chat_format) -> None:
    value = ('ab{"}\\\\ </tool_call> [TOOL_CALLS] <|python_tag|> ' * 2000)[:65536]
    arguments = json.dumps({"text": value})
    text = {
        "hermes": f'<tool_call>\n{{"name": "get_weather", "arguments": {arguments}}}\n</tool_call>',
        "llama3": f'{{"parameters": {arguments}, "name": "get_weather"}}',  # buffered until the name
        "mistral": f"[TOOL_CALLS]get_weather[ARGS]{arguments}",
    }[chat_format.name]
    parser = chat_format.stream_parser(TOOLS)
    assert isinstance(parser, CallScanner)
    events = _feed_chars(parser, text)
    deltas = [event for event in events if isinstance(event, ToolCallDeltaEvent)]
    end = [event for event in events if isinstance(event, ToolCallEndEvent)]
    assert end[0].call.arguments == {"text": value}
    assert "".join(delta.arguments_delta for delta in deltas) == arguments
    # each character is examined a bounded number of times: no re-scan of what came before
    assert parser.steps <= 3 * len(text)


@pytest.mark.parametrize("chat_format", [HERMES, LLAMA3, MISTRAL], ids=lambda f: f.name)
def test_cost_is_linear_for_text_full_of_almost_triggers(chat_format) -> None:
    text = "<tool_cal [TOOL_CALL <|python {x ``` " * 2000
    parser = chat_format.stream_parser(TOOLS)
    events = _feed_chars(parser, text)
    assert "".join(event.text for event in events if isinstance(event, TextDeltaEvent)) == text.strip()
    assert isinstance(parser, CallScanner)
    assert parser.steps <= 4 * len(
        text
    )  # held-back tails are re-read, but never more than a trigger's length


# -------------------------------------------------------------------------------- other families


def test_llama3_python_tag_and_semicolon_separated_calls() -> None:
    text = (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
        '{"name": "launch_rocket", "parameters": {}}'
    )
    assert _calls(LLAMA3.parse(text, TOOLS)) == [("get_weather", {"city": "Oslo"}), ("launch_rocket", {})]


def test_llama3_bare_reply_counts_only_for_offered_tools() -> None:
    assert _calls(LLAMA3.parse('{"name": "get_weather", "parameters": {"city": "Oslo"}}', TOOLS)) == [
        ("get_weather", {"city": "Oslo"})
    ]
    unknown = '{"name": "launch_rocket", "parameters": {}}'
    parsed = LLAMA3.parse(unknown, TOOLS)
    assert parsed.tool_calls == [] and parsed.content == unknown


def test_llama3_builtin_python_call_stays_text() -> None:
    parsed = LLAMA3.parse('<|python_tag|>brave_search.call(query="x")', TOOLS)
    assert parsed.tool_calls == []
    assert parsed.content == '<|python_tag|>brave_search.call(query="x")'


def test_mistral_list_form_and_name_args_form() -> None:
    listed = MISTRAL.parse(
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
        '{"name": "x", "arguments": {}}]',
        TOOLS,
    )
    assert _calls(listed) == [("get_weather", {"city": "Oslo"}), ("x", {})]
    named = MISTRAL.parse(
        'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]x[CALL_ID]a1b2c3d4e[ARGS]{}', TOOLS
    )
    assert _calls(named) == [("get_weather", {"city": "Oslo"}), ("x", {})]
    assert named.content == "Sure."


def test_mistral_prefix_cut_off_is_truncated_text() -> None:
    parsed = MISTRAL.parse("[TOOL_CALLS]get_wea", TOOLS)
    assert parsed.tool_calls == [] and parsed.truncated is True
    assert parsed.content == "[TOOL_CALLS]get_wea"


def test_generic_parses_its_own_syntax_and_lenient_forms() -> None:
    parsed = GENERIC.parse(
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
        '```json\n{"name": "convert_currency", "arguments": {"amount": 1}}\n```',
        TOOLS,
    )
    assert _calls(parsed) == [("get_weather", {"city": "Oslo"}), ("convert_currency", {"amount": 1})]


# --------------------------------------------------------------------------- names and layouts


def test_get_format_names_aliases_and_error() -> None:
    assert [get_format(name).name for name in ("hermes", "LLAMA3", "mistral", "generic", "qwen")] == [
        "hermes",
        "llama3",
        "mistral",
        "generic",
        "hermes",
    ]
    with pytest.raises(ValueError, match="hermes, llama3, mistral, generic"):
        get_format("gemma")


def test_hermes_triggers_cover_what_qwen_writes() -> None:
    assert {"<tool_call>", "```json", "```\n{", "{"} <= set(HERMES.triggers)
    assert MISTRAL.triggers == ("[TOOL_CALLS]",)
    assert "<|python_tag|>" in LLAMA3.triggers


def test_call_layouts() -> None:
    hermes = HERMES.call_layout()
    assert (hermes.prefix, hermes.suffix, hermes.arguments_key) == (
        "<tool_call>\n",
        "\n</tool_call>",
        "arguments",
    )
    llama = LLAMA3.call_layout()
    assert (llama.arguments_key, llama.key_order) == ("parameters", ("name", "parameters"))
    mistral = MISTRAL.call_layout()
    assert (mistral.prefix, mistral.suffix, mistral.separator) == ("[TOOL_CALLS][", "]", ", ")


def test_fenced_list_of_calls() -> None:
    text = (
        '```json\n[{"name": "get_weather", "arguments": {"city": "A"}}, '
        '{"name": "get_weather", "arguments": {}}]\n```'
    )
    parsed = HERMES.parse(text, TOOLS)
    assert _calls(parsed) == [("get_weather", {"city": "A"}), ("get_weather", {})]
    assert parsed.content is None


def test_mistral_reasoning_block() -> None:
    parsed = MISTRAL.parse('[THINK]Weather needed.[/THINK][TOOL_CALLS]get_weather[ARGS]{"city": "A"}', TOOLS)
    assert parsed.reasoning == "Weather needed."
    assert _calls(parsed) == [("get_weather", {"city": "A"})]
