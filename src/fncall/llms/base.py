"""The one small async protocol every LLM backend implements, and the stream <-> completion bridges."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolChoice,
    ToolSpec,
)


@runtime_checkable
class LLM(Protocol):
    """An LLM backend: a completion for a conversation, whole or as a stream of events."""

    model: str

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion: ...

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]: ...


class BaseLLM:
    """Shared defaults: a backend that only implements `complete` streams its completion as events, and
    one that only implements `stream` completes by collecting its stream."""

    model: str = "unknown"
    # Whether `GenerationParams.grammar` is applied (the local engine); other backends may drop or refuse it.
    reads_grammar: bool = False

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        if type(self).stream is BaseLLM.stream:
            raise NotImplementedError(f"{type(self).__name__} implements neither complete() nor stream()")
        return await collect_stream(self.stream(messages, tools, tool_choice, params))

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if type(self).complete is BaseLLM.complete:
            raise NotImplementedError(f"{type(self).__name__} implements neither complete() nor stream()")
        completion = await self.complete(messages, tools, tool_choice, params)
        for event in events_from_completion(completion):
            yield event


def events_from_completion(completion: Completion) -> list[StreamEvent]:
    """The events a stream of this completion would carry: reasoning, text, each call whole, finish."""
    events: list[StreamEvent] = []
    message = completion.message
    if message.reasoning:
        events.append(ReasoningDeltaEvent(text=message.reasoning))
    if message.content:
        events.append(TextDeltaEvent(text=message.content))
    for index, call in enumerate(message.tool_calls):
        events.append(ToolCallStartEvent(index=index, id=call.id, name=call.name))
        events.append(ToolCallDeltaEvent(index=index, arguments_delta=call.arguments_json()))
        events.append(ToolCallEndEvent(index=index, call=call))
    events.append(FinishEvent(completion=completion))
    return events


class StreamAssembler:
    """Builds the completion a stream describes, for streams that do not end with a FinishEvent
    (a backend translating a provider's chunks) and to check that a stream is self-consistent."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self._calls: dict[int, dict] = {}
        self.ended: dict[int, ToolCall] = {}

    def add(self, event: StreamEvent) -> None:
        match event:
            case TextDeltaEvent(text=text):
                self.text.append(text)
            case ReasoningDeltaEvent(text=text):
                self.reasoning.append(text)
            case ToolCallStartEvent(index=index, id=call_id, name=name):
                self._calls[index] = {"id": call_id, "name": name, "args": []}
            case ToolCallDeltaEvent(index=index, arguments_delta=delta):
                self._calls[index]["args"].append(delta)
            case ToolCallEndEvent(index=index, call=call):
                self.ended[index] = call

    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._calls):
            if index in self.ended:
                calls.append(self.ended[index])
                continue
            raw = "".join(self._calls[index]["args"])
            calls.append(tool_call_from_json(self._calls[index]["id"], self._calls[index]["name"], raw))
        return calls

    def message(self) -> Message:
        return Message(
            role="assistant",
            content="".join(self.text) or None,
            reasoning="".join(self.reasoning) or None,
            tool_calls=self.tool_calls(),
        )


def tool_call_from_json(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    """A ToolCall from an arguments JSON string; text that is not a JSON object is kept as unparsed."""
    text = raw_arguments.strip() or "{}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return ToolCall(id=call_id, name=name, unparsed_arguments=raw_arguments)
    if not isinstance(value, dict):
        return ToolCall(id=call_id, name=name, unparsed_arguments=raw_arguments)
    return ToolCall(id=call_id, name=name, arguments=value)


async def collect_stream(events: AsyncIterator[StreamEvent]) -> Completion:
    """The completion of a stream: its FinishEvent's, or one assembled from its deltas."""
    assembler = StreamAssembler()
    async for event in events:
        if isinstance(event, FinishEvent):
            return event.completion
        assembler.add(event)
    message = assembler.message()
    return Completion(message=message, finish_reason="tool_calls" if message.tool_calls else "stop")
