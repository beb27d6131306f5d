"""OpenAICompatible against a real OpenAI-compatible server: ours, on 127.0.0.1, over a scripted backend."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from fncall.errors import LLMError, LLMUnavailableError, OverloadedError
from fncall.llms.base import collect_stream
from fncall.llms.openai_compat import PLACEHOLDER_API_KEY, OpenAICompatible
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.llm_api import create_llm_app
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

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALLS = [
    ToolCall(id="call_1", name="get_weather", arguments={"city": "Lima"}),
    ToolCall(id="call_2", name="get_weather", arguments={"city": "Quito"}),
]
_failures_left = {"flaky": 0}


def respond(request: ScriptedRequest) -> ScriptItem:
    prompt = request.messages[-1].text
    if prompt == "two calls":
        return Completion(
            message=Message.assistant(tool_calls=CALLS),
            finish_reason="tool_calls",
            usage=Usage(prompt_tokens=30, completion_tokens=12),
        )
    if prompt == "overload":
        raise OverloadedError("Queue full.", retry_after=3)
    if prompt == "flaky" and _failures_left["flaky"] > 0:
        _failures_left["flaky"] -= 1
        raise LLMUnavailableError("Warming up.")
    return Completion(
        message=Message.assistant("Hola, mundo."), usage=Usage(prompt_tokens=7, completion_tokens=4)
    )


@pytest.fixture(scope="module")
def scripted() -> Scripted:
    return Scripted(respond, model="upstream")


@pytest.fixture(scope="module")
def server_url(serve_app: Any, scripted: Scripted) -> Iterator[str]:
    with serve_app(create_llm_app(scripted, model_name="served")) as url:
        yield f"{url}/v1"


@pytest.fixture
async def llm(server_url: str) -> AsyncIterator[OpenAICompatible]:
    backend = OpenAICompatible(server_url, "served", max_retries=0, timeout_s=10)
    yield backend
    await backend.aclose()


def ask(text: str) -> list[Message]:
    return [Message.system("Be brief."), Message.user(text)]


async def test_complete_text(llm: OpenAICompatible) -> None:
    completion = await llm.complete(ask("hello"))
    assert completion == Completion(
        message=Message.assistant("Hola, mundo."),
        finish_reason="stop",
        usage=Usage(prompt_tokens=7, completion_tokens=4),
        model="served",
    )


async def test_complete_tool_calls_and_what_the_server_received(
    llm: OpenAICompatible, scripted: Scripted
) -> None:
    params = GenerationParams(
        temperature=0.1, max_tokens=50, stop=["###"], seed=1, parallel_tool_calls=False, constrained=True
    )
    completion = await llm.complete(ask("two calls"), [WEATHER], {"name": "get_weather"}, params)
    assert completion.message.tool_calls == CALLS
    assert completion.finish_reason == "tool_calls"
    seen = scripted.requests[-1]
    assert seen.messages == ask("two calls")
    assert seen.tools == [WEATHER]
    assert seen.tool_choice == {"name": "get_weather"}
    assert seen.params == params


async def test_stream_text_ends_with_the_assembled_completion_and_usage(llm: OpenAICompatible) -> None:
    events = [event async for event in llm.stream(ask("hello"))]
    assert [e.text for e in events if isinstance(e, TextDeltaEvent)] == ["Hola, mundo."]
    assert isinstance(events[-1], FinishEvent)
    assert events[-1].completion == await llm.complete(ask("hello"))


async def test_stream_tool_calls(llm: OpenAICompatible) -> None:
    events = [event async for event in llm.stream(ask("two calls"), [WEATHER])]
    starts = [(e.index, e.id, e.name) for e in events if isinstance(e, ToolCallStartEvent)]
    assert starts == [(0, "call_1", "get_weather"), (1, "call_2", "get_weather")]
    fragments = "".join(
        e.arguments_delta for e in events if isinstance(e, ToolCallDeltaEvent) and e.index == 1
    )
    assert fragments == '{"city": "Quito"}'
    assert [e.call for e in events if isinstance(e, ToolCallEndEvent)] == CALLS
    finish = events[-1]
    assert isinstance(finish, FinishEvent)
    assert finish.completion.message.tool_calls == CALLS
    assert finish.completion.finish_reason == "tool_calls"
    assert finish.completion.usage == Usage(prompt_tokens=30, completion_tokens=12)
    assert await collect_stream(llm.stream(ask("two calls"), [WEATHER])) == finish.completion


async def test_an_unreachable_server_raises_llm_unavailable_naming_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAICompatible(url, "m", max_retries=0, timeout_s=5)
    with pytest.raises(LLMUnavailableError, match=f"http://127.0.0.1:{port}/v1"):
        await backend.complete(ask("hello"))
    with pytest.raises(LLMUnavailableError, match=str(port)):
        await collect_stream(backend.stream(ask("hello")))
    await backend.aclose()


async def test_a_429_becomes_overloaded_error_with_retry_after(llm: OpenAICompatible) -> None:
    with pytest.raises(OverloadedError, match="Queue full") as caught:
        await llm.complete(ask("overload"))
    assert caught.value.retry_after == 3
    with pytest.raises(OverloadedError):
        await collect_stream(llm.stream(ask("overload")))


async def test_a_rejected_request_is_an_llm_error_with_the_server_message(llm: OpenAICompatible) -> None:
    with pytest.raises(LLMError, match=r"answered 400: tool_choice names tool 'get_time'") as caught:
        await llm.complete(ask("hello"), [WEATHER], {"name": "get_time"})
    assert not isinstance(caught.value, LLMUnavailableError | OverloadedError)


async def test_5xx_answers_are_retried(server_url: str) -> None:
    _failures_left["flaky"] = 1
    backend = OpenAICompatible(server_url, "served", max_retries=1, timeout_s=10)
    completion = await backend.complete(ask("flaky"))
    await backend.aclose()
    assert completion.message.content == "Hola, mundo."
    assert _failures_left["flaky"] == 0


def test_api_key_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert OpenAICompatible("http://127.0.0.1:1/v1", "m")._client.api_key == PLACEHOLDER_API_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAICompatible("http://127.0.0.1:1/v1", "m")._client.api_key == "sk-from-env"
    assert OpenAICompatible("http://127.0.0.1:1/v1", "m", "sk-given")._client.api_key == "sk-given"


def test_a_given_http_client_is_the_one_the_sdk_uses() -> None:
    given = openai.DefaultAsyncHttpxClient()
    llm = OpenAICompatible("http://127.0.0.1:1/v1", "m", http_client=given)
    assert llm._client._client is given
