"""ToolExecutor: every failure becomes an error result a readable result; concurrency, order, cancellation."""

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel

from fncall.tools import Tool, ToolError, ToolExecutor, ToolRegistry, render_tool_output, tool
from fncall.types import ToolCall, ToolResult


@tool
def convert(from_currency: str, to_currency: str, amount: float) -> dict:
    """Convert money."""
    return {"from": from_currency, "to": to_currency, "amount": amount * 2}


@tool
def explode(reason: str) -> str:
    raise RuntimeError(reason)


@tool
def refuse() -> str:
    raise ToolError("Ask the user for their account number first.")


@tool
async def own_timeout() -> str:
    raise TimeoutError("the upstream API timed out")


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be positive")
    return value


@tool
def take(count: Annotated[int, AfterValidator(_positive)]) -> int:
    return count


def _executor(*tools: Tool, **options: float) -> ToolExecutor:
    return ToolExecutor(ToolRegistry([convert, explode, refuse, own_timeout, take, *tools]), **options)  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool], limit: int = 1000) -> None:
    """Let the event loop run until `condition()` holds (bounded by iterations, not by time)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# ---------------------------------------------------------------------------------------------- success


async def test_success_copies_name_and_id_and_renders_compact_json() -> None:
    call = ToolCall(
        id="call_1", name="convert", arguments={"from_currency": "USD", "to_currency": "€", "amount": 2}
    )
    result = await _executor().run_call(call)
    assert result == ToolResult(
        call_id="call_1",
        name="convert",
        content='{"from":"USD","to":"€","amount":4.0}',
        data={"from": "USD", "to": "€", "amount": 4.0},
    )


async def test_sync_tools_run_in_a_worker_thread_async_tools_in_the_loop() -> None:
    @tool
    def sync_thread() -> int:
        return threading.get_ident()

    @tool
    async def async_thread() -> int:
        return threading.get_ident()

    results = await _executor(sync_thread, async_thread).run_calls(
        [ToolCall(name="sync_thread"), ToolCall(name="async_thread")]
    )
    assert results[0].data != threading.get_ident()
    assert results[1].data == threading.get_ident()


class _Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class _Pair:
    left: str
    right: list[int]


@pytest.mark.parametrize(
    ("value", "content", "data"),
    [
        ("plain text, as is", "plain text, as is", "plain text, as is"),
        ({"a": [1, 2], "b": None}, '{"a":[1,2],"b":null}', {"a": [1, 2], "b": None}),
        ([1, "two"], '[1,"two"]', [1, "two"]),
        (3.5, "3.5", 3.5),
        (None, "null", None),
        (_Point(x=1, y=2), '{"x":1,"y":2}', {"x": 1, "y": 2}),
        (_Pair("é", [1]), '{"left":"é","right":[1]}', {"left": "é", "right": [1]}),
    ],
)
def test_render_tool_output(value: object, content: str, data: object) -> None:
    assert render_tool_output(value) == (content, data)


# ---------------------------------------------------------------------------------------------- failures


async def test_unknown_tool_lists_available_names() -> None:
    result = await _executor().run_call(ToolCall(id="c", name="convert_money", arguments={}))
    assert result.is_error
    assert result.call_id == "c"
    assert result.name == "convert_money"
    assert result.content == (
        "Error: unknown tool 'convert_money'. Available tools: convert, explode, refuse, own_timeout, take."
    )
    assert result.data == {"error_kind": "unknown_tool"}


async def test_unknown_tool_with_empty_registry() -> None:
    result = await ToolExecutor(ToolRegistry()).run_call(ToolCall(name="x"))
    assert result.content == "Error: unknown tool 'x'. Available tools: none."


async def test_invalid_json_is_quoted() -> None:
    call = ToolCall(name="convert", unparsed_arguments='{"amount": 42, "from_currency": USD}')
    result = await _executor().run_call(call)
    assert result.is_error
    assert result.content == (
        "Error: the arguments of convert are not a valid JSON object: "
        '\'{"amount": 42, "from_currency": USD}\'. '
        "Send the arguments as one JSON object with the tool's parameters as keys."
    )
    assert result.data == {"error_kind": "invalid_json"}


async def test_invalid_json_quote_is_cut_after_200_characters() -> None:
    raw = "x" * 500
    result = await _executor().run_call(ToolCall(name="convert", unparsed_arguments=raw))
    assert f"'{'x' * 200}...'" in result.content
    assert "x" * 201 not in result.content


async def test_string_for_number_is_reported_not_coerced() -> None:
    call = ToolCall(name="convert", arguments={"from_currency": "USD", "to_currency": "CAD", "amount": "42"})
    result = await _executor().run_call(call)
    assert result.is_error
    assert result.content == (
        "Error: invalid arguments for convert:\n"
        "- amount: '42' is not of type 'number'\n"
        "Fix these and call convert again."
    )
    assert result.data == {"error_kind": "invalid_arguments"}


async def test_every_schema_violation_is_reported() -> None:
    call = ToolCall(name="convert", arguments={"from_currency": 1, "amount": True, "fee": 2})
    result = await _executor().run_call(call)
    assert result.content.splitlines()[1:-1] == [
        "- 'to_currency' is a required property",
        "- Additional properties are not allowed ('fee' was unexpected)",
        "- amount: True is not of type 'number'",
        "- from_currency: 1 is not of type 'string'",
    ]


async def test_pydantic_only_violation_is_an_argument_error() -> None:
    result = await _executor().run_call(ToolCall(name="take", arguments={"count": -1}))
    assert result.is_error
    assert result.content == (
        "Error: invalid arguments for take:\n- count: Value error, must be positive\n"
        "Fix these and call take again."
    )


async def test_exception_reports_type_and_message_without_traceback() -> None:
    result = await _executor().run_call(ToolCall(name="explode", arguments={"reason": "disk full"}))
    assert result.is_error
    assert result.content == "Error: explode raised RuntimeError: disk full"
    assert result.data == {"error_kind": "tool_exception"}


async def test_tool_error_message_is_shown_as_is() -> None:
    result = await _executor().run_call(ToolCall(name="refuse"))
    assert result.content == "Error: Ask the user for their account number first."


async def test_timeout_error_raised_by_the_tool_is_not_a_timeout() -> None:
    result = await _executor().run_call(ToolCall(name="own_timeout"))
    assert result.content == "Error: own_timeout raised TimeoutError: the upstream API timed out"
    assert result.data == {"error_kind": "tool_exception"}


async def test_timeout_of_async_tool_uses_tool_setting() -> None:
    @tool(timeout_s=0.05)
    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    result = await _executor(hang, default_timeout_s=60).run_call(ToolCall(name="hang"))
    assert result.is_error
    assert result.content == "Error: hang did not finish within 0.05 seconds and was stopped."
    assert result.data == {"error_kind": "timeout"}


async def test_timeout_of_sync_tool_uses_executor_default() -> None:
    release = threading.Event()

    @tool
    def block() -> str:
        release.wait(10)
        return "late"

    try:
        result = await _executor(block, default_timeout_s=0.05).run_call(ToolCall(name="block"))
    finally:
        release.set()
    assert result.content == "Error: block did not finish within 0.05 seconds and was stopped."


async def test_client_side_tool_is_not_run() -> None:
    schema = {"type": "object", "properties": {}}
    client_tool = Tool.from_schema("ask_user", "Ask the user.", schema, None, client_side=True)
    result = await _executor(client_tool).run_call(ToolCall(name="ask_user"))
    assert result.is_error
    assert result.content == "Error: ask_user is run by the client, not by this executor."


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        ToolExecutor(ToolRegistry(), max_concurrency=0)
    with pytest.raises(ValueError, match="default_timeout_s must be positive"):
        ToolExecutor(ToolRegistry(), default_timeout_s=0)


# ------------------------------------------------------------------------------ concurrency and order


class _Gate:
    """Async tool calls that wait at a gate, counting how many are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.opened = asyncio.Event()

        @tool
        async def gated(index: int) -> int:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            try:
                await self.opened.wait()
            finally:
                self.inside -= 1
            return index

        self.tool = gated


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_concurrency_limit_bounds_parallelism(limit: int) -> None:
    gate = _Gate()
    executor = ToolExecutor(ToolRegistry([gate.tool]), max_concurrency=limit)
    calls = [ToolCall(name="gated", arguments={"index": i}) for i in range(5)]
    run = asyncio.create_task(executor.run_calls(calls))
    await _until(lambda: gate.inside == limit)
    for _ in range(50):  # give any call beyond the limit every chance to get in
        await asyncio.sleep(0)
    assert gate.inside == limit
    gate.opened.set()
    results = await run
    assert gate.most_inside == limit
    assert [result.data for result in results] == [0, 1, 2, 3, 4]


async def test_results_keep_call_order_when_calls_finish_in_reverse() -> None:
    finished: list[int] = []
    events = [asyncio.Event() for _ in range(4)]

    @tool
    async def step(index: int) -> str:
        await events[index].wait()
        finished.append(index)
        if index > 0:
            events[index - 1].set()
        return f"step {index}"

    executor = _executor(step)
    calls = [ToolCall(id=f"call_{i}", name="step", arguments={"index": i}) for i in range(4)]
    calls.insert(2, ToolCall(id="call_bad", name="missing"))
    events[3].set()
    results = await executor.run_calls(calls)
    assert finished == [3, 2, 1, 0]
    assert [result.call_id for result in results] == ["call_0", "call_1", "call_bad", "call_2", "call_3"]
    assert [result.content for result in results if not result.is_error] == [
        "step 0",
        "step 1",
        "step 2",
        "step 3",
    ]


async def test_cancellation_propagates_from_run_call_and_run_calls() -> None:
    gate = _Gate()
    executor = ToolExecutor(ToolRegistry([gate.tool]))

    single = asyncio.create_task(executor.run_call(ToolCall(name="gated", arguments={"index": 0})))
    await _until(lambda: gate.inside == 1)
    single.cancel()
    with pytest.raises(asyncio.CancelledError):
        await single

    batch = asyncio.create_task(
        executor.run_calls([ToolCall(name="gated", arguments={"index": i}) for i in range(3)])
    )
    await _until(lambda: gate.inside == 3)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert gate.inside == 0
