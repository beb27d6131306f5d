"""AnthropicLLM against fncall's own `/v1/messages` on 127.0.0.1 (and a fake Bedrock InvokeModel route)."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fncall.errors import ConfigError, LLMError, LLMUnavailableError, OverloadedError
from fncall.formats.anthropic import BEDROCK_ANTHROPIC_VERSION, completion_to_message, from_bedrock_body
from fncall.llms.anthropic import AnthropicLLM, bedrock_from_spec, from_spec
from fncall.llms.base import LLM, BaseLLM, collect_stream
from fncall.llms.scripted import Scripted
from fncall.server.anthropic_api import anthropic_router
from fncall.server.threaded import serve_in_thread
from fncall.types import (
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

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather of a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PARIS = ToolCall(id="call_p1", name="get_weather", arguments={"city": "Paris", "days": [1, 2]})
QUESTION = [Message.system("Be brief."), Message.user("Weather in Paris?")]


def messages_app(llm: LLM) -> FastAPI:
    app = FastAPI()
    app.include_router(anthropic_router(llm, "served-model"))
    return app


@pytest.fixture
def scripted() -> Scripted:
    return Scripted([PARIS, "Sunny, 24 C.", PARIS, "Sunny, 24 C."])


@pytest.fixture
def llm(scripted: Scripted) -> Iterator[AnthropicLLM]:
    with serve_in_thread(messages_app(scripted)) as url:
        yield from_spec(f"{url}#served-model")


def test_implements_the_llm_protocol() -> None:
    assert isinstance(AnthropicLLM("claude-x", api_key="k"), LLM)


async def test_complete_through_our_own_server(llm: AnthropicLLM, scripted: Scripted) -> None:
    params = GenerationParams(max_tokens=77, temperature=0.3, stop=["END"], parallel_tool_calls=False)
    first = await llm.complete(QUESTION, [WEATHER], "required", params)
    assert first.message.tool_calls == [PARIS]
    assert first.finish_reason == "tool_calls"
    assert first.model == "served-model"

    asked = scripted.requests[0]
    assert asked.messages == QUESTION
    assert asked.tools == [WEATHER]
    assert asked.tool_choice == "required"
    assert asked.params == params

    result = Message(role="tool", content="24 C", tool_call_id=PARIS.id, name="get_weather")
    second = await llm.complete([*QUESTION, first.message, result], [WEATHER])
    assert second.message == Message.assistant("Sunny, 24 C.")
    assert second.finish_reason == "stop"
    assert second.usage.completion_tokens == 3
    assert scripted.requests[1].messages[-2:] == [first.message, result]
    assert scripted.requests[1].params.max_tokens == 1024  # the backend's default limit


async def test_stream_through_our_own_server(llm: AnthropicLLM) -> None:
    events = [event async for event in llm.stream(QUESTION, [WEATHER])]
    assert events[0] == ToolCallStartEvent(index=0, id="call_p1", name="get_weather")
    arguments = "".join(e.arguments_delta for e in events if isinstance(e, ToolCallDeltaEvent))
    assert arguments == PARIS.arguments_json()
    assert [e for e in events if isinstance(e, ToolCallEndEvent)] == [ToolCallEndEvent(index=0, call=PARIS)]
    assert isinstance(events[-1], FinishEvent)
    assert events[-1].completion.message.tool_calls == [PARIS]
    assert events[-1].completion.finish_reason == "tool_calls"

    text_events = [event async for event in llm.stream(QUESTION)]
    assert [e for e in text_events if isinstance(e, TextDeltaEvent)] == [TextDeltaEvent(text="Sunny, 24 C.")]
    completion = await collect_stream(llm.stream(QUESTION))
    assert completion.message.tool_calls == [PARIS]


class _Failing(BaseLLM):
    model = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if isinstance(self.error, LLMError) and str(self.error) == "midway":
            yield TextDeltaEvent(text="par")
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected", "fragment"),
    [
        (OverloadedError("queue full", retry_after=2), OverloadedError, "queue full"),
        (LLMUnavailableError("engine down"), LLMError, "503: engine down"),
        (LLMError("midway"), LLMError, "midway"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_server_errors_become_llm_errors(
    error: Exception, expected: type[Exception], fragment: str, streamed: bool
) -> None:
    with serve_in_thread(messages_app(_Failing(error))) as url:
        llm = AnthropicLLM("m", base_url=url, api_key="x", max_retries=0)
        with pytest.raises(expected) as caught:
            if streamed:
                [event async for event in llm.stream(QUESTION)]
            else:
                await llm.complete(QUESTION)
    assert fragment in str(caught.value)
    assert url in str(caught.value)
    if isinstance(caught.value, OverloadedError):
        assert caught.value.retry_after == 2


async def test_unreachable_server_names_the_url() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    llm = AnthropicLLM("m", base_url=url, api_key="x", max_retries=0, timeout_s=5)
    with pytest.raises(LLMUnavailableError, match=f"cannot reach the Anthropic API at {url}"):
        await llm.complete(QUESTION)
    with pytest.raises(LLMUnavailableError):
        [event async for event in llm.stream(QUESTION)]


async def test_missing_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = ("API_KEY", "AUTH_TOKEN", "PROFILE", "IDENTITY_TOKEN", "IDENTITY_TOKEN_FILE", "CONFIG_DIR")
    for name in names:
        monkeypatch.delenv(f"ANTHROPIC_{name}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk either
    llm = AnthropicLLM("m", base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        await llm.complete(QUESTION)


def test_specs() -> None:
    local = from_spec("http://127.0.0.1:8123#my-model")
    assert (local.model, local.base_url) == ("my-model", "http://127.0.0.1:8123")
    hosted = from_spec("claude-sonnet-4-5")
    assert (hosted.model, hosted.base_url) == ("claude-sonnet-4-5", "https://api.anthropic.com")
    with pytest.raises(ConfigError, match="#MODEL"):
        from_spec("http://127.0.0.1:8123")
    with pytest.raises(ConfigError):
        from_spec("")
    bedrock = bedrock_from_spec("anthropic.claude-3-5-haiku-20241022-v1:0#eu-west-1")
    assert bedrock.model == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert bedrock.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_bedrock_without_a_region_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError, match="region"):
        bedrock_from_spec("anthropic.claude-x")


def test_missing_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # makes `import anthropic` fail
    with pytest.raises(ConfigError, match=r"pip install 'fncall\[anthropic\]'"):
        AnthropicLLM("claude-x")


def test_bedrock_request_body() -> None:
    llm = AnthropicLLM.bedrock("anthropic.claude-x", region="us-east-1")
    body = llm.request_body(QUESTION, [WEATHER], "auto", GenerationParams(max_tokens=50))
    assert body == {
        "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            {"name": "get_weather", "description": "Weather of a city.", "input_schema": WEATHER.parameters}
        ],
    }


async def test_bedrock_invoke_model_against_a_local_stand_in() -> None:
    """The SDK's Bedrock client (with a Bedrock API key, so no SigV4) posts our body to
    /model/{id}/invoke; a stand-in route parses it with from_bedrock_body and answers a Messages body."""
    seen: list[dict] = []
    backend = Scripted([PARIS])
    app = FastAPI()

    @app.post("/model/{model_id}/invoke")
    async def invoke(model_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"model_id": model_id, "body": body, "auth": request.headers.get("authorization")})
        completion = await backend.complete(*from_bedrock_body(body, model_id))
        return JSONResponse(completion_to_message(completion, model=model_id, message_id="msg_b1"))

    with serve_in_thread(app) as url:
        llm = AnthropicLLM.bedrock("anthropic.claude-x", region="us-east-1", api_key="brk-key", base_url=url)
        completion = await llm.complete(QUESTION, [WEATHER], {"name": "get_weather"})
    assert completion.message.tool_calls == [PARIS]
    [request] = seen
    assert request["model_id"] == "anthropic.claude-x"
    assert request["auth"] == "Bearer brk-key"
    assert request["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in request["body"]
    assert request["body"]["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert backend.requests[0].messages == QUESTION


async def test_usage_is_carried(llm: AnthropicLLM, scripted: Scripted) -> None:
    completion = await llm.complete([Message.user("one two three")])
    # Scripted counts prompt words, and a quarter of the characters of the call's arguments JSON
    assert completion.usage == Usage(prompt_tokens=3, completion_tokens=len(PARIS.arguments_json()) // 4)
