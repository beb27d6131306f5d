"""Raw model outputs of each family, replayed through the chat-format parsers and the HTTP API: what an
`openai` SDK client receives for a given text, whole and streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from fncall.llms.replay import Replay
from fncall.server.llm_api import create_llm_app

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
NOTE = {
    "type": "function",
    "function": {
        "name": "save_note",
        "description": "Save a note.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def replay_client(serve_app) -> Iterator:
    """`replay_client(outputs, **options)` -> an openai client whose server replays `outputs` twice over:
    once for the non-streamed request, once for the streamed one."""

    def make(text: str, **options: object) -> openai.OpenAI:
        stack.append(serve_app(create_llm_app(Replay([text, text], **options), model_name="replay")))
        base_url = stack[-1].__enter__()
        return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)

    stack: list = []
    yield make
    for server in reversed(stack):
        server.__exit__(None, None, None)


def _both(client: openai.OpenAI, tools: list[dict]) -> tuple:
    """The non-streamed reply, and the streamed one folded into (content, [(id, name, arguments)], finish)."""
    whole = client.chat.completions.create(model="m", messages=MESSAGES, tools=tools)
    content, calls, finish = "", {}, None
    for chunk in client.chat.completions.create(model="m", messages=MESSAGES, tools=tools, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": tc.id, "name": tc.function.name, "arguments": ""})
            entry["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    streamed = (
        content or None,
        [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())],
        finish,
    )
    return whole.choices[0], streamed


def _calls(choice) -> list[tuple[str, dict]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]


def test_hermes_tags_with_text_before(replay_client) -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    whole, (content, calls, finish) = _both(replay_client(text), [WEATHER])
    assert whole.message.content == "Let me check."
    assert _calls(whole) == [("get_weather", {"city": "Paris"})]
    assert whole.finish_reason == "tool_calls" and finish == "tool_calls"
    assert content == "Let me check."
    assert [(name, json.loads(args)) for _, name, args in calls] == [("get_weather", {"city": "Paris"})]


def test_qwen_fenced_json_is_a_call(replay_client) -> None:
    text = '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    whole, (content, calls, _) = _both(replay_client(text), [WEATHER])
    assert _calls(whole) == [("get_weather", {"city": "Oslo"})]
    assert not whole.message.content and content is None
    assert json.loads(calls[0][2]) == {"city": "Oslo"}


def test_several_calls_keep_their_order_and_indexes(replay_client) -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "save_note", "arguments": {"text": "umbrella"}}\n</tool_call>'
    )
    whole, (_, calls, _) = _both(replay_client(text), [WEATHER, NOTE])
    assert _calls(whole) == [("get_weather", {"city": "Rome"}), ("save_note", {"text": "umbrella"})]
    assert [name for _, name, _ in calls] == ["get_weather", "save_note"]
    assert len({call_id for call_id, _, _ in calls}) == 2


def test_braces_quotes_and_closing_tags_inside_strings(replay_client) -> None:
    note = 'a } { "quoted" </tool_call> \\ done'
    text = "<tool_call>\n" + json.dumps({"name": "save_note", "arguments": {"text": note}}) + "\n</tool_call>"
    whole, (_, calls, _) = _both(replay_client(text, chunk_chars=1), [NOTE])
    assert _calls(whole) == [("save_note", {"text": note})]
    assert json.loads(calls[0][2]) == {"text": note}


def test_mistral_tool_calls(replay_client) -> None:
    text = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Lima"}}]'
    whole, _ = _both(replay_client(text, chat_format="mistral"), [WEATHER])
    assert _calls(whole) == [("get_weather", {"city": "Lima"})]


def test_llama3_python_tag(replay_client) -> None:
    text = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Kyiv"}}'
    whole, _ = _both(replay_client(text, chat_format="llama3"), [WEATHER])
    assert _calls(whole) == [("get_weather", {"city": "Kyiv"})]


def test_a_call_cut_off_by_max_tokens_is_reported_not_dropped(replay_client) -> None:
    text = '<tool_call>\n{"name": "save_note", "arguments": {"text": "unfinish'
    whole, (_, calls, finish) = _both(replay_client(text, truncated=True), [NOTE])
    assert whole.finish_reason == "length" and finish == "length"
    assert [c.function.name for c in whole.message.tool_calls] == ["save_note"]
    assert whole.message.tool_calls[0].function.arguments == '{"text": "unfinish'
    assert calls[0][1] == "save_note"


def test_json_naming_an_unknown_tool_stays_text(replay_client) -> None:
    text = 'Here is an example: ```json\n{"name": "launch_rocket", "arguments": {}}\n```'
    whole, (content, calls, finish) = _both(replay_client(text), [WEATHER])
    assert not whole.message.tool_calls and calls == []
    assert "launch_rocket" in whole.message.content and "launch_rocket" in content
    assert whole.finish_reason == "stop" and finish == "stop"
