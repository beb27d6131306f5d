"""Scoring a model's calls on a BFCL case with BFCL's own rules: its AST checker for the call categories,
its empty-output test for (ir)relevance.

BFCL scores function-calling models on their decoded calls, a list of `{name: {param: value}}`. A call
whose arguments are not a JSON object makes BFCL's decoder fail: the case is wrong where calls are
expected and counts as "no call" for irrelevance, exactly as in BFCL.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fncall.evals.bfcl.conversion import ToolNames
from fncall.evals.bfcl.data import BfclCase
from fncall.evals.bfcl.package import CHECKER_MODEL_NAME, bfcl_package
from fncall.types import ToolCall

DecodedCalls = list[dict[str, dict[str, Any]]]

NO_CALL_ERROR = "ast_decoder:decoder_failed"
IRRELEVANCE_ERROR = "irrelevance_error:decoder_success"
RELEVANCE_ERROR = "relevance_error:decoder_failed"
CHECKER_CRASH_ERROR = "checker:exception"


@dataclass(frozen=True)
class CaseScore:
    """Whether a case was answered right and, when not, BFCL's error type and messages."""

    valid: bool
    error_type: str | None = None
    errors: list[str] = field(default_factory=list)


def decode_calls(calls: Sequence[ToolCall], names: ToolNames) -> DecodedCalls | None:
    """The calls in BFCL's decoded form under their original names; None when one could not be decoded."""
    decoded: DecodedCalls = []
    for call in calls:
        if call.unparsed_arguments is not None:
            return None
        decoded.append({names.original(call.name): dict(call.arguments)})
    return decoded


def score_case(case: BfclCase, decoded: DecodedCalls | None) -> CaseScore:
    """Score the decoded calls (None: undecodable) of one case by BFCL's rules for its category."""
    package = bfcl_package()
    has_call = decoded is not None and not package.is_empty_output(decoded)
    if case.expectation == "no_call":
        if has_call:
            return CaseScore(False, IRRELEVANCE_ERROR, ["The model called a function where none fits."])
        return CaseScore(True)
    if case.expectation == "any_call":
        if has_call:
            return CaseScore(True)
        return CaseScore(False, RELEVANCE_ERROR, ["The model made no function call where one fits."])
    if decoded is None:
        return CaseScore(False, NO_CALL_ERROR, ["A call's arguments were not a JSON object."])
    if not decoded:
        return CaseScore(False, NO_CALL_ERROR, ["The model made no function call."])
    try:
        verdict = package.ast_checker(
            copy.deepcopy(case.functions),
            copy.deepcopy(decoded),
            copy.deepcopy(case.ground_truth),
            package.python_language,
            case.category,
            CHECKER_MODEL_NAME,
        )
    except Exception as error:  # the checker assumes well-typed output; a crash is a wrong answer
        return CaseScore(False, CHECKER_CRASH_ERROR, [f"BFCL's checker failed on this output: {error!r}"])
    if verdict["valid"]:
        return CaseScore(True)
    return CaseScore(False, verdict.get("error_type"), [str(item) for item in verdict.get("error", [])])
