"""A backend for any OpenAI-compatible chat-completions server: vLLM, LMDeploy, llama.cpp's server, Ollama,
TGI, OpenAI itself and fncall's own LLM service, through the official `openai` SDK."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
import openai

from fncall.errors import LLMError, LLMUnavailableError, OverloadedError
from fncall.formats.openai import ChunkDecoder, MaxTokensField, from_canonical, response_to_completion
from fncall.llms.base import BaseLLM
from fncall.types import Completion, GenerationParams, Message, StreamEvent, ToolChoice, ToolSpec

PLACEHOLDER_API_KEY = "not-needed"

_CHAT_COMPLETIONS_PATH = "/chat/completions"
_STREAM_OPTIONS = {"include_usage": True}


class OpenAICompatible(BaseLLM):
    """An LLM behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Connection errors, timeouts, 408/409/429 and 5xx answers are retried `max_retries` times with exponential
    backoff (the SDK's retry loop: 0.5 s doubling up to 8 s, honouring Retry-After). A server that stays
    unreachable raises LLMUnavailableError naming the URL; a 429 that outlasts the retries raises
    OverloadedError; any other error answer raises LLMError with the server's message.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        max_tokens_field: MaxTokensField = "max_tokens",
        http_client: Any = None,
    ) -> None:
        """`http_client`: the SDK's HTTP client to use instead of its own (a Unix-socket transport, or the
        SDK's `DefaultAioHttpClient`, which costs less CPU per request under heavy concurrency)."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.max_tokens_field: MaxTokensField = max_tokens_field
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, model={self.model!r})"

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        body = self._body(messages, tools, tool_choice, params)
        try:
            response = await self._client.post(_CHAT_COMPLETIONS_PATH, body=body, cast_to=object)
        except (openai.OpenAIError, httpx2.TransportError) as error:
            raise self._translate(error) from error
        return response_to_completion(response)

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        body = self._body(messages, tools, tool_choice, params)
        body.update(stream=True, stream_options=_STREAM_OPTIONS)
        decoder = ChunkDecoder()
        try:
            chunks = await self._client.post(
                _CHAT_COMPLETIONS_PATH,
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            async with chunks:
                async for chunk in chunks:
                    for event in decoder.decode(chunk):
                        yield event
        except (openai.OpenAIError, httpx2.TransportError) as error:
            raise self._translate(error) from error
        for event in decoder.finish():
            yield event

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    def _body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        tool_choice: ToolChoice,
        params: GenerationParams | None,
    ) -> dict[str, Any]:
        """The request body, already plain JSON. It goes through the SDK's documented `post` for endpoints
        rather than `chat.completions.create`, whose walk of the body against its typed-dict params was 7%
        of the agent service's busy time under load; the answer comes back as the JSON dict it was, not built
        into SDK models only to be dumped again. Transport, retries and errors are still the SDK's."""
        return from_canonical(
            messages, tools, tool_choice, params, self.model, max_tokens_field=self.max_tokens_field
        )

    def _translate(self, error: Exception) -> LLMError:
        if isinstance(error, LLMError):
            return error
        if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
            return LLMUnavailableError(
                f"Could not reach the LLM server at {self.base_url} after {self.max_retries} retries "
                f"({error}). Check that it is running and that the URL is right."
            )
        if isinstance(error, openai.APIStatusError):
            message = (
                f"The LLM server at {self.base_url} answered {error.status_code}: {_server_message(error)}"
            )
            if error.status_code == 429:
                return OverloadedError(message, retry_after=_retry_after(error))
            return LLMError(message)
        return LLMError(f"The LLM server at {self.base_url} failed: {error}")


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return error.message


def _retry_after(error: openai.APIStatusError) -> float:
    try:
        return float(error.response.headers.get("retry-after", 1.0))
    except ValueError:
        return 1.0
