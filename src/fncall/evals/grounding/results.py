"""What one case run leaves behind: the calls the model made, the answer, and the verdict.

Pydantic models, so the report can write every case as JSON without a conversion layer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field


class MadeCall(BaseModel):
    """A call the model made, in which round, and what the fake tool answered."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    unparsed_arguments: str | None = None
    round: int
    result: str = ""
    is_error: bool = False

    def signature(self) -> str:
        """The same call twice has the same signature (name and canonical arguments)."""
        if self.unparsed_arguments is not None:
            return f"{self.name}:{self.unparsed_arguments}"
        return f"{self.name}:{json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)}"


class Transcript(BaseModel):
    """How a target handled one case: its calls, its final answer (None when it gave none) and the time."""

    calls: list[MadeCall] = Field(default_factory=list)
    answer: str | None = None
    rounds: int = 0
    seconds: float = 0.0
    error: str | None = None
    """Why the case could not finish (an HTTP error, no answer within the rounds allowed)."""


class CaseResult(BaseModel):
    """One case on one target, scored."""

    target: str
    case_id: str
    category: str
    question: str
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    """Why it failed; empty when it passed."""
    calls: list[MadeCall] = Field(default_factory=list)
    answer: str | None = None
    seconds: float
    error: str | None = None


class TargetRun(BaseModel):
    """Every case of one target, or why the target could not run at all."""

    name: str
    description: str
    results: list[CaseResult] = Field(default_factory=list)
    unavailable: str | None = None
    load_before: float | None = None
    load_after: float | None = None
    """The machine's 1-minute load average before and after the target ran: timings on a shared CPU."""
