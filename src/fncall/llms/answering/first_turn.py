"""Checks of a first call, made before any result: is it a guess, does it carry a copied example, a value
labelled as another tool's, keys the schema does not declare, a respelled word of the question?

Measured on Qwen2.5-Coder-0.5B: it fills gaps from memory or from the schema's examples (`Paris` from "City
name, e.g. Paris", an ISBN of zeros, "Tokyo" for "the capital of Japan, look it up first") instead of calling
the tool that would look the value up, and it passes the local spelling of a city the user named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fncall.llms.answering.calls import fits_schema, tool_named
from fncall.llms.answering.facts import numbers_in, text_contains
from fncall.llms.answering.words import (
    CODE,
    FUNCTION_WORDS,
    enum_values,
    label_before,
    parameter_stems,
    scalar_values,
    shared_stems,
    word_stems,
)
from fncall.types import ToolCall, ToolSpec


def is_grounded(call: ToolCall, conversation_text: str) -> bool:
    """Whether at least one argument value comes from the conversation (the user's words or a result).

    A call none of whose values was ever mentioned is a guess, not a use of the question: the model was
    asked something no tool fits. Strings also match by a shared word stem, since models normalise what
    they pass on ("Lisboa" for "Lisbon"). A call without arguments cannot be judged.
    """
    values = list(scalar_values(call.arguments))
    if not values:
        return True
    numbers = {abs(number) for number in numbers_in(conversation_text)}
    stems = word_stems(conversation_text)
    for value in values:
        if isinstance(value, str) and (text_contains(conversation_text, value) or word_stems(value) & stems):
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
    allowed = enum_values(tool.parameters) if tool is not None else set()
    numbers = {abs(number) for number in numbers_in(conversation_text)}
    stems = word_stems(conversation_text)
    guessed: list[str | int | float] = []
    for value in scalar_values(call.arguments):
        if value in allowed:
            continue
        if isinstance(value, str):
            if CODE.fullmatch(value.strip()) or text_contains(conversation_text, value):
                continue
            if word_stems(value) & stems:
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
    for value in scalar_values(call.arguments):
        if not isinstance(value, str):
            continue
        label = label_before(question, value)
        if label and not label & parameter_stems(tool) and any(label & parameter_stems(o) for o in others):
            mislabelled.append(value)
    return mislabelled


def named_tool(question: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The one tool the question names by two or more of its content words ("the shop", "prices" for a tool
    that searches the shop's catalogue with prices), when no other tool shares as many."""
    scores = sorted(((len(shared_stems(question, tool)), tool.name) for tool in tools), reverse=True)
    if not scores or scores[0][0] < 2 or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return None
    return tool_named(tools, scores[0][1])


def described_tool(text: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The one offered tool a prose reply names as an identifier ("you can call the `track_package`
    function"): the model described the call instead of making it. A name counts where it is quoted or
    where it cannot be an ordinary word (an underscore, a dot, a digit, an inner capital)."""
    named = [
        tool for tool in tools if any(_as_identifier(text, match) for match in _name_matches(text, tool.name))
    ]
    return named[0] if len(named) == 1 else None


def _name_matches(text: str, name: str) -> list[re.Match[str]]:
    return list(re.finditer(r"(?<![\w.])" + re.escape(name) + r"(?![\w])", text)) if name else []


def _as_identifier(text: str, match: re.Match[str]) -> bool:
    name = match.group(0)
    if re.search(r"[_.\d]|[a-z][A-Z]", name):
        return True
    before, after = text[match.start() - 1 : match.start()], text[match.end() : match.end() + 1]
    return bool(before) and before == after and before in "`'\""


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
    wanted = word_stems(" ".join(parameters)) - FUNCTION_WORDS
    if not wanted:
        return None
    producers = [
        tool
        for tool in tools
        if tool.name != call.name
        and wanted <= word_stems(f"{tool.name.replace('_', ' ')} {tool.description}")
        and not wanted & parameter_stems(tool)
    ]
    return producers[0] if len(producers) == 1 else None
