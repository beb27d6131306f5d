"""The OpenAI-compatible LLM service on 127.0.0.1, driven by the official `openai` SDK."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import openai
import pydantic
import pytest
from fastapi import FastAPI

from fncall.errors import LLMError, LLMUnavailableError, OverloadedError
from fncall.llms.base import BaseLLM
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.errors import install_error_handlers
from fncall.server.llm_api import create_llm_app
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
    ToolChoice,
    ToolSpec,
    Usage,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PARIS_CALL = ToolCall(id="call_paris", name="get_weather", arguments={"city": "Paris", "unit": "celsius"})
OSLO_CALL = ToolCall(id="call_oslo", name="get_weather", arguments={"city": "Oslo"})


def respond(request: ScriptedRequest) -> ScriptItem:
    """What the test backend answers, chosen by the last message."""
    last = request.messages[-1]
    if last.role == "tool":
        return "It is sunny in Paris."
    prompt = last.text
    if prompt == "weather":
        return PARIS_CALL
    if prompt == "two cities":
        return [PARIS_CALL, OSLO_CALL]
    if prompt == "overload":
        raise OverloadedError("The model's queue is full.", retry_after=2.5)
    if prompt == "unreachable":
        raise LLMUnavailableError("The model server at http://10.0.0.1 cannot be reached.")
    if prompt == "broken":
        raise LLMError("The model produced garbage.")
    if prompt == "bug":
        raise RuntimeError("an unexpected bug")
    return Completion(
        message=Message.assistant("Hello from the test backend."),
        usage=Usage(prompt_tokens=11, completion_tokens=5),
    )


class FragmentingBackend(BaseLLM):
    """Answers like `respond`, but streams text word by word and arguments three characters at a time,
    and fails midway when asked to: what a real engine's stream looks like."""

    def __init__(self) -> None:
        self.model = "test-model"
        self.scripted = Scripted(respond, model="test-model")

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        return await self.scripted.complete(messages, tools, tool_choice, params)

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if messages[-1].text == "fail midway":
            yield TextDeltaEvent(text="Starting")
            raise LLMError("The engine crashed mid-generation.")
        completion = await self.complete(messages, tools, tool_choice, params)
        for word in re.findall(r"\S+\s*", completion.message.content or ""):
            yield TextDeltaEvent(text=word)
        for index, call in enumerate(completion.message.tool_calls):
            yield ToolCallStartEvent(index=index, id=call.id, name=call.name)
            arguments = call.arguments_json()
            for start in range(0, len(arguments), 3):
                yield ToolCallDeltaEvent(index=index, arguments_delta=arguments[start : start + 3])
            yield ToolCallEndEvent(index=index, call=call)
        yield FinishEvent(completion=completion)


@pytest.fixture(scope="module")
def backend() -> FragmentingBackend:
    return FragmentingBackend()


@pytest.fixture(scope="module")
def base_url(serve_app: Any, backend: FragmentingBackend) -> Iterator[str]:
    with serve_app(create_llm_app(backend, model_name="served-model")) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def async_client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ======================================================================================== non-stream


def test_plain_text_completion(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="some-other-model", messages=ask("hello"))
    assert response.model == "served-model"
    assert response.id.startswith("chatcmpl-")
    assert response.object == "chat.completion"
    choice = response.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == (
        "assistant",
        "Hello from the test backend.",
        "stop",
    )
    assert choice.message.tool_calls is None
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (
        11,
        5,
        16,
    )


def test_tool_calls_come_back_with_json_string_arguments(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="m", messages=ask("two cities"), tools=[WEATHER_TOOL])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("call_paris", "function", "get_weather"),
        ("call_oslo", "function", "get_weather"),
    ]
    assert calls[0].function.arguments == '{"city": "Paris", "unit": "celsius"}'
    assert json.loads(calls[1].function.arguments) == {"city": "Oslo"}


def test_second_turn_with_null_content_assistant_is_accepted(
    client: openai.OpenAI, backend: FragmentingBackend
) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "weather"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_paris",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_paris", "content": "sunny, 24 C"},
    ]
    response = client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER_TOOL], temperature=0.3, max_tokens=40, stop="END", seed=3
    )
    assert response.choices[0].message.content == "It is sunny in Paris."
    seen = backend.scripted.requests[-1]
    assert seen.messages[1] == Message.assistant(
        tool_calls=[ToolCall(id="call_paris", name="get_weather", arguments={"city": "Paris"})]
    )
    assert seen.messages[2] == Message(
        role="tool", content="sunny, 24 C", tool_call_id="call_paris", name="get_weather"
    )
    assert seen.tool_choice == "auto"
    assert [tool.name for tool in seen.tools] == ["get_weather"]
    assert (seen.params.temperature, seen.params.max_tokens, seen.params.stop, seen.params.seed) == (
        0.3,
        40,
        ["END"],
        3,
    )


async def test_async_client_non_stream(async_client: openai.AsyncOpenAI) -> None:
    response = await async_client.chat.completions.create(
        model="m", messages=ask("weather"), tools=[WEATHER_TOOL], tool_choice="required"
    )
    call = (response.choices[0].message.tool_calls or [])[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_paris",
        "get_weather",
        {"city": "Paris", "unit": "celsius"},
    )


# =========================================================================================== stream


async def test_streamed_tool_call_deltas_concatenate_to_the_arguments(
    async_client: openai.AsyncOpenAI,
) -> None:
    stream = await async_client.chat.completions.create(
        model="m",
        messages=ask("two cities"),
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.model for chunk in chunks} == {"served-model"}
    assert len({chunk.id for chunk in chunks}) == 1
    firsts: dict[int, Any] = {}
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if delta.index not in firsts:
                firsts[delta.index] = delta
                assert delta.function is not None and delta.function.arguments == ""
            else:
                assert delta.id is None and delta.function is not None and delta.function.name is None
            arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
    assert [(d.id, d.type, d.function.name) for d in firsts.values()] == [
        ("call_paris", "function", "get_weather"),
        ("call_oslo", "function", "get_weather"),
    ]
    assert json.loads(arguments[0]) == {"city": "Paris", "unit": "celsius"}
    assert arguments[1] == '{"city": "Oslo"}'
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "tool_calls"
    assert set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_streamed_text_with_the_sync_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=ask("hello"), stream=True)
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "Hello from the test backend."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_the_sse_wire_lines(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions", json={"model": "m", "messages": ask("hello"), "stream": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(block.startswith("data: {") for block in blocks[:-2])


def test_an_error_mid_stream_is_an_error_event_that_ends_the_stream(
    base_url: str, client: openai.OpenAI
) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions", json={"model": "m", "messages": ask("fail midway"), "stream": True}
    )
    blocks = [block for block in response.text.split("\n\n") if block]
    assert json.loads(blocks[1].removeprefix("data: "))["choices"][0]["delta"] == {"content": "Starting"}
    assert json.loads(blocks[-1].removeprefix("data: ")) == {
        "error": {
            "message": "The engine crashed mid-generation.",
            "type": "server_error",
            "param": None,
            "code": "llm_error",
        }
    }
    with pytest.raises(openai.APIError, match="crashed mid-generation"):
        list(client.chat.completions.create(model="m", messages=ask("fail midway"), stream=True))


# =========================================================================================== errors


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"n": 2}, "n"),
        ({"temperature": 7}, "temperature"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]},
            "tools[0].function.parameters",
        ),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_requests_raise_bad_request_error_naming_the_param(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    arguments: dict[str, Any] = {"model": "m", "messages": ask("hello"), **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**arguments)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


def test_a_missing_messages_field_names_it(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "m"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"model": "m", "messages": [', 400, None),
        (b"[1, 2]", 400, None),
        (b"\xff\xfe", 400, None),
    ],
)
def test_malformed_bodies_are_400_in_openai_shape(
    base_url: str, content: bytes, status: int, code: Any
) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)


def test_unknown_routes_and_methods_answer_in_openai_shape(base_url: str) -> None:
    missing = httpx.post(f"{base_url}/v1/nothing-here", json={})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "message": "Unknown URL: POST /v1/nothing-here.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }
    wrong_method = httpx.get(f"{base_url}/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("stream", [False, True])
def test_an_overloaded_backend_is_429_with_retry_after(base_url: str, stream: bool) -> None:
    response = httpx.post(
        f"{base_url}/v1/chat/completions", json={"model": "m", "messages": ask("overload"), "stream": stream}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"] == {
        "message": "The model's queue is full.",
        "type": "rate_limit_error",
        "param": None,
        "code": "overloaded",
    }


def test_the_sdk_sees_rate_limit_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=ask("overload"))


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [("unreachable", 503, "llm_unavailable"), ("broken", 502, "llm_error"), ("bug", 500, "internal_error")],
)
def test_backend_failures_map_to_5xx(base_url: str, prompt: str, status: int, code: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "m", "messages": ask(prompt)})
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", code)
    if prompt == "bug":
        assert "an unexpected bug" not in error["message"]


def test_a_body_over_the_limit_is_413(serve_app: Any) -> None:
    app = create_llm_app(Scripted(["unused"]), max_request_bytes=2000)
    body = {"model": "m", "messages": ask("x" * 5000)}
    with serve_app(app) as url:
        declared = httpx.post(f"{url}/v1/chat/completions", json=body)
        chunked = httpx.post(
            f"{url}/v1/chat/completions",
            content=iter([json.dumps(body).encode()]),
            headers={"content-type": "application/json"},
        )
        small = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": ask("hi")})
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200


# =================================================================================== other endpoints


def test_models_health_and_metrics(base_url: str, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [model.id for model in models.data] == ["served-model"]
    assert client.models.retrieve("served-model").id == "served-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok", "model": "served-model"}

    client.chat.completions.create(model="m", messages=ask("hello"))
    metrics = httpx.get(f"{base_url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'fncall_llm_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'fncall_llm_tokens_total{kind="completion"}' in text
    assert "fncall_llm_request_duration_seconds_bucket" in text


def test_errors_are_counted_in_metrics(base_url: str) -> None:
    httpx.post(f"{base_url}/v1/chat/completions", json={"model": "m", "messages": []})
    text = httpx.get(f"{base_url}/metrics").text
    assert 'fncall_llm_errors_total{endpoint="/v1/chat/completions",status="400"}' in text


def test_the_anthropic_messages_route_is_included(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/messages", json={})
    assert response.status_code != 404


# ====================================================================================== disconnects


class HangingBackend(BaseLLM):
    """Never finishes; records that its work was cancelled when the client went away."""

    model = "hanging"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        self.started.set()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("the hanging backend was not cancelled")

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        yield TextDeltaEvent(text="first words")
        self.started.set()
        try:
            await asyncio.sleep(120)
        finally:
            self.cancelled.set()
        yield TextDeltaEvent(text="never sent")


def test_a_client_that_goes_away_cancels_a_non_streamed_generation(serve_app: Any) -> None:
    backend = HangingBackend()
    with serve_app(create_llm_app(backend, disconnect_poll_s=0.05)) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{url}/v1/chat/completions", json={"messages": ask("hi")}, timeout=httpx.Timeout(5, read=0.5)
            )
        assert backend.started.is_set()
        assert backend.cancelled.wait(10)


def test_a_client_that_goes_away_cancels_a_stream(serve_app: Any) -> None:
    backend = HangingBackend()
    with serve_app(create_llm_app(backend)) as url:
        with (
            httpx.Client() as http,
            http.stream(
                "POST", f"{url}/v1/chat/completions", json={"messages": ask("hi"), "stream": True}
            ) as response,
        ):
            lines = response.iter_lines()
            received = ""
            while "first words" not in received:
                received += next(lines)
        assert backend.cancelled.wait(10)


# ============================================================================ handlers on other apps


class _EchoBody(pydantic.BaseModel):
    query: str
    limit: int = 3


def test_error_handlers_turn_fastapi_validation_into_openai_errors(serve_app: Any) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(body: _EchoBody) -> dict[str, Any]:
        return body.model_dump()

    with serve_app(app) as url:
        missing = httpx.post(f"{url}/echo", json={"limit": 1})
        wrong = httpx.post(f"{url}/echo", json={"query": "q", "limit": "many"})
        malformed = httpx.post(f"{url}/echo", content=b"{", headers={"content-type": "application/json"})
        fine = httpx.post(f"{url}/echo", json={"query": "q"})
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "query")
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "limit")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    assert fine.json() == {"query": "q", "limit": 3}
