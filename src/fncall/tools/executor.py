"""`ToolExecutor`: runs a model's tool calls and turns every outcome into a ToolResult the model can read.

A bad call never raises: an unknown tool, arguments that are not JSON or break the schema, an exception in
the tool and a timeout each become `ToolResult(is_error=True)` whose content says what to fix. Only the
cancellation of the run itself propagates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic_core import to_jsonable_python

from fncall.tools.errors import InvalidToolArgumentsError, ToolError
from fncall.tools.function_tool import Tool
from fncall.tools.registry import ToolRegistry
from fncall.types import ToolCall, ToolResult

_QUOTED_ARGUMENTS_CHARS = 200


class ToolErrorKind(StrEnum):
    """Why a call failed; error results carry it as `data["error_kind"]` for runners and traces."""

    UNKNOWN_TOOL = "unknown_tool"
    INVALID_JSON = "invalid_json"
    INVALID_ARGUMENTS = "invalid_arguments"
    TOOL_EXCEPTION = "tool_exception"
    TIMEOUT = "timeout"
    CLIENT_SIDE = "client_side"


class ToolExecutor:
    """Runs tool calls against a registry, concurrently up to `max_concurrency`, each with a timeout.

    A tool's own `timeout_s` wins over `default_timeout_s`; None for both means no limit. A sync tool that
    times out is abandoned, not stopped: Python cannot kill its worker thread.
    """

    def __init__(
        self,
        registry: ToolRegistry | Iterable[Tool],
        *,
        max_concurrency: int = 8,
        default_timeout_s: float | None = 30.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        if default_timeout_s is not None and default_timeout_s <= 0:
            raise ValueError(f"default_timeout_s must be positive or None, got {default_timeout_s}.")
        self.registry = registry if isinstance(registry, ToolRegistry) else ToolRegistry(registry)
        self.max_concurrency = max_concurrency
        self.default_timeout_s = default_timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)

    async def run_calls(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run calls concurrently (bounded by max_concurrency); results come in the order of the calls.
        A single call is awaited in place: a gather would only add tasks and event-loop turns."""
        if len(calls) == 1:
            return [await self.run_call(calls[0])]
        return list(await asyncio.gather(*(self.run_call(call) for call in calls)))

    async def run_call(self, call: ToolCall) -> ToolResult:
        """Run one call. Never raises for a bad call; asyncio.CancelledError propagates."""
        selected = self.registry.get(call.name)
        if selected is None:
            available = ", ".join(self.registry.names()) or "none"
            return _error(
                call,
                ToolErrorKind.UNKNOWN_TOOL,
                f"Error: unknown tool {call.name!r}. Available tools: {available}.",
            )
        if call.unparsed_arguments is not None:
            return _error(call, ToolErrorKind.INVALID_JSON, _invalid_json_message(call))
        if selected.client_side:
            return _error(
                call,
                ToolErrorKind.CLIENT_SIDE,
                f"Error: {call.name} is run by the client, not by this executor.",
            )
        problems = selected.argument_errors(call.arguments)
        if problems:
            return _error(
                call, ToolErrorKind.INVALID_ARGUMENTS, _invalid_arguments_message(call.name, problems)
            )
        try:
            args, kwargs = selected.bind_arguments(call.arguments)
        except InvalidToolArgumentsError as error:
            return _error(
                call, ToolErrorKind.INVALID_ARGUMENTS, _invalid_arguments_message(call.name, error.problems)
            )
        async with self._slots:
            return await self._invoke(selected, call, args, kwargs)

    async def _invoke(
        self, selected: Tool, call: ToolCall, args: list[Any], kwargs: dict[str, Any]
    ) -> ToolResult:
        timeout_s = selected.timeout_s if selected.timeout_s is not None else self.default_timeout_s
        deadline = asyncio.timeout(timeout_s) if timeout_s is not None else None
        try:
            if deadline is None:
                value = await selected.call_bound(args, kwargs)
            else:
                async with deadline:
                    value = await selected.call_bound(args, kwargs)
        except TimeoutError as error:
            if deadline is not None and deadline.expired():
                return _error(
                    call,
                    ToolErrorKind.TIMEOUT,
                    f"Error: {call.name} did not finish within {timeout_s:g} seconds and was stopped.",
                )
            return _error(call, ToolErrorKind.TOOL_EXCEPTION, _exception_message(call.name, error))
        except Exception as error:
            return _error(call, ToolErrorKind.TOOL_EXCEPTION, _exception_message(call.name, error))
        return _success(call, value)


def render_tool_output(value: Any) -> tuple[str, Any]:
    """The text a model reads for a tool's return value, and the JSON-able value kept as `data`.

    A str is the text as is; anything else (dict, list, number, pydantic model, dataclass ...) becomes
    compact JSON, non-ASCII kept readable.
    """
    if isinstance(value, str):
        return value, value
    data = to_jsonable_python(value, fallback=str)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")), data


def _success(call: ToolCall, value: Any) -> ToolResult:
    content, data = render_tool_output(value)
    return ToolResult(call_id=call.id, name=call.name, content=content, data=data)


def _error(call: ToolCall, kind: ToolErrorKind, content: str) -> ToolResult:
    return ToolResult(
        call_id=call.id, name=call.name, content=content, is_error=True, data={"error_kind": kind.value}
    )


def _invalid_json_message(call: ToolCall) -> str:
    raw = call.unparsed_arguments or ""
    quoted = raw[:_QUOTED_ARGUMENTS_CHARS] + ("..." if len(raw) > _QUOTED_ARGUMENTS_CHARS else "")
    return (
        f"Error: the arguments of {call.name} are not a valid JSON object: {quoted!r}. "
        "Send the arguments as one JSON object with the tool's parameters as keys."
    )


def _invalid_arguments_message(name: str, problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {problem}" for problem in problems)
    return f"Error: invalid arguments for {name}:\n{listed}\nFix these and call {name} again."


def _exception_message(name: str, error: BaseException) -> str:
    if isinstance(error, ToolError):
        return f"Error: {error}"
    detail = str(error)
    return (
        f"Error: {name} raised {type(error).__name__}: {detail}"
        if detail
        else f"Error: {name} raised {type(error).__name__}"
    )
