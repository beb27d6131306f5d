"""The tools-free answer step's prompt: the question and one result, as one short user turn.

Measured on Qwen2.5-Coder-0.5B: after a tool result in the full conversation (system prompt, tool schemas,
the call, the result) the model calls the tool again or echoes the JSON; asked in a fresh, short turn with no
tools ("The tool X returned: ... Using this result, answer the question") it answers from the result, and
the prompt shrinks from about 500 to about 90 tokens. Two results in one such turn lost a value every time,
so each step presents one result; earlier results of the same question come along as context only.
Results are shown as `key: value` text, not JSON: given JSON, the model tends to copy it as its answer.
"""

from __future__ import annotations

from typing import Any

from fncall.llms.answering.facts import LIST_HEAD, list_size
from fncall.llms.answering.tool_turn import ToolExchange, ToolTurn
from fncall.types import Message

_MAX_RESULT_CHARS = 1500
_MAX_CONTEXT_CHARS = 400
_ERROR_PREFIX = "error:"


def answer_messages(turn: ToolTurn, focus: ToolExchange, *, with_system: bool = True) -> list[Message]:
    """The messages of the answer step for one result: the system text (if any) and one user turn."""
    lines = _question_and_earlier(turn, focus)
    if focus.is_error:
        lines += [
            f"Then {_describe_call(focus)} failed with this error: {error_text(focus)}",
            "Tell the user in one sentence that the tool failed and why. Do not guess or make up an answer.",
        ]
    elif _is_empty(focus):
        lines += [
            f"Then {_describe_call(focus)} returned nothing: no results.",
            "Tell the user in one sentence that nothing was found. Do not make up any results.",
        ]
    else:
        lines.append(_returned(focus))
        size = list_size(focus.data)
        if size is not None and size > LIST_HEAD:
            lines.append(
                f"The result lists {size} items: name the first {LIST_HEAD} "
                f"and say there are {size} in total."
            )
        lines.append(
            "Using this result, answer the question in one or two sentences. State every value it gives "
            "exactly as written."
        )
    return _turn_messages(turn, lines, with_system)


def follow_up_messages(turn: ToolTurn) -> list[Message]:
    """A fresh turn that asks for the next call: the question, the results so far as text, and the ask.
    Measured on Qwen2.5-Coder-0.5B: where the full conversation made it repeat the answered call, this turn
    with the other tools made it convert a share price in yen to the dollars the question asks for, and
    where nothing more was needed it made no call."""
    focus = turn.exchanges[-1]
    lines = _question_and_earlier(turn, focus)
    lines += [
        _returned(focus),
        "Call the tool that the question still needs, with values from the result.",
    ]
    return _turn_messages(turn, lines, True)


def _question_and_earlier(turn: ToolTurn, focus: ToolExchange) -> list[str]:
    """The question, then every result of it before `focus`, as context."""
    lines = [f"Question: {turn.question.strip()}" if turn.question.strip() else "Question: (none given)", ""]
    for exchange in turn.exchanges:
        if exchange is focus:
            break
        lines.append(
            f"Earlier, {_describe_call(exchange)} returned: {_result_text(exchange, _MAX_CONTEXT_CHARS)}"
        )
    return lines


def _returned(focus: ToolExchange) -> str:
    """The line that presents the result a step works on."""
    return f"Then {_describe_call(focus)} returned: {_result_text(focus, _MAX_RESULT_CHARS)}"


def _turn_messages(turn: ToolTurn, lines: list[str], with_system: bool) -> list[Message]:
    messages = [Message.system(turn.system)] if with_system and turn.system else []
    return [*messages, Message.user("\n".join(lines))]


def _is_empty(exchange: ToolExchange) -> bool:
    """A result with nothing in it (`[]`, `{}`, `""`, `null`, no text): easy to answer by inventing."""
    stripped = exchange.content.strip()
    return not stripped or stripped in ("[]", "{}", '""', "null")


def error_text(exchange: ToolExchange) -> str:
    """A failed call's error message, without a leading `Error:` (the prompt already says it failed)."""
    text = exchange.content.strip()
    if text.lower().startswith(_ERROR_PREFIX):
        text = text[len(_ERROR_PREFIX) :].strip()
    return _clip(text or "no reason was given", _MAX_CONTEXT_CHARS)


def _describe_call(exchange: ToolExchange) -> str:
    call = exchange.call
    if not call.arguments:
        return f"the tool {call.name}"
    return f"the tool {call.name} ({readable(call.arguments)})"


def _result_text(exchange: ToolExchange, limit: int) -> str:
    data = exchange.data
    text = exchange.content if data is None else readable(data)
    return _clip(text, limit)


def readable(value: Any) -> str:
    """A JSON value as plain text: `key: value` pairs, list items one per line."""
    if isinstance(value, dict):
        nested = any(isinstance(item, dict | list) for item in value.values())
        pairs = (f"{key}:{_nested(item)}" for key, item in value.items())
        return ("\n" if nested else ", ").join(pairs)
    if isinstance(value, list):
        return "".join(f"\n- {readable(item)}" for item in value) if len(value) != 1 else readable(value[0])
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _nested(value: Any) -> str:
    """A value after its key: a record in parentheses, a list's lines indented, a scalar after a space."""
    text = readable(value)
    if isinstance(value, dict):
        return f" ({text})"
    return text.replace("\n", "\n  ") if text.startswith("\n") else f" {text}"


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
