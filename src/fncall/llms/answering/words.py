"""The vocabulary the answer policy compares calls with: content-word stems, codes and the words they
abbreviate, the scalar values inside arguments and results, and what a tool's texts are about.

Words are compared by their first five letters ("weather" and "weathers", "Lisbon" and "Lisboa"), which is
crude on purpose: the checks built on it must hold for any tool and any question, not for a vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fncall.llms.answering.tool_turn import ToolTurn, parse_json
from fncall.types import ToolCall, ToolSpec

CODE = re.compile(r"[A-Z]{2,4}|[a-z]{1,3}")
"""A code or unit (USD, EUR, km, lb): what a model translates the user's words into."""


CODE_VALUE = re.compile(r"[A-Za-z]{2,4}")
"""A value that may be a code of either case: what `abbreviates` compares with the question's words."""


_ASKING_WORDS = (
    "what which where when whose does have right first look tell please about there their from with "
    "this that these those into much many some show give find know want would could should then also"
)


FUNCTION_WORDS = frozenset(word[:5] for word in _ASKING_WORDS.split())
"""Stems of words that ask rather than name a thing: a tool "Where a parcel is now" is not about every
question that starts with "Where"."""


def word_stems(text: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|_", " ", text)
    return {word[:5] for word in re.findall(r"[a-z]{4,}", spaced.lower())}


def shared_stems(question: str, tool: ToolSpec) -> set[str]:
    """The question's content-word stems that the tool's name, description or parameter names hold."""
    return (word_stems(question) - FUNCTION_WORDS) & word_stems(tool_text(tool))


def tool_text(tool: ToolSpec) -> str:
    parameters = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    return " ".join([tool.name.replace("_", " "), tool.description, *map(str, parameters)])


def parameter_stems(tool: ToolSpec) -> set[str]:
    """Stems of a tool's parameter names and descriptions: what its arguments are called."""
    properties = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    if not isinstance(properties, dict):
        return set()
    texts = [
        f"{name} {spec.get('description', '') if isinstance(spec, dict) else ''}"
        for name, spec in properties.items()
    ]
    return word_stems(" ".join(texts))


def label_before(question: str, value: str) -> set[str]:
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
    return word_stems(words[-1]) - FUNCTION_WORDS if words else set()


def enum_values(schema: Any) -> set[Any]:
    """Every value a schema lists in an `enum` or `const`, at any depth."""
    values: set[Any] = set()
    if isinstance(schema, dict):
        for key, item in schema.items():
            if key == "enum" and isinstance(item, list):
                values.update(value for value in item if isinstance(value, str | int | float))
            elif key == "const" and isinstance(item, str | int | float):
                values.add(item)
            else:
                values |= enum_values(item)
    elif isinstance(schema, list):
        for item in schema:
            values |= enum_values(item)
    return values


def abbreviated_words(code: str, text: str) -> list[str]:
    """The words of `text` that `code` abbreviates: the shortest run of one to three consecutive words
    ("japanese yen" for `jpy`) at each place where one fits."""
    words = [word.lower() for word in re.findall(r"[A-Za-z]+", text)]
    found: list[str] = []
    for start in range(len(words)):
        for size in (1, 2, 3):
            run = words[start : start + size]
            if len(run) == size and abbreviates(code, "".join(run)):
                found += run
                break
    return found


def abbreviates(code: str, word: str) -> bool:
    """Whether `code` is an abbreviation of `word`: the same first letter, then the code's letters in order
    ("km" of "kilometers", "nvda" of "nvidia"), a doubled letter read once."""
    code = re.sub(r"(.)\1+", r"\1", code)  # "aapl" of "apple"
    if len(code) < 2 or code[0] != word[0]:
        return False
    rest = iter(word[1:])
    return all(letter in rest for letter in code[1:])


def asked_and_passed(turn: ToolTurn) -> str:
    """The question and the arguments of every call made for it: what was known before the results."""
    return "\n".join([turn.question, *(exchange.call.arguments_json() for exchange in turn.exchanges)])


def argument_numbers(call: ToolCall) -> set[float]:
    return {abs(float(value)) for value in scalar_values(call.arguments) if isinstance(value, int | float)}


def scalar_values(value: Any) -> Iterable[str | int | float]:
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
            yield from scalar_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from scalar_values(item)
