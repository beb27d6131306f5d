"""Which calls the model proposes are worth running: the checks the answer policy applies to a proposal.

Measured on Qwen2.5-Coder-0.5B after a tool result: besides repeating the call, it invents calls with
empty or made-up arguments (`get_weather({})`, `search_flights` between cities nobody named), and it feeds a
tool's output back into the same tool (42 USD -> 131.95 CAD, then 131.95 -> 414.53 ...). In a first turn
that no tool fits, it calls one anyway with invented arguments ("Say hello" -> convert 100 USD to EUR).
Each check below is general: it looks at schemas and at where argument values come from, never at names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema

from fncall.llms.answering.facts import numbers_in, text_contains
from fncall.llms.answering.tool_turn import ToolTurn, call_key, parse_json
from fncall.types import Message, ToolCall, ToolSpec


def new_calls(calls: Sequence[ToolCall], turn: ToolTurn) -> list[ToolCall]:
    """The proposed calls that have no result yet (a call identical to an answered one is dropped)."""
    seen = set(turn.answered)
    kept = []
    for call in calls:
        key = call_key(call)
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


def fits_schema(call: ToolCall, tools: Sequence[ToolSpec]) -> bool:
    """Whether the call names an offered tool, uses only the parameters it declares (a model that adds
    keys, such as a result's, is pasting, not calling) and its arguments are valid for its schema."""
    if call.unparsed_arguments is not None:
        return False
    tool = next((tool for tool in tools if tool.name == call.name), None)
    if tool is None:
        return False
    declared = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
    if isinstance(declared, dict) and declared and set(call.arguments) - set(declared):
        return False
    try:
        validator = jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
        return bool(validator.is_valid(call.arguments))
    except (jsonschema.SchemaError, TypeError, ValueError):
        return True  # a schema we cannot check is the client's business, not a reason to drop the call


def is_grounded(call: ToolCall, conversation_text: str) -> bool:
    """Whether at least one argument value comes from the conversation (the user's words or a result).

    A call none of whose values was ever mentioned is a guess, not a use of the question: the model was
    asked something no tool fits. Strings also match by a shared word stem, since models normalise what
    they pass on ("Lisboa" for "Lisbon"). A call without arguments cannot be judged.
    """
    values = list(_scalar_values(call.arguments))
    if not values:
        return True
    numbers = {abs(number) for number in numbers_in(conversation_text)}
    stems = _word_stems(conversation_text)
    for value in values:
        if isinstance(value, str) and (text_contains(conversation_text, value) or _word_stems(value) & stems):
            return True
        if isinstance(value, int | float) and abs(float(value)) in numbers:
            return True
    return False


def uses_a_result(call: ToolCall, turn: ToolTurn) -> bool:
    """Whether the call takes a value from this question's results that neither the question nor the
    earlier calls held: the mark of a call that needed the results (a follow-up), not one the model could
    have made before them (a re-ask, or a lookup nobody asked for)."""
    successes = [exchange for exchange in turn.exchanges if not exchange.is_error]
    results = "\n".join(exchange.content for exchange in successes)
    known = turn.question + "\n" + "\n".join(exchange.call.arguments_json() for exchange in turn.exchanges)
    known_numbers = {abs(number) for number in numbers_in(known)}
    result_numbers = {abs(number) for number in numbers_in(results)}
    for value in _scalar_values(call.arguments):
        if isinstance(value, str) and text_contains(results, value) and not text_contains(known, value):
            return True
        if isinstance(value, int | float):
            number = abs(float(value))
            if number in result_numbers and number not in known_numbers:
                return True
    return False


def mentions_tool(question: str, tool: ToolSpec) -> bool:
    """Whether the question shares a content word (4+ letters, compared by its first 5) with the tool's
    name, description or parameter names: "weather" in "What's the weather in the capital of Japan?"."""
    words = _word_stems(question)
    parameters = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    tool_text = " ".join([tool.name.replace("_", " "), tool.description, *map(str, parameters)])
    return bool(words & _word_stems(tool_text))


def feeds_own_output(call: ToolCall, turn: ToolTurn) -> bool:
    """Whether the call passes a number from a result of the same tool back into it (re-applying a
    conversion to its own output); passing on names and ids (an employee's manager) stays allowed."""
    own_results = [exchange for exchange in turn.exchanges if exchange.call.name == call.name]
    if not own_results:
        return False
    produced = {
        abs(number)
        for exchange in own_results
        for number in numbers_in(exchange.content)
        if abs(number) not in _argument_numbers(exchange.call)
    }
    asked = {abs(number) for number in numbers_in(turn.question)}
    return any(number in produced and number not in asked for number in _argument_numbers(call))


def conversation_text(messages: Iterable[Message]) -> str:
    """What the user said and the tools returned: where a grounded argument value comes from."""
    return "\n".join(message.text for message in messages if message.role in ("user", "tool"))


def _word_stems(text: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|_", " ", text)
    return {word[:5] for word in re.findall(r"[a-z]{4,}", spaced.lower())}


def _argument_numbers(call: ToolCall) -> set[float]:
    return {abs(float(value)) for value in _scalar_values(call.arguments) if isinstance(value, int | float)}


def _scalar_values(value: Any) -> Iterable[str | int | float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        parsed = parse_json(value) if value.strip().startswith(("{", "[")) else None
        if parsed is None:
            if value.strip():
                yield value
            return
        value = parsed
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _scalar_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalar_values(item)
