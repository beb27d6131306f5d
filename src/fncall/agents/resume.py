"""What a caller submits to continue a paused run, checked before anything runs.

Every pending call needs exactly one answer: an `ApprovalDecision` (or a plain bool) for a call that waits
for approval, a result for a client-side call. Anything missing, misplaced or aimed at an unknown call id is
an `InvalidRequestError` naming the call and the field (`approvals` or `tool_results`), so an HTTP layer can
answer 400 without the run having moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from fncall.agents.result import PendingCall
from fncall.errors import InvalidRequestError
from fncall.tools import ToolRegistry
from fncall.types import ToolCall, ToolResult

REJECTED_CALL = "The user rejected this call: {reason}"
REJECTED_CALL_WITHOUT_REASON = "The user rejected this call."
REJECTED_ERROR_KIND = "rejected"


class ApprovalDecision(BaseModel):
    """A human's answer to a call that waits for approval. `arguments` replaces the model's arguments when
    the user edited them; they are checked against the tool's schema before the call runs."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    reason: str | None = None
    arguments: dict[str, Any] | None = None


@dataclass(frozen=True)
class Resolution:
    """How one pending call is answered: `run` it (through the executor, arguments possibly edited), or
    answer it with `result` (a rejection or the client's result)."""

    call: ToolCall
    action: Literal["run", "rejected", "client_result"]
    result: ToolResult | None = None


def resolve_pending(
    pending: Sequence[PendingCall],
    tools: ToolRegistry,
    approvals: Mapping[str, bool | ApprovalDecision],
    tool_results: Mapping[str, str | ToolResult],
) -> list[Resolution]:
    """One Resolution per pending call, in the order of `pending`; raises InvalidRequestError first."""
    by_id = {item.call.id: item for item in pending}
    _check_known_ids(by_id, approvals, "approvals", "approval")
    _check_known_ids(by_id, tool_results, "tool_results", "client_side")
    missing_approvals = [i.call for i in pending if i.reason == "approval" and i.call.id not in approvals]
    missing_results = [i.call for i in pending if i.reason == "client_side" and i.call.id not in tool_results]
    if missing_approvals:
        raise InvalidRequestError(
            f"No decision for {_describe_calls(missing_approvals)}: approve or reject every call that waits "
            "for approval.",
            param="approvals",
        )
    if missing_results:
        raise InvalidRequestError(
            f"No result for {_describe_calls(missing_results)}: submit the result of every client-side call.",
            param="tool_results",
        )
    resolutions: list[Resolution] = []
    for item in pending:
        if item.reason == "approval":
            resolutions.append(_decide(item.call, approvals[item.call.id], tools))
        else:
            resolutions.append(_client_result(item.call, tool_results[item.call.id]))
    return resolutions


def _check_known_ids(
    by_id: Mapping[str, PendingCall], answers: Mapping[str, Any], param: str, expected: str
) -> None:
    for call_id in answers:
        item = by_id.get(call_id)
        if item is None:
            waiting = ", ".join(repr(known) for known in by_id) or "none"
            raise InvalidRequestError(
                f"No pending call has the id {call_id!r}; the calls waiting are: {waiting}.", param=param
            )
        if item.reason != expected:
            where = "approvals" if item.reason == "approval" else "tool_results"
            raise InvalidRequestError(
                f"The call {call_id!r} ({item.call.name}) waits for "
                f"{'approval' if item.reason == 'approval' else 'a client-side result'}: answer it in "
                f"{where}, not in {param}.",
                param=param,
            )


def _decide(call: ToolCall, answer: bool | ApprovalDecision, tools: ToolRegistry) -> Resolution:
    if isinstance(answer, bool):
        decision = ApprovalDecision(approved=answer)
    elif isinstance(answer, ApprovalDecision):
        decision = answer
    else:
        raise InvalidRequestError(
            f"The decision for call {call.id!r} must be true, false or an ApprovalDecision, "
            f"not {type(answer).__name__}.",
            param="approvals",
        )
    if not decision.approved:
        reason = (decision.reason or "").strip()
        content = REJECTED_CALL.format(reason=reason) if reason else REJECTED_CALL_WITHOUT_REASON
        result = ToolResult(
            call_id=call.id,
            name=call.name,
            content=content,
            is_error=True,
            data={"error_kind": REJECTED_ERROR_KIND},
        )
        return Resolution(call=call, action="rejected", result=result)
    if decision.arguments is None:
        return Resolution(call=call, action="run")
    selected = tools.get(call.name)
    problems = selected.argument_errors(decision.arguments) if selected is not None else []
    if problems:
        raise InvalidRequestError(
            f"The edited arguments of call {call.id!r} ({call.name}) do not fit the tool's schema: "
            + "; ".join(problems),
            param="approvals",
        )
    edited = call.model_copy(update={"arguments": dict(decision.arguments), "unparsed_arguments": None})
    return Resolution(call=edited, action="run")


def _client_result(call: ToolCall, answer: str | ToolResult) -> Resolution:
    if isinstance(answer, str):
        result = ToolResult(call_id=call.id, name=call.name, content=answer)
    elif isinstance(answer, ToolResult):
        result = answer.model_copy(update={"call_id": call.id, "name": call.name})
    else:
        raise InvalidRequestError(
            f"The result of call {call.id!r} must be a string or a ToolResult, not {type(answer).__name__}.",
            param="tool_results",
        )
    return Resolution(call=call, action="client_result", result=result)


def _describe_calls(calls: Sequence[ToolCall]) -> str:
    listed = ", ".join(f"{call.id!r} ({call.name})" for call in calls)
    return f"the call {listed}" if len(calls) == 1 else f"the calls {listed}"


__all__ = ["ApprovalDecision", "Resolution", "resolve_pending"]
