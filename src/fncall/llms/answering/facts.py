"""The values a tool result holds, whether an answer states them, and a sentence that adds those it left out.

A small model answering from a result drops or rounds values ("about 132" for 131.95) often enough that an
answer is checked, not trusted: every number and short string of the result must appear in it, exactly.
What the model already knew (the call's own arguments, the question's words) need not be repeated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fncall.llms.answering.tool_turn import ToolExchange

LIST_HEAD = 5
"""How many items of a long list an answer must name (and then give the count)."""
_MAX_FACT_CHARS = 80
_MAX_PLAIN_FACT_WORDS = 4
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_FAILURE = re.compile(
    r"\b(fail\w*|error\w*|could ?n[o']t|cannot|can't|unable|not found|unknown|no such|invalid|"
    r"unsupported|unavailable|not available|does ?n[o']t exist|sorry|unfortunately)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Fact:
    """One value of a result. `label` says where it sits (its key, in words); `owner` names the list item
    it belongs to when the result is a list of records, so a repair sentence can say whose value it is."""

    value: str | int | float
    label: str = ""
    owner: str = ""

    @property
    def text(self) -> str:
        return _number_text(self.value) if isinstance(self.value, int | float) else self.value


def result_facts(exchange: ToolExchange, known_text: str = "") -> list[Fact]:
    """The values an answer from this result must state: numbers and short strings, the first LIST_HEAD
    items of a long list and its size, leaving out the call's own arguments and values in `known_text`."""
    data = exchange.data
    if data is None:
        facts = _plain_text_facts(exchange.content)
    else:
        facts = list(_walk(data, label="", owner=""))
        size = list_size(data)
        if size is not None and size > LIST_HEAD:
            facts.append(Fact(size, "items in total"))
    known = _known_values(exchange.call.arguments, known_text)
    unique: dict[str, Fact] = {}
    for fact in facts:
        key = _normalized_text(fact.text)
        if key and key not in unique and not _is_known(fact, known):
            unique[key] = fact
    return list(unique.values())


def list_size(data: Any) -> int | None:
    """The number of items of a result that is a list, or a record whose one list is the payload."""
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return len(lists[0])
    return None


def missing_facts(answer: str, facts: Iterable[Fact]) -> list[Fact]:
    """The facts `answer` does not state exactly."""
    return [fact for fact in facts if not is_stated(fact, answer)]


def is_stated(fact: Fact, answer: str) -> bool:
    """Whether `answer` states the value: a number equal to it (1,500 and 1500.0 count for 1500; 132 does
    not count for 131.95; a sign may be written as a word), or the string, ignoring case and punctuation."""
    if isinstance(fact.value, bool):
        return True
    if isinstance(fact.value, int | float):
        target = float(fact.value)
        return any(abs(found) == abs(target) for found in numbers_in(answer))
    return text_contains(answer, fact.value)


def text_contains(text: str, value: str) -> bool:
    """Whether `value` appears in `text` as whole words, ignoring case and punctuation."""
    needle = _normalized_text(value)
    return bool(needle) and f" {needle} " in f" {_normalized_text(text)} "


def repair_sentence(missing: Sequence[Fact]) -> str:
    """One sentence that states the missing values with the result's own labels."""
    parts = []
    for fact in missing:
        owner = fact.owner if fact.owner != fact.text else ""
        label = f"{owner} {fact.label}".strip()
        parts.append(f"{label}: {fact.text}" if label else fact.text)
    return f"From the result: {'; '.join(parts)}."


def states_failure(answer: str) -> bool:
    """Whether an answer says that something failed (what an answer after a tool error must do)."""
    return bool(_FAILURE.search(answer))


def invented_numbers(answer: str, known_text: str) -> list[float]:
    """Numbers in `answer` that appear nowhere in `known_text` (the question, the calls, the results)."""
    known = {abs(value) for value in numbers_in(known_text)}
    return [value for value in numbers_in(answer) if abs(value) not in known]


def numbers_in(text: str) -> list[float]:
    """The numbers written in `text` (thousands separators allowed)."""
    return [float(match.group().replace(",", "")) for match in _NUMBER.finditer(text)]


# ------------------------------------------------------------------------------------------ helpers


def _walk(value: Any, *, label: str, owner: str) -> Iterable[Fact]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield Fact(value, label, owner)
    elif isinstance(value, str):
        if 0 < len(value.strip()) <= _MAX_FACT_CHARS:
            yield Fact(value.strip(), label, owner)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, label=_words(str(key)), owner=owner)
    elif isinstance(value, list):
        for item in value[:LIST_HEAD]:
            yield from _walk(item, label="" if isinstance(item, dict) else label, owner=_item_name(item))


def _item_name(item: Any) -> str:
    """A list record's first short string value, which usually names it (a flight number, a city)."""
    if isinstance(item, dict):
        for value in item.values():
            if isinstance(value, str) and 0 < len(value) <= _MAX_FACT_CHARS:
                return value
    return ""


def _plain_text_facts(text: str) -> list[Fact]:
    stripped = text.strip()
    if 0 < len(stripped) <= _MAX_FACT_CHARS and len(stripped.split()) <= _MAX_PLAIN_FACT_WORDS:
        return [Fact(stripped)]
    return [Fact(int(value) if value.is_integer() else value) for value in numbers_in(stripped)]


def _known_values(arguments: dict[str, Any], known_text: str) -> tuple[set[str], set[float], str]:
    strings: set[str] = set()
    numbers: set[float] = set()
    stack: list[Any] = [arguments]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers.add(abs(float(value)))
        elif isinstance(value, str):
            strings.add(_normalized_text(value))
    return strings, numbers, f" {_normalized_text(known_text)} "


def _is_known(fact: Fact, known: tuple[set[str], set[float], str]) -> bool:
    strings, numbers, text = known
    if isinstance(fact.value, int | float):
        return abs(float(fact.value)) in numbers
    normalized = _normalized_text(fact.value)
    return normalized in strings or f" {normalized} " in text


def _normalized_text(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: "Light-Snow!" and "light snow" compare equal."""
    return " ".join(re.sub(r"[^\w.]+|(?<!\d)\.|\.(?!\d)", " ", text.casefold()).split())


def _number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _words(key: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key)).split()).lower()
