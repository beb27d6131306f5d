"""The verdict of one case: the calls must be the expected ones, in order, never repeated after their result;
the answer must be prose that states every expected value, and after a tool error it must say that the tool
failed and state no number that neither the question nor a tool gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fncall.evals.grounding.cases import ExpectedCall, GroundingCase
from fncall.evals.grounding.matching import (
    argument_matches,
    contains_call_object,
    contains_json_object,
    contains_value,
    invented_numbers,
    is_json_only,
    mentions_failure,
)
from fncall.evals.grounding.results import MadeCall, Transcript


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)


def score_case(case: GroundingCase, transcript: Transcript) -> Verdict:
    """Whether the target handled `case` right, and every reason it did not."""
    reasons: list[str] = []
    if transcript.error:
        reasons.append(f"error: {transcript.error}")
    reasons.extend(_call_problems(case, transcript.calls))
    if transcript.answer is None:
        if not transcript.error:
            reasons.append("no final answer")
    else:
        reasons.extend(_answer_problems(case, transcript))
    return Verdict(passed=not reasons, reasons=reasons)


def call_matches(expected: ExpectedCall, made: MadeCall) -> bool:
    """Same tool, and every argument the case pins has the expected value."""
    if made.name != expected.name or made.unparsed_arguments is not None:
        return False
    return all(
        key in made.arguments and argument_matches(value, made.arguments[key])
        for key, value in expected.arguments.items()
    )


def _call_problems(case: GroundingCase, calls: list[MadeCall]) -> list[str]:
    problems = [f"repeated {_describe(call)} after its result" for call in _repeated_after_result(calls)]
    if not case.expected_calls:
        if calls:
            problems.append(f"called {', '.join(_describe(c) for c in calls)} although no offered tool fits")
        return problems
    right = len(calls) == len(case.expected_calls) and all(
        call_matches(expected, made) for expected, made in zip(case.expected_calls, calls, strict=True)
    )
    if not right:
        wanted = ", ".join(_describe_expected(expected) for expected in case.expected_calls)
        made = ", ".join(_describe(call) for call in calls) or "no call"
        problems.append(f"expected {wanted}; made {made}")
    return problems


def _repeated_after_result(calls: list[MadeCall]) -> list[MadeCall]:
    """Calls identical to one made in an earlier round, whose result the model had already seen."""
    first_round: dict[str, int] = {}
    repeated: list[MadeCall] = []
    for call in calls:
        signature = call.signature()
        if signature in first_round and first_round[signature] < call.round:
            repeated.append(call)
        first_round.setdefault(signature, call.round)
    return repeated


def _answer_problems(case: GroundingCase, transcript: Transcript) -> list[str]:
    answer = transcript.answer or ""
    if not answer.strip():
        return ["empty answer"]
    if is_json_only(answer):
        return ["the answer is only JSON"]
    problems: list[str] = []
    if contains_call_object(answer):
        problems.append("the answer contains a call object")
    elif contains_json_object(answer):
        problems.append("the answer contains a JSON object (an echoed result)")
    missing = [value for value in case.expected_values if not contains_value(answer, value)]
    if missing:
        problems.append("the answer lacks " + ", ".join(_describe_value(value) for value in missing))
    if case.category == "tool_error":
        if not mentions_failure(answer):
            problems.append("the answer does not say that the tool failed")
        sources = [case.question, *(call.result for call in transcript.calls)]
        invented = invented_numbers(answer, sources)
        if invented:
            problems.append("the answer states values no tool returned: " + ", ".join(invented))
    return problems


def _describe(call: MadeCall) -> str:
    arguments = call.unparsed_arguments or json.dumps(call.arguments, ensure_ascii=False)
    return f"{call.name}({arguments})"


def _describe_expected(expected: ExpectedCall) -> str:
    return f"{expected.name}({json.dumps(expected.arguments, ensure_ascii=False)})"


def _describe_value(value: str | tuple[str, ...]) -> str:
    return repr(value) if isinstance(value, str) else " or ".join(repr(v) for v in value)
