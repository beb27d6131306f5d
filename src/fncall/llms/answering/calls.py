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

import jsonschema

from fncall.llms.answering.facts import numbers_in, text_contains
from fncall.llms.answering.tool_turn import ToolTurn, call_key
from fncall.llms.answering.words import (
    CODE_VALUE,
    FUNCTION_WORDS,
    abbreviated_words,
    argument_numbers,
    asked_and_passed,
    scalar_values,
    shared_stems,
    tool_text,
    word_stems,
)
from fncall.types import Message, ToolCall, ToolSpec, new_call_id


def tool_named(tools: Sequence[ToolSpec], name: str) -> ToolSpec | None:
    """The offered tool of that name, if any."""
    return next((tool for tool in tools if tool.name == name), None)


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
    tool = tool_named(tools, call.name)
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


def open_words(turn: ToolTurn, tools: Sequence[ToolSpec]) -> set[str]:
    """Stems of the question's content words that neither the tools called for it (their names,
    descriptions, parameters and arguments) nor their results hold: what the question may still ask for.
    Words that a code among the values abbreviates are held too ("kilometers" by `km`, "Nvidia" by `NVDA`,
    "Japanese yen" by `JPY`): the model translates the user's words into codes."""
    covered: set[str] = set()
    codes: set[str] = set()
    for exchange in turn.exchanges:
        spec = tool_named(tools, exchange.call.name)
        covered |= word_stems(exchange.content)
        covered |= word_stems(tool_text(spec) if spec else exchange.call.name)
        arguments = list(scalar_values(exchange.call.arguments))
        covered |= word_stems(" ".join(str(value) for value in arguments))
        values = [*arguments, *scalar_values(exchange.data)]
        codes |= {
            value.strip().lower()
            for value in values
            if isinstance(value, str) and CODE_VALUE.fullmatch(value.strip())
        }
    abbreviated = {word[:5] for code in codes for word in abbreviated_words(code, turn.question)}
    return word_stems(turn.question) - covered - FUNCTION_WORDS - abbreviated


def said_values(call: ToolCall, turn: ToolTurn) -> bool:
    """Whether every string value of the call was said: by the question (a code counts when it abbreviates
    a run of its words, `USD` for "US dollars"), by an earlier call or by a result. Codes otherwise pass as
    translations (see `guessed_values`); here they must be earned, since a model asked for a next step
    converts a listed price into euros nobody asked for."""
    results = (exchange.content.replace("_", " ") for exchange in turn.exchanges)
    known = "\n".join([asked_and_passed(turn), *results])
    for value in scalar_values(call.arguments):
        if not isinstance(value, str) or text_contains(known, value):
            continue
        code = value.strip().lower()
        if not (CODE_VALUE.fullmatch(code) and abbreviated_words(code, turn.question)):
            return False
    return True


def retargeted(call: ToolCall, turn: ToolTurn, tools: Sequence[ToolSpec], words: set[str]) -> ToolCall | None:
    """An answered call asked again, pointed at the record the question is about: "the email of Priya
    Raman's manager" after `lookup_employee(name="Priya Raman")` returned `"manager": "Daniel Okafor"`
    becomes `lookup_employee(name="Daniel Okafor")`. The question must ask something of "A's K" ("... of
    A's K", "A's K's ...", "... of the K of A"), where A is one of the call's values and K a key of its
    result holding a string nobody said yet ("What is Priya Raman's manager?" follows nothing). On
    Qwen2.5-Coder-0.5B: it repeats the answered call word for word instead of following the reference.
    Not when an open word of the question (`words`) names another tool: that tool is the next step."""
    if any(words & word_stems(tool_text(tool)) for tool in tools if tool.name != call.name):
        return None
    exchange = next((item for item in turn.exchanges if call_key(item.call) == call_key(call)), None)
    if exchange is None or exchange.is_error or not isinstance(exchange.data, dict):
        return None
    known = asked_and_passed(turn)
    for name, value in call.arguments.items():
        if not isinstance(value, str) or not text_contains(turn.question, value):
            continue
        for key, target in exchange.data.items():
            if not isinstance(target, str) or not target.strip() or text_contains(known, target):
                continue
            label = re.escape(str(key).replace("_", " "))
            asked = re.escape(value)
            reference = (
                rf"\bof\s+{asked}'s\s+{label}\b|\b{asked}'s\s+{label}'s\s+\w"
                rf"|\bof\s+(?:the|his|her|their|its)\s+{label}\s+of\s+{asked}\b"
            )
            if re.search(reference, turn.question, re.IGNORECASE):
                return call.model_copy(
                    update={"id": new_call_id(), "arguments": {**call.arguments, name: target}}
                )
    return None


def asks_for_more(
    call: ToolCall, turn: ToolTurn, tools: Sequence[ToolSpec], words: set[str], *, first: bool = False
) -> bool:
    """Whether the question still asks for what the call gives. Measured on Qwen2.5-Coder-0.5B after a
    result: it fans out to every tool that takes a value of the result (a city's country, each listed
    flight's status) although the question is answered. A follow-up is kept when it is
    - the same tool again, pointed at the record the question names (see `retargeted`: an employee's
      manager, but not the manager's manager);
    - a tool that shares a word with the question that the calls so far do not cover ("weather" once the
      capital is known);
    - the model's first new call, carrying a number of a result on while the question still has words the
      calls do not cover (a price on to a currency conversion: "in euros" shares no word with its tool).
    `words`: the question's `open_words`."""
    if call.name in {exchange.call.name for exchange in turn.exchanges}:
        targets = (retargeted(exchange.call, turn, tools, words) for exchange in turn.exchanges)
        return any(target is not None and call_key(target) == call_key(call) for target in targets)
    tool = tool_named(tools, call.name)
    if tool is None or not words:
        return False
    if words & word_stems(tool_text(tool)):
        return True
    return first and bool(_result_values_used(call, turn)[1])


def uses_a_result(call: ToolCall, turn: ToolTurn) -> bool:
    """Whether the call takes a value from this question's results that neither the question nor the
    earlier calls held: the mark of a call that needed the results (a follow-up), not one the model could
    have made before them (a re-ask, or a lookup nobody asked for)."""
    strings, numbers = _result_values_used(call, turn)
    return bool(strings or numbers)


def _result_values_used(call: ToolCall, turn: ToolTurn) -> tuple[list[str], list[float]]:
    """The call's strings and numbers that come from this question's results and nowhere before them."""
    successes = [exchange for exchange in turn.exchanges if not exchange.is_error]
    results = "\n".join(exchange.content for exchange in successes)
    known = asked_and_passed(turn)
    known_numbers = {abs(number) for number in numbers_in(known)}
    result_numbers = {abs(number) for number in numbers_in(results)}
    strings: list[str] = []
    numbers: list[float] = []
    for value in scalar_values(call.arguments):
        if isinstance(value, str):
            if text_contains(results, value) and not text_contains(known, value):
                strings.append(value)
        elif abs(float(value)) in result_numbers and abs(float(value)) not in known_numbers:
            numbers.append(float(value))
    return strings, numbers


def mentions_tool(question: str, tool: ToolSpec) -> bool:
    """Whether the question shares a content word (4+ letters, compared by its first 5) with the tool's
    name, description or parameter names: "weather" in "What's the weather in the capital of Japan?"."""
    return bool(shared_stems(question, tool))


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
        if abs(number) not in argument_numbers(exchange.call)
    }
    asked = {abs(number) for number in numbers_in(turn.question)}
    return any(number in produced and number not in asked for number in argument_numbers(call))


def conversation_text(messages: Iterable[Message]) -> str:
    """What the user said and the tools returned: where a grounded argument value comes from."""
    return "\n".join(message.text for message in messages if message.role in ("user", "tool"))
