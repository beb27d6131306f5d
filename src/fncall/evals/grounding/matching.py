"""How an answer's text is compared with what the tools returned: values, JSON echoes, failure reports.

Numbers are compared by value, not by spelling: 131.95 matches "131.95", "131.950" and "$131.95" but not
"132", and 1500 matches "1,500". Signs are ignored because answers state them in words ("down 1.32%").
Other values match as whole words, case-insensitively, with whitespace and quote marks normalised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from fncall.evals.grounding.cases import ExpectedValue

_NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\d)")
_PLAIN_NUMBER = re.compile(r"^[-+]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?$")
_FENCED = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(?P<body>.*?)\n?```$", re.DOTALL)
_CALL_OBJECT = re.compile(
    r"""\{\s*["'](?:name|function|tool|tool_name|arguments|parameters)["']\s*:|<tool_call>|"arguments"\s*:"""
)
_JSON_OBJECT = re.compile(r"""\{\s*"[^"\n]{1,80}"\s*:""")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})

FAILURE_WORDS = (
    "error",
    "errors",
    "fail",
    "failed",
    "fails",
    "failure",
    "unable",
    "not able",
    "could not",
    "couldn't",
    "cannot",
    "can't",
    "not found",
    "no record",
    "unknown",
    "unavailable",
    "not available",
    "invalid",
    "not recognized",
    "not recognised",
    "unsupported",
    "not supported",
    "does not exist",
    "doesn't exist",
    "no data",
    "no information",
    "timed out",
    "sorry",
    "unfortunately",
)
_FAILURE = re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(word) for word in FAILURE_WORDS) + r")(?![a-z])")


def normalise(text: str) -> str:
    """Lower case, straight quotes, single spaces: the form both sides are compared in."""
    return " ".join(text.translate(_QUOTES).casefold().split())


def numbers_in(text: str) -> list[Decimal]:
    """Every number written in `text` (thousands separators allowed), as magnitudes."""
    return [Decimal(whole.replace(",", "") + (fraction or "")) for whole, fraction in _NUMBER.findall(text)]


def as_number(value: Any) -> Decimal | None:
    """The value as a number when it is one or is written as one ("1,500", "131.95"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str) and _PLAIN_NUMBER.match(value.strip()):
        try:
            return Decimal(value.strip().replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
            return None
    return None


def contains_value(answer: str, expected: ExpectedValue) -> bool:
    """Whether the answer states `expected` (or one of its alternatives)."""
    alternatives = expected if isinstance(expected, tuple) else (expected,)
    return any(_contains_one(answer, alternative) for alternative in alternatives)


def _contains_one(answer: str, expected: str) -> bool:
    number = as_number(expected)
    if number is not None:
        return abs(number) in numbers_in(answer)
    needle = normalise(expected)
    if not needle:
        return True
    before = r"(?<![a-z0-9])" if needle[0].isalnum() else ""
    after = r"(?![a-z0-9])" if needle[-1].isalnum() else ""
    return re.search(before + re.escape(needle) + after, normalise(answer)) is not None


def argument_matches(expected: Any, actual: Any) -> bool:
    """Whether a call's argument value is the expected one: numbers by value, strings case- and
    whitespace-insensitively, a tuple of alternatives when any of them matches."""
    if isinstance(expected, tuple):
        return any(argument_matches(alternative, actual) for alternative in expected)
    expected_number = as_number(expected) if not isinstance(expected, str) else None
    if expected_number is not None:
        actual_number = as_number(actual)
        return actual_number is not None and actual_number == expected_number
    if isinstance(expected, str):
        return isinstance(actual, str) and normalise(expected) == normalise(actual)
    return bool(expected == actual)


def is_json_only(answer: str) -> bool:
    """True when the whole answer (fenced or not) is a JSON object or array instead of prose."""
    text = answer.strip()
    fenced = _FENCED.match(text)
    if fenced:
        text = fenced.group("body").strip()
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return False
    return isinstance(value, dict | list)


def contains_call_object(answer: str) -> bool:
    """True when the answer holds a tool-call object (`{"name": ...}`, `"arguments":`, `<tool_call>`)."""
    return _CALL_OBJECT.search(answer) is not None


def contains_json_object(answer: str) -> bool:
    """True when the answer holds a JSON object, e.g. an echoed tool result."""
    return _JSON_OBJECT.search(answer) is not None


def mentions_failure(answer: str) -> bool:
    """True when the answer says something failed (error, could not, not found, unknown ...)."""
    return _FAILURE.search(normalise(answer)) is not None


def invented_numbers(answer: str, sources: Iterable[str]) -> list[str]:
    """Numbers the answer states that appear in none of `sources` (the question, the tool results)."""
    known = {number for source in sources for number in numbers_in(source)}
    invented = [number for number in numbers_in(answer) if number not in known]
    return [str(number) for number in dict.fromkeys(invented)]
