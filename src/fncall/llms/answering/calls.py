"""Which calls the model proposes are worth running: the checks the answer policy applies to a proposal.

Measured on Qwen2.5-Coder-0.5B after a tool result: besides repeating the call, it invents calls with
empty or made-up arguments (`get_weather({})`, `search_flights` between cities nobody named), and it feeds a
tool's output back into the same tool (42 USD -> 131.95 CAD, then 131.95 -> 414.53 ...). In a first turn
that no tool fits, it calls one anyway with invented arguments ("Say hello" -> convert 100 USD to EUR).
Each check below is general: it looks at schemas and at where argument values come from, never at names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema

from fncall.llms.answering.facts import numbers_in, text_contains
from fncall.llms.answering.tool_turn import ToolTurn, call_key, parse_json
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


def guessed_values(
    call: ToolCall, conversation_text: str, tools: Sequence[ToolSpec]
) -> list[str | int | float]:
    """The argument values of a call that nobody said: neither the conversation nor the tool's schema
    holds them as an allowed value. Measured on Qwen2.5-Coder-0.5B, such a value is the model filling a
    gap from memory or from the schema's examples (`Paris` from "City name, e.g. Paris" for the city where
    a flight lands, an ISBN of zeros, "Tokyo" for "the capital of Japan, look it up first") instead of
    calling the tool that would look it up. Short codes and units (USD, km) are translations of the user's
    words, not guesses; strings that share a word stem with the conversation are respellings ("Lisboa")."""
    tool = tool_named(tools, call.name)
    allowed = _enum_values(tool.parameters) if tool is not None else set()
    numbers = {abs(number) for number in numbers_in(conversation_text)}
    stems = _word_stems(conversation_text)
    guessed: list[str | int | float] = []
    for value in _scalar_values(call.arguments):
        if value in allowed:
            continue
        if isinstance(value, str):
            if _CODE.fullmatch(value.strip()) or text_contains(conversation_text, value):
                continue
            if _word_stems(value) & stems:
                continue
        elif abs(float(value)) in numbers:
            continue
        guessed.append(value)
    return guessed


def mislabelled_values(call: ToolCall, question: str, tools: Sequence[ToolSpec]) -> list[str]:
    """The call's string values that the question labels as what another tool takes: "order X-00000"
    passed as a `tracking_number` when another tool takes an `order_id`. The label is the word just
    before the value in the question; it must match a parameter of another tool and none of this one's."""
    tool = tool_named(tools, call.name)
    if tool is None:
        return []
    others = [other for other in tools if other.name != call.name]
    mislabelled = []
    for value in _scalar_values(call.arguments):
        if not isinstance(value, str):
            continue
        label = _label_before(question, value)
        if label and not label & _parameter_stems(tool) and any(label & _parameter_stems(o) for o in others):
            mislabelled.append(value)
    return mislabelled


def named_tool(question: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The one tool the question names by two or more of its content words ("the shop", "prices" for a tool
    that searches the shop's catalogue with prices), when no other tool shares as many."""
    scores = sorted(((len(_shared_stems(question, tool)), tool.name) for tool in tools), reverse=True)
    if not scores or scores[0][0] < 2 or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return None
    return tool_named(tools, scores[0][1])


def copied_from_schema(value: str | int | float, tool: ToolSpec) -> bool:
    """Whether a value is written in the tool's own description or schema: an example copied as data."""
    text = json.dumps(tool.parameters, ensure_ascii=False) + "\n" + tool.description
    return isinstance(value, str) and text_contains(text, value)


def without_examples(tool: ToolSpec, values: Iterable[str | int | float]) -> ToolSpec:
    """The tool with these values and the phrase introducing them ("e.g. Paris") cut from its texts."""
    patterns = [
        re.compile(
            r"[,;]?\s*(?:\(?\s*(?:e\.g\.|for example|such as|like|ex\.)\s*,?\s*)?[\"']?"
            + re.escape(str(value))
            + r"[\"']?\)?",
            re.IGNORECASE,
        )
        for value in values
        if isinstance(value, str) and value.strip()
    ]

    def cut(text: str) -> str:
        for pattern in patterns:
            text = pattern.sub("", text)
        return text

    def cut_schema(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                key: cut(value)
                if key in ("description", "title") and isinstance(value, str)
                else cut_schema(value)
                for key, value in item.items()
            }
        if isinstance(item, list):
            return [cut_schema(value) for value in item]
        return item

    return tool.model_copy(
        update={"description": cut(tool.description), "parameters": cut_schema(tool.parameters)}
    )


def without_undeclared_arguments(call: ToolCall, tools: Sequence[ToolSpec]) -> ToolCall:
    """The call without keys its tool does not declare, when what is left fits the schema: the model
    copied part of the schema (`"required": [...]`) into its arguments."""
    tool = tool_named(tools, call.name)
    declared = tool.parameters.get("properties") if tool and isinstance(tool.parameters, dict) else None
    if not isinstance(declared, dict) or not declared or call.unparsed_arguments is not None:
        return call
    extra = set(call.arguments) - set(declared)
    if not extra:
        return call
    trimmed = call.model_copy(
        update={"arguments": {k: v for k, v in call.arguments.items() if k in declared}}
    )
    return trimmed if fits_schema(trimmed, tools) else call


def open_words(turn: ToolTurn, tools: Sequence[ToolSpec]) -> set[str]:
    """Stems of the question's content words that neither the tools called for it (their names,
    descriptions, parameters and arguments) nor their results hold: what the question may still ask for.
    Words that a code among the values abbreviates are held too ("kilometers" by `km`, "Nvidia" by `NVDA`,
    "Japanese yen" by `JPY`): the model translates the user's words into codes."""
    covered: set[str] = set()
    codes: set[str] = set()
    for exchange in turn.exchanges:
        spec = tool_named(tools, exchange.call.name)
        covered |= _word_stems(exchange.content)
        covered |= _word_stems(_tool_text(spec) if spec else exchange.call.name)
        arguments = list(_scalar_values(exchange.call.arguments))
        covered |= _word_stems(" ".join(str(value) for value in arguments))
        values = [*arguments, *_scalar_values(exchange.data)]
        codes |= {
            value.strip().lower()
            for value in values
            if isinstance(value, str) and _CODE_VALUE.fullmatch(value.strip())
        }
    abbreviated = {word[:5] for code in codes for word in _abbreviated_words(code, turn.question)}
    return _word_stems(turn.question) - covered - _FUNCTION_WORDS - abbreviated


def _abbreviated_words(code: str, text: str) -> list[str]:
    """The words of `text` that `code` abbreviates: the shortest run of one to three consecutive words
    ("japanese yen" for `jpy`) at each place where one fits."""
    words = [word.lower() for word in re.findall(r"[A-Za-z]+", text)]
    found: list[str] = []
    for start in range(len(words)):
        for size in (1, 2, 3):
            run = words[start : start + size]
            if len(run) == size and _abbreviates(code, "".join(run)):
                found += run
                break
    return found


def _abbreviates(code: str, word: str) -> bool:
    """Whether `code` is an abbreviation of `word`: the same first letter, then the code's letters in order
    ("km" of "kilometers", "nvda" of "nvidia"), a doubled letter read once."""
    code = re.sub(r"(.)\1+", r"\1", code)  # "aapl" of "apple"
    if len(code) < 2 or code[0] != word[0]:
        return False
    rest = iter(word[1:])
    return all(letter in rest for letter in code[1:])


def said_values(call: ToolCall, turn: ToolTurn) -> bool:
    """Whether every string value of the call was said: by the question (a code counts when it abbreviates
    a run of its words, `USD` for "US dollars"), by an earlier call or by a result. Codes otherwise pass as
    translations (see `guessed_values`); here they must be earned, since a model asked for a next step
    converts a listed price into euros nobody asked for."""
    results = (exchange.content.replace("_", " ") for exchange in turn.exchanges)
    known = "\n".join([_asked_and_passed(turn), *results])
    for value in _scalar_values(call.arguments):
        if not isinstance(value, str) or text_contains(known, value):
            continue
        code = value.strip().lower()
        if not (_CODE_VALUE.fullmatch(code) and _abbreviated_words(code, turn.question)):
            return False
    return True


def respelled_as_asked(call: ToolCall, question: str) -> ToolCall:
    """The call with each argument word that respells a word of the question ("Lisboa" for "Lisbon": the same
    first five letters, one letter more or less at most, neither a prefix of the other) written as the
    question wrote it. Measured on Qwen2.5-Coder-0.5B: it passes the local spelling of a city the user named,
    which the tool does not know. A word that only extends the question's ("Japan" for "Japanese") stays."""
    asked = {word.casefold(): word for word in re.findall(r"[^\W\d_]{5,}", question)}

    def respelled(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"[^\W\d_]{5,}", lambda match: _as_asked(match.group(), asked), value)
        if isinstance(value, dict):
            return {key: respelled(item) for key, item in value.items()}
        if isinstance(value, list):
            return [respelled(item) for item in value]
        return value

    arguments = respelled(call.arguments)
    return call if arguments == call.arguments else call.model_copy(update={"arguments": arguments})


def _as_asked(word: str, asked: dict[str, str]) -> str:
    folded = word.casefold()
    if folded in asked:
        return word
    for candidate, spelling in asked.items():
        if (
            candidate[:5] == folded[:5]
            and abs(len(candidate) - len(folded)) <= 1
            and not candidate.startswith(folded)
            and not folded.startswith(candidate)
        ):
            return spelling
    return word


def producer_of(
    call: ToolCall, guesses: Sequence[str | int | float], tools: Sequence[ToolSpec]
) -> ToolSpec | None:
    """The one other offered tool that gives what the call guessed: its name or description names the
    guessed parameter ("Look up a book by title: author, ISBN and year." for a guessed `isbn`) and it does
    not take that parameter itself. Measured on Qwen2.5-Coder-0.5B: asked whether a book by its title can be
    borrowed, it calls the availability check with an ISBN of zeros instead of looking the book up first."""
    parameters = [name for name, value in call.arguments.items() if value in guesses]
    wanted = _word_stems(" ".join(parameters)) - _FUNCTION_WORDS
    if not wanted:
        return None
    producers = [
        tool
        for tool in tools
        if tool.name != call.name
        and wanted <= _word_stems(f"{tool.name.replace('_', ' ')} {tool.description}")
        and not wanted & _parameter_stems(tool)
    ]
    return producers[0] if len(producers) == 1 else None


def retargeted(call: ToolCall, turn: ToolTurn, tools: Sequence[ToolSpec], words: set[str]) -> ToolCall | None:
    """An answered call asked again, pointed at the record the question is about: "the email of Priya
    Raman's manager" after `lookup_employee(name="Priya Raman")` returned `"manager": "Daniel Okafor"`
    becomes `lookup_employee(name="Daniel Okafor")`. The question must ask something of "A's K" ("... of
    A's K", "A's K's ...", "... of the K of A"), where A is one of the call's values and K a key of its
    result holding a string nobody said yet ("What is Priya Raman's manager?" follows nothing). On
    Qwen2.5-Coder-0.5B: it repeats the answered call word for word instead of following the reference.
    Not when an open word of the question (`words`) names another tool: that tool is the next step."""
    if any(words & _word_stems(_tool_text(tool)) for tool in tools if tool.name != call.name):
        return None
    exchange = next((item for item in turn.exchanges if call_key(item.call) == call_key(call)), None)
    if exchange is None or exchange.is_error or not isinstance(exchange.data, dict):
        return None
    known = _asked_and_passed(turn)
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
    if words & _word_stems(_tool_text(tool)):
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
    known = _asked_and_passed(turn)
    known_numbers = {abs(number) for number in numbers_in(known)}
    result_numbers = {abs(number) for number in numbers_in(results)}
    strings: list[str] = []
    numbers: list[float] = []
    for value in _scalar_values(call.arguments):
        if isinstance(value, str):
            if text_contains(results, value) and not text_contains(known, value):
                strings.append(value)
        elif abs(float(value)) in result_numbers and abs(float(value)) not in known_numbers:
            numbers.append(float(value))
    return strings, numbers


def mentions_tool(question: str, tool: ToolSpec) -> bool:
    """Whether the question shares a content word (4+ letters, compared by its first 5) with the tool's
    name, description or parameter names: "weather" in "What's the weather in the capital of Japan?"."""
    return bool(_shared_stems(question, tool))


def _shared_stems(question: str, tool: ToolSpec) -> set[str]:
    """The question's content-word stems that the tool's name, description or parameter names hold."""
    return (_word_stems(question) - _FUNCTION_WORDS) & _word_stems(_tool_text(tool))


def _tool_text(tool: ToolSpec) -> str:
    parameters = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    return " ".join([tool.name.replace("_", " "), tool.description, *map(str, parameters)])


def _parameter_stems(tool: ToolSpec) -> set[str]:
    """Stems of a tool's parameter names and descriptions: what its arguments are called."""
    properties = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    if not isinstance(properties, dict):
        return set()
    texts = [
        f"{name} {spec.get('description', '') if isinstance(spec, dict) else ''}"
        for name, spec in properties.items()
    ]
    return _word_stems(" ".join(texts))


def _label_before(question: str, value: str) -> set[str]:
    """The stem of the content word just before `value` in the question ("order" in "my order X-00000")."""
    at = question.casefold().find(value.casefold())
    if at <= 0:
        return set()
    words = re.findall(r"[A-Za-z]+", question[:at])
    while words and words[-1].casefold() in (
        "the",
        "a",
        "an",
        "my",
        "our",
        "your",
        "his",
        "her",
        "their",
        "number",
        "no",
    ):
        words.pop()
    return _word_stems(words[-1]) - _FUNCTION_WORDS if words else set()


def _enum_values(schema: Any) -> set[Any]:
    """Every value a schema lists in an `enum` or `const`, at any depth."""
    values: set[Any] = set()
    if isinstance(schema, dict):
        for key, item in schema.items():
            if key == "enum" and isinstance(item, list):
                values.update(value for value in item if isinstance(value, str | int | float))
            elif key == "const" and isinstance(item, str | int | float):
                values.add(item)
            else:
                values |= _enum_values(item)
    elif isinstance(schema, list):
        for item in schema:
            values |= _enum_values(item)
    return values


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


_CODE = re.compile(r"[A-Z]{2,4}|[a-z]{1,3}")
"""A code or unit (USD, EUR, km, lb): what a model translates the user's words into."""
_CODE_VALUE = re.compile(r"[A-Za-z]{2,4}")
"""A value that may be a code of either case: what `_abbreviates` compares with the question's words."""
_ASKING_WORDS = (
    "what which where when whose does have right first look tell please about there their from with "
    "this that these those into much many some show give find know want would could should then also"
)
_FUNCTION_WORDS = frozenset(word[:5] for word in _ASKING_WORDS.split())
"""Stems of words that ask rather than name a thing: a tool "Where a parcel is now" is not about every
question that starts with "Where"."""


def _word_stems(text: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|_", " ", text)
    return {word[:5] for word in re.findall(r"[a-z]{4,}", spaced.lower())}


def _asked_and_passed(turn: ToolTurn) -> str:
    """The question and the arguments of every call made for it: what was known before the results."""
    return "\n".join([turn.question, *(exchange.call.arguments_json() for exchange in turn.exchanges)])


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
