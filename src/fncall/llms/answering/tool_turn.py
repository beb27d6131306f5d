"""What a conversation that ends with tool results holds: the question, the calls made for it and their
results, read once so every part of the answer policy sees the same picture."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fncall.types import Message, ToolCall

_ERROR_PREFIXES = ("error", "exception", "traceback", "failed", "failure")
_ERROR_KEYS = ("error", "errors", "exception")


@dataclass(frozen=True)
class ToolExchange:
    """One call and the tool message that answered it."""

    call: ToolCall
    result: Message

    @property
    def content(self) -> str:
        return self.result.text

    @property
    def is_error(self) -> bool:
        """Whether the result reports a failure: flagged as one (fncall, Anthropic), or written as one
        (OpenAI's wire has no error flag, so clients send `Error: ...` or `{"error": ...}`)."""
        return self.result.is_error or content_reports_error(self.content)

    @property
    def data(self) -> Any:
        """The result parsed as JSON, or None when it is plain text."""
        return parse_json(self.content)


@dataclass(frozen=True)
class ToolTurn:
    """The part of a conversation the answer policy works on.

    question: the last user message's text; system: the system messages' text, if any;
    earlier: exchanges made for this question before the last round; latest: the last round, whose results
    end the conversation; answered: keys (see `call_key`) of every call in the conversation that has a result.
    """

    question: str
    system: str | None
    earlier: tuple[ToolExchange, ...]
    latest: tuple[ToolExchange, ...]
    answered: frozenset[str]

    @property
    def exchanges(self) -> tuple[ToolExchange, ...]:
        return self.earlier + self.latest


def read_tool_turn(messages: Sequence[Message]) -> ToolTurn | None:
    """The tool turn a conversation ends with, or None when its last message is not a tool result."""
    if not messages or messages[-1].role != "tool":
        return None
    calls: dict[str, ToolCall] = {}
    exchanges: list[tuple[int, ToolExchange]] = []
    question_at = -1
    last_call_at = -1
    for index, message in enumerate(messages):
        if message.role == "user":
            question_at = index
        elif message.role == "assistant" and message.tool_calls:
            last_call_at = index
            calls.update((call.id, call) for call in message.tool_calls)
        elif message.role == "tool":
            call = calls.get(message.tool_call_id or "") or ToolCall(
                id=message.tool_call_id or "", name=message.name or "tool"
            )
            exchanges.append((index, ToolExchange(call, message)))
    this_question = [(index, exchange) for index, exchange in exchanges if index > question_at]
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text) or None
    return ToolTurn(
        question=messages[question_at].text if question_at >= 0 else "",
        system=system,
        earlier=tuple(exchange for index, exchange in this_question if index < last_call_at),
        latest=tuple(exchange for index, exchange in this_question if index > last_call_at),
        answered=frozenset(call_key(exchange.call) for _, exchange in exchanges),
    )


def call_key(call: ToolCall) -> str:
    """ "The same call", loosely: name and arguments with 42 == 42.0 and strings compared case- and
    space-insensitively, since a model that repeats a call rarely repeats it byte for byte."""
    if call.unparsed_arguments is not None:
        return f"{call.name}:{' '.join(call.unparsed_arguments.split()).casefold()}"
    return f"{call.name}:{json.dumps(_normalized(call.arguments), sort_keys=True)}"


def _normalized(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {str(key): _normalized(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    return str(value)


def parse_json(text: str) -> Any:
    """`text` as JSON, or None when it is not JSON (plain-text results)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["-0123456789tfn':
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return None


def content_reports_error(text: str) -> bool:
    """Whether a tool result's text is an error report rather than data."""
    stripped = text.strip()
    if stripped.lower().startswith(_ERROR_PREFIXES):
        return True
    data = parse_json(stripped)
    if isinstance(data, dict):
        if any(data.get(key) for key in _ERROR_KEYS):
            return True
        if data.get("success") is False or data.get("ok") is False:
            return True
    return False
