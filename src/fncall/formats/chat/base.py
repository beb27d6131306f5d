"""The interface every model chat format implements: render a prompt, parse output, stream-parse output.

A raw-text model (one run in-process, not behind an API that returns `tool_calls`) writes its tool calls in
its family's own syntax. A `ChatFormat` knows that syntax both ways: it renders messages and tools into the
prompt the model was trained on, and turns the generated text back into content and `ToolCall`s, whole
(`parse`) or chunk by chunk (`stream_parser`). `parse` is defined as streaming the whole text at once, so
the two can never disagree.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fncall.types import (
    Message,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallEndEvent,
    ToolSpec,
)

if TYPE_CHECKING:
    from fncall.formats.chat.template import ChatTemplate


@dataclass
class ParsedOutput:
    """A model's output split into what it said, what it reasoned and which tools it called."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    truncated: bool = False  # a call was cut off (max_tokens): it is reported, not dropped


@dataclass(frozen=True)
class CallLayout:
    """What a grammar needs to produce one family's calls, and how calls are written back into history."""

    prefix: str
    suffix: str
    separator: str
    name_key: str = "name"
    arguments_key: str = "arguments"
    key_order: tuple[str, str] = ("name", "arguments")

    def render_call(self, call: ToolCall) -> str:
        """One call as the model writes it: a JSON object with the family's keys in its usual order."""
        values = {self.name_key: call.name, self.arguments_key: call.arguments}
        return json.dumps({key: values[key] for key in self.key_order}, ensure_ascii=False)

    def render_calls(self, calls: Sequence[ToolCall]) -> str:
        """A list of calls in the family's syntax, exactly as the layout's grammar would produce it."""
        return self.prefix + self.separator.join(self.render_call(call) for call in calls) + self.suffix


class StreamParser(ABC):
    """Turns generated text, fed in chunks of any size, into stream events.

    Text that might begin a call is held back until it is decided; argument fragments of a call are sent as
    they arrive, and their concatenation is exactly the arguments JSON of the call in its ToolCallEndEvent.
    """

    @abstractmethod
    def feed(self, chunk: str) -> list[StreamEvent]:
        """Events for this chunk (possibly none while a trigger is undecided)."""

    @abstractmethod
    def finish(self, *, truncated: bool = False) -> list[StreamEvent]:
        """Flush held-back text and close an open call; `truncated` says generation hit max_tokens."""

    @property
    @abstractmethod
    def in_call(self) -> bool:
        """Whether the text so far ends inside (possible) call syntax: when to switch on a call grammar."""

    @property
    @abstractmethod
    def truncated(self) -> bool:
        """Whether a call was cut off by the end of the stream."""


class ChatFormat(ABC):
    """One model family's chat format: prompt rendering and tool-call parsing."""

    name: str
    triggers: tuple[str, ...]  # strings that start a call in free text (lazy grammar triggers)

    @abstractmethod
    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        template: ChatTemplate | None,
        add_generation_prompt: bool = True,
        compact_tools: bool = False,
    ) -> str:
        """The prompt for this conversation: with the model's own template where it knows tools, else with
        tools described in the system prompt in this family's syntax (as signatures with `compact_tools`)."""

    @abstractmethod
    def stream_parser(self, tools: Sequence[ToolSpec], *, reasoning_open: bool = False) -> StreamParser:
        """A fresh parser for one generation; `reasoning_open` when the prompt already opened reasoning."""

    @abstractmethod
    def call_layout(self) -> CallLayout:
        """The syntax of this family's call list, for grammars."""

    def parse(
        self,
        text: str,
        tools: Sequence[ToolSpec],
        *,
        truncated: bool = False,
        reasoning_open: bool = False,
    ) -> ParsedOutput:
        """The whole output parsed at once: by definition the same as streaming it in any chunking."""
        parser = self.stream_parser(tools, reasoning_open=reasoning_open)
        events = parser.feed(text)
        events += parser.finish(truncated=truncated)
        return parsed_output_from_events(events, truncated=parser.truncated)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def parsed_output_from_events(events: Sequence[StreamEvent], *, truncated: bool = False) -> ParsedOutput:
    """Collects a stream parser's events into a ParsedOutput."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for event in events:
        if isinstance(event, TextDeltaEvent):
            text.append(event.text)
        elif isinstance(event, ReasoningDeltaEvent):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallEndEvent):
            calls.append(event.call)
    return ParsedOutput(
        content="".join(text) or None,
        tool_calls=calls,
        reasoning="".join(reasoning) or None,
        truncated=truncated,
    )
