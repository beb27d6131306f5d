"""Claude through Anthropic's Messages API (or Bedrock's InvokeModel), on the official `anthropic` SDK.

The SDK is an optional extra, imported when a backend is built. Bodies are built by
`fncall.formats.anthropic`, the same code our own `/v1/messages` route parses with, so this backend can
also point at that route (`anthropic:http://127.0.0.1:PORT#model`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

from fncall.errors import ConfigError, LLMError, LLMUnavailableError, OverloadedError
from fncall.formats.anthropic import (
    DEFAULT_MAX_TOKENS,
    MessageStreamDecoder,
    from_canonical,
    message_to_completion,
    to_bedrock_body,
)
from fncall.llms.base import BaseLLM
from fncall.types import Completion, GenerationParams, Message, StreamEvent, ToolChoice, ToolSpec

# The SDK's own keyword arguments of messages.create; every other body field travels as `extra_body`.
_SDK_ARGUMENTS = ("model", "max_tokens", "messages")
_PLACEHOLDER_API_KEY = "fncall-no-key"


def _sdk() -> ModuleType:
    try:
        import anthropic
    except ImportError as exc:
        raise ConfigError(
            "the Anthropic backend needs the anthropic SDK: pip install 'fncall[anthropic]'"
        ) from exc
    return anthropic


class AnthropicLLM(BaseLLM):
    """An LLM backend over the Messages API. Use `AnthropicLLM.bedrock(...)` for Claude on Bedrock."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = 60,
        max_retries: int = 3,
        client: Any = None,
    ) -> None:
        """`max_tokens` is used when a request's params set none (Anthropic requires a limit). `client`
        replaces the SDK client built here (an `AsyncAnthropic`-compatible object)."""
        self.model = model
        self.max_tokens = max_tokens
        self._bedrock = False
        if client is None:
            client = _sdk().AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
            )
        self._client = client

    @classmethod
    def bedrock(
        cls,
        model_id: str,
        *,
        region: str | None = None,
        aws_profile: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = 60,
        max_retries: int = 3,
    ) -> AnthropicLLM:
        """Claude on AWS Bedrock. Credentials come the boto3 way (environment, profile, instance role;
        SigV4 signing needs `boto3`), or a Bedrock API key (`api_key` or AWS_BEARER_TOKEN_BEDROCK);
        the region from `region`, AWS_REGION or the profile. `base_url` overrides the regional endpoint."""
        try:
            client = _sdk().AsyncAnthropicBedrock(
                aws_region=region,
                aws_profile=aws_profile,
                api_key=api_key,
                base_url=base_url,
                timeout=timeout_s,
                max_retries=max_retries,
            )
        except ValueError as exc:  # the SDK's complaint about a missing region or mixed credentials
            raise ConfigError(f"cannot set up Bedrock for {model_id!r}: {exc}") from exc
        llm = cls(model_id, max_tokens=max_tokens, client=client)
        llm._bedrock = True
        return llm

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def request_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> dict[str, Any]:
        """The body this backend sends for a request (Bedrock's carries `anthropic_version`, no model)."""
        if self._bedrock:
            return to_bedrock_body(messages, tools, tool_choice, params, max_tokens=self.max_tokens)
        return from_canonical(
            messages, tools, tool_choice, params, model=self.model, max_tokens=self.max_tokens
        )

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        body = self.request_body(messages, tools, tool_choice, params)
        try:
            response = await self._create(body, stream=False)
        except _sdk().AnthropicError as exc:
            raise self._translate(exc) from exc
        completion = message_to_completion(response)
        return completion.model_copy(update={"model": completion.model or self.model})

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        body = self.request_body(messages, tools, tool_choice, params)
        decoder = MessageStreamDecoder()
        try:
            events = await self._create(body, stream=True)
        except _sdk().AnthropicError as exc:
            raise self._translate(exc) from exc
        try:
            async for raw_event in events:
                for event in decoder.feed(raw_event):
                    yield event
        except _sdk().AnthropicError as exc:
            raise self._translate(exc) from exc
        finally:
            await events.close()  # also when the consumer stops early: frees the HTTP response
        if not decoder.finished:
            raise LLMError(f"the stream from {self.base_url} ended before its message_stop event")

    async def _create(self, body: dict[str, Any], *, stream: bool) -> Any:
        self._check_credentials()
        arguments = {key: body[key] for key in _SDK_ARGUMENTS if key in body}
        if self._bedrock:
            arguments["model"] = self.model
        extra = {key: value for key, value in body.items() if key not in _SDK_ARGUMENTS}
        return await self._client.messages.create(**arguments, stream=stream, extra_body=extra)

    def _check_credentials(self) -> None:
        """Fails with a fix to apply where the SDK would raise a bare TypeError at request time."""
        if self._bedrock:
            return
        credentials = [getattr(self._client, name, "") for name in ("api_key", "auth_token", "credentials")]
        if all(value is None for value in credentials):
            raise ConfigError(
                f"no Anthropic credentials for {self.base_url}: set ANTHROPIC_API_KEY or pass api_key= "
                "(a local server takes any key)"
            )

    def _translate(self, exc: Exception) -> LLMError:
        """The fncall error for an SDK error, naming where the request went."""
        anthropic = _sdk()
        if isinstance(exc, anthropic.APIConnectionError):
            return LLMUnavailableError(f"cannot reach the Anthropic API at {self.base_url}: {exc}")
        if isinstance(exc, anthropic.APIStatusError):
            detail = _error_message(exc)
            if exc.status_code in (429, 529):
                retry_after = _retry_after(exc.response.headers.get("retry-after"))
                return OverloadedError(
                    f"{self.base_url} is overloaded ({exc.status_code}): {detail}", retry_after
                )
            return LLMError(f"the Anthropic API at {self.base_url} answered {exc.status_code}: {detail}")
        return LLMError(f"the Anthropic API at {self.base_url} failed: {exc}")


def _error_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", exc.message))
    return str(exc.message)


def _retry_after(header: str | None) -> float:
    try:
        return max(float(header), 0.0) if header else 1.0
    except ValueError:
        return 1.0


# ------------------------------------------------------------------------------------- spec factories


def from_spec(rest: str) -> AnthropicLLM:
    """`anthropic:MODEL` (api.anthropic.com) or `anthropic:http(s)://HOST:PORT#MODEL` (any server speaking
    the Messages API, such as fncall's own). The key comes from ANTHROPIC_API_KEY; a base_url form
    without one sends a placeholder, since local servers need none."""
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if rest.startswith(("http://", "https://")):
        base_url, _, model = rest.partition("#")
        if not model:
            raise ConfigError(
                f"anthropic spec {rest!r} needs a model after the URL: anthropic:{base_url}#MODEL"
            )
        return AnthropicLLM(model, base_url=base_url, api_key=api_key or _PLACEHOLDER_API_KEY)
    if not rest:
        raise ConfigError("an anthropic spec needs a model name: anthropic:claude-...")
    return AnthropicLLM(rest, api_key=api_key)


def bedrock_from_spec(rest: str) -> AnthropicLLM:
    """`bedrock:MODEL_ID` (region from AWS_REGION or the AWS profile) or `bedrock:MODEL_ID#REGION`."""
    model_id, _, region = rest.partition("#")
    if not model_id:
        raise ConfigError("a bedrock spec needs a model id: bedrock:anthropic.claude-...")
    return AnthropicLLM.bedrock(model_id, region=region or None)
