"""`POST /v1/messages` served on 127.0.0.1 and driven by the official `anthropic` SDK."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import anthropic
import httpx
import pytest
from fastapi import FastAPI

from fncall.errors import LLMError, LLMUnavailableError, OverloadedError
from fncall.llms.base import BaseLLM
from fncall.llms.scripted import Scripted
from fncall.server.anthropic_api import anthropic_router
from fncall.server.threaded import serve_in_thread
from fncall.types import (
    GenerationParams,
    Message,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolChoice,
    ToolSpec,
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}
WEATHER_CALL = ToolCall(id="call_abc123", name="get_weather", arguments={"city": "Paris", "unit": "c"})


def app_for(llm: object, model_name: str = "fncall-test") -> FastAPI:
    app = FastAPI()
    app.include_router(anthropic_router(llm, model_name))  # type: ignore[arg-type]
    return app


@pytest.fixture
def scripted() -> Scripted:
    return Scripted([WEATHER_CALL, "It is 21 degrees in Paris."])


@pytest.fixture
def base_url(scripted: Scripted) -> Iterator[str]:
    with serve_in_thread(app_for(scripted)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0)


Anthropic = anthropic.Anthropic


def test_tool_use_round_with_the_sdk(client: Anthropic, scripted: Scripted) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model="fncall-test", max_tokens=100, system="Be brief.", messages=[question], tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    assert first.model == "fncall-test"
    assert first.id.startswith("msg_")
    [block] = first.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (
        "toolu_abc123",
        "get_weather",
        {"city": "Paris", "unit": "c"},
    )

    result = {"type": "tool_result", "tool_use_id": block.id, "content": "21 C"}
    second = client.messages.create(
        model="fncall-test",
        max_tokens=100,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [result]},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in second.content] == [("text", "It is 21 degrees in Paris.")]
    assert second.usage.output_tokens == 6

    asked = scripted.requests[1]
    assert [m.role for m in asked.messages] == ["user", "assistant", "tool"]
    assert asked.messages[1].tool_calls == [WEATHER_CALL]
    assert (asked.messages[2].tool_call_id, asked.messages[2].name, asked.messages[2].content) == (
        "call_abc123",
        "get_weather",
        "21 C",
    )
    assert scripted.requests[0].messages[0] == Message.system("Be brief.")
    assert scripted.requests[0].params.max_tokens == 100


def test_stream_with_the_sdk_helper(client: Anthropic) -> None:
    with client.messages.stream(
        model="fncall-test",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = "".join(
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == {"city": "Paris", "unit": "c"}
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.id, b.input) for b in final.content] == [
        ("tool_use", "toolu_abc123", {"city": "Paris", "unit": "c"})
    ]


def test_raw_stream_event_order(base_url: str) -> None:
    body = {
        "model": "m",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL],
    }
    with httpx.stream("POST", f"{base_url}/v1/messages", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert [line.removeprefix("event: ") for line in lines] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_async_client_streams_text(base_url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0)
    await client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "go"}])
    async with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "and now?"}]
    ) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "It is 21 degrees in Paris."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6
    await client.close()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "tool", "name": "nope"},
            },
            "'nope'",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                    }
                ],
            },
            "toolu_x",
        ),
    ],
)
def test_bad_requests_raise_the_sdks_bad_request_error(client: Anthropic, body: dict, fragment: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body=body, cast_to=object)
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert fragment in caught.value.body["error"]["message"]


def test_bad_request_body_shape(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/messages", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "the request body is not valid JSON"},
    }
    response = httpx.post(
        f"{base_url}/v1/messages", json={"model": "m", "max_tokens": "many", "messages": []}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("max_tokens: ")


class _Failing(BaseLLM):
    """A backend that fails with a given error, before or after its first event."""

    model = "failing"

    def __init__(self, error: Exception, *, after_first_event: bool = False) -> None:
        self.error = error
        self.after_first_event = after_first_event

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self.after_first_event:
            yield TextDeltaEvent(text="partial ")
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (OverloadedError("queue full", retry_after=3), 429, "overloaded_error"),
        (LLMUnavailableError("engine down"), 503, "api_error"),
        (LLMError("engine broke"), 502, "api_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_backend_errors_map_to_status(error: LLMError, status: int, error_type: str, stream: bool) -> None:
    body = {"model": "m", "max_tokens": 5, "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    with serve_in_thread(app_for(_Failing(error))) as url:
        response = httpx.post(f"{url}/v1/messages", json=body)
    assert response.status_code == status
    assert response.json() == {"type": "error", "error": {"type": error_type, "message": str(error)}}
    assert response.headers.get("retry-after") == ("3" if status == 429 else None)


def test_error_inside_a_stream_is_an_error_event() -> None:
    body = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with serve_in_thread(app_for(_Failing(LLMError("engine broke"), after_first_event=True))) as url:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as caught:
            list(client.messages.create(**body))
        with httpx.stream("POST", f"{url}/v1/messages", json=body) as response:
            text = response.read().decode()
    assert "engine broke" in str(caught.value)
    assert text.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"engine broke"}}\n\n'
    )
    assert "event: message_stop" not in text


class _Endless(BaseLLM):
    """Streams text until closed; records that it was closed."""

    model = "endless"

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.sent = 0

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        try:
            while True:
                self.sent += 1
                yield TextDeltaEvent(text="word ")
                await asyncio.sleep(0.01)
        finally:
            self.closed.set()


def test_client_disconnect_stops_the_backend_stream() -> None:
    backend = _Endless()
    body = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with serve_in_thread(app_for(backend)) as url:
        with httpx.stream("POST", f"{url}/v1/messages", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("event: content_block_delta"):
                    break
        assert backend.closed.wait(timeout=30), "the backend stream was not closed after the client left"
