"""A backend that replays given responses or asks a function: for loop tests and benchmarks, never a
stand-in for an end-to-end test of a real model."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fncall.errors import LLMError
from fncall.llms.base import BaseLLM
from fncall.types import Completion, GenerationParams, Message, ToolCall, ToolChoice, ToolSpec, Usage

ScriptItem = Completion | Message | ToolCall | list[ToolCall] | str
Responder = Callable[["ScriptedRequest"], ScriptItem | Awaitable[ScriptItem]]


@dataclass
class ScriptedRequest:
    """What the backend was asked, kept so tests can check what an agent sent."""

    messages: list[Message]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    params: GenerationParams = field(default_factory=GenerationParams)


def as_completion(item: ScriptItem, model: str = "scripted") -> Completion:
    """A completion from a script item: text, one call, several calls, a message or a completion."""
    if isinstance(item, Completion):
        return item
    if isinstance(item, str):
        message = Message.assistant(item)
    elif isinstance(item, ToolCall):
        message = Message.assistant(tool_calls=[item])
    elif isinstance(item, list):
        message = Message.assistant(tool_calls=list(item))
    else:
        message = item
    finish = "tool_calls" if message.tool_calls else "stop"
    words = len((message.content or "").split()) + sum(
        len(c.arguments_json()) // 4 for c in message.tool_calls
    )
    return Completion(
        message=message, finish_reason=finish, usage=Usage(completion_tokens=words), model=model
    )


class Scripted(BaseLLM):
    """Replays `script` in order, or calls `responder(request)` for each request.

    `latency_s` adds a fixed delay per call (benchmarks of the agent service use a fake LLM with latency).
    """

    def __init__(
        self,
        script: Iterable[ScriptItem] | Responder,
        *,
        model: str = "scripted",
        latency_s: float = 0.0,
    ) -> None:
        self.model = model
        self.latency_s = latency_s
        self.requests: list[ScriptedRequest] = []
        if callable(script):
            self._responder: Responder | None = script
            self._script: list[ScriptItem] = []
        else:
            self._responder = None
            self._script = list(script)

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        request = ScriptedRequest(list(messages), list(tools), tool_choice, params or GenerationParams())
        self.requests.append(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self._responder is not None:
            item = self._responder(request)
            if inspect.isawaitable(item):
                item = await item
        else:
            index = len(self.requests) - 1
            if index >= len(self._script):
                raise LLMError(f"scripted backend has no response left (asked {index + 1} times)")
            item = self._script[index]
        completion = as_completion(item, self.model)
        prompt_tokens = sum(len((m.content or "").split()) for m in messages)
        return completion.model_copy(
            update={
                "usage": Usage(
                    prompt_tokens=completion.usage.prompt_tokens or prompt_tokens,
                    completion_tokens=completion.usage.completion_tokens,
                )
            }
        )
