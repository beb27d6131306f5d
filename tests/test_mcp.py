"""MCP both ways: fncall tools from MCP servers (stdio and streamable HTTP), and fncall tools served over MCP,
checked with the SDK's own client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from mcp import Client, ClientSession, MCPError, StdioServerParameters, stdio_client
from pydantic import ValidationError
from typer.testing import CliRunner

from fncall.agents import Agent, Runner
from fncall.errors import ConfigError
from fncall.llms.scripted import Scripted
from fncall.server.mcp_server import MCP_HTTP_PATH, build_mcp_http_app, build_mcp_server, mcp_app, mcp_result
from fncall.tools import Tool, ToolExecutor, ToolRegistry, tool
from fncall.tools.builtin import builtin_registry, convert_currency
from fncall.tools.mcp import (
    MCPConnectionError,
    MCPServerConfig,
    MCPToolConfig,
    MCPToolset,
    load_mcp_tools,
    mcp_tools_for_entry,
    mcp_tools_for_entry_sync,
)
from fncall.types import ToolCall, ToolResult

TEST_SERVER = str(Path(__file__).with_name("mcp_stdio_server.py"))
STDIO_CONFIG = MCPServerConfig(command=sys.executable, args=[TEST_SERVER], timeout_s=60)
FNCALL_MCP_SERVE = [sys.executable, "-m", "fncall.server.mcp_server", "serve"]
CONVERT_42 = {"from_currency": "USD", "to_currency": "CAD", "amount": 42}


@pytest.fixture(scope="module")
async def toolset() -> AsyncIterator[MCPToolset]:
    """One session with the test server for the module (starting it costs about a second).

    The SDK's task groups must be exited by the task that entered them, and pytest tears fixtures down in
    another task, so a task of its own holds the session open.
    """
    loaded: asyncio.Future[MCPToolset] = asyncio.get_running_loop().create_future()
    finished = asyncio.Event()

    async def hold_session() -> None:
        async with load_mcp_tools(STDIO_CONFIG) as opened:
            loaded.set_result(opened)
            await finished.wait()

    holder = asyncio.create_task(hold_session())
    await asyncio.wait([holder, loaded], return_when=asyncio.FIRST_COMPLETED)
    if not loaded.done():
        holder.result()  # raises why the session could not be opened
    yield loaded.result()
    finished.set()
    await holder


# ------------------------------------------------------------------------------ client: stdio server


async def test_stdio_tools_keep_the_servers_names_descriptions_and_schemas(toolset: MCPToolset) -> None:
    assert toolset.names() == ["add", "shout", "describe"]
    add = toolset.registry()["add"]
    assert add.description == "Add two integers."
    assert add.parameters["type"] == "object"
    assert add.parameters["required"] == ["a", "b"]
    assert {name: spec["type"] for name, spec in add.parameters["properties"].items()} == {
        "a": "integer",
        "b": "integer",
    }
    assert toolset.server_info is not None and toolset.server_info.name == "fncall-test-server"


async def test_executor_runs_mcp_tools_and_keeps_structured_content_as_data(toolset: MCPToolset) -> None:
    executor = ToolExecutor(toolset.registry())
    add, described, shouted = await executor.run_calls(
        [
            ToolCall(id="c1", name="add", arguments={"a": 2, "b": 3}),
            ToolCall(id="c2", name="describe", arguments={"topic": "MCP"}),
            ToolCall(id="c3", name="shout", arguments={"text": "hi"}),
        ]
    )
    assert add == ToolResult(call_id="c1", name="add", content='{"result":5}', data={"result": 5})
    assert described == ToolResult(
        call_id="c2", name="describe", content="MCP is a topic.", data="MCP is a topic."
    )
    assert (shouted.is_error, shouted.data) == (False, {"result": "HI!"})


async def test_a_failing_mcp_tool_becomes_an_error_result_with_the_servers_text(toolset: MCPToolset) -> None:
    result = await ToolExecutor(toolset.registry()).run_call(ToolCall(name="shout", arguments={"text": ""}))
    assert result.is_error
    assert result.content.startswith("Error: ")
    assert "there is nothing to shout" in result.content
    assert result.data == {"error_kind": "tool_exception"}


async def test_arguments_are_checked_against_the_mcp_schema_before_the_server_is_asked(
    toolset: MCPToolset,
) -> None:
    result = await ToolExecutor(toolset.registry()).run_call(ToolCall(name="add", arguments={"a": "two"}))
    assert result.is_error and result.data == {"error_kind": "invalid_arguments"}
    assert "'b' is a required property" in result.content
    assert "a: 'two' is not of type 'integer'" in result.content


async def test_a_runner_run_with_a_scripted_model_calls_an_mcp_tool(toolset: MCPToolset) -> None:
    llm = Scripted([ToolCall(id="call_add", name="add", arguments={"a": 40, "b": 2}), "The sum is 42."])
    agent = Agent(name="calculator", llm=llm, tools=toolset.registry())
    result = await Runner().run(agent, "What is 40 + 2?")
    assert result.outcome == "answered"
    assert result.final_answer == "The sum is 42."
    assert [r.data for r in result.tool_results()] == [{"result": 42}]
    assert [spec.name for spec in llm.requests[0].tools] == ["add", "shout", "describe"]
    tool_message = llm.requests[1].messages[-1]
    assert (tool_message.role, tool_message.content) == ("tool", '{"result":42}')


async def test_tool_filter_and_name_prefix_pick_and_rename_tools() -> None:
    config = STDIO_CONFIG.model_copy(update={"tool_filter": ["shout"], "name_prefix": "test_"})
    async with load_mcp_tools(config) as loaded:
        assert loaded.names() == ["test_shout"]
        result = await ToolExecutor(loaded.registry()).run_call(
            ToolCall(name="test_shout", arguments={"text": "go"})
        )
    assert (result.name, result.data) == ("test_shout", {"result": "GO!"})


async def test_a_filter_naming_a_missing_tool_is_a_config_error() -> None:
    config = STDIO_CONFIG.model_copy(update={"tool_filter": ["add", "multiply"]})
    with pytest.raises(ConfigError, match="has no tool 'multiply'; it offers: add, shout, describe"):
        async with load_mcp_tools(config):
            pass


async def test_errors_inside_the_block_come_out_unwrapped() -> None:
    with pytest.raises(KeyError, match="mine"):
        async with load_mcp_tools(STDIO_CONFIG):
            raise KeyError("mine")


async def test_a_command_that_does_not_exist_is_a_connection_error() -> None:
    config = MCPServerConfig(command="/nonexistent/mcp-server")
    with pytest.raises(
        MCPConnectionError, match="Could not connect to the MCP server /nonexistent/mcp-server"
    ):
        async with load_mcp_tools(config):
            pass


async def test_a_server_that_exits_at_once_is_a_connection_error() -> None:
    config = MCPServerConfig(command=sys.executable, args=["-c", "pass"], timeout_s=20)
    with pytest.raises(MCPConnectionError, match="Connection closed"):
        async with load_mcp_tools(config):
            pass


def test_server_configs_need_the_fields_of_their_transport() -> None:
    with pytest.raises(ValidationError, match="a stdio MCP server needs a command"):
        MCPServerConfig(transport="stdio")
    with pytest.raises(ValidationError, match="an http MCP server needs a url"):
        MCPServerConfig(transport="http")
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        MCPServerConfig(transport="http", url="ftp://example.com/mcp")
    entry = MCPToolConfig.model_validate(
        {"type": "mcp", "server": {"command": "python", "args": ["s.py"]}, "tools": ["add"]}
    )
    assert (entry.name, entry.server.transport, entry.tools) == ("mcp", "stdio", ["add"])


async def test_spec_entry_tools_are_listed_from_sync_code_and_open_a_session_per_call() -> None:
    entry = MCPToolConfig(type="mcp", server=STDIO_CONFIG, tools=["describe", "add"])
    tools = mcp_tools_for_entry_sync(entry)  # what a sync spec builder does, here inside a running loop
    assert [item.name for item in tools] == ["describe", "add"]
    result = await ToolExecutor(tools).run_call(ToolCall(name="add", arguments={"a": 1, "b": 1}))
    assert result.data == {"result": 2}


async def test_a_per_call_tool_whose_server_is_gone_returns_an_error_result(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(Path(TEST_SERVER).read_text())
    entry = MCPToolConfig(type="mcp", server=MCPServerConfig(command=sys.executable, args=[str(script)]))
    tools = await mcp_tools_for_entry(entry)
    script.unlink()
    result = await ToolExecutor(tools).run_call(ToolCall(name="add", arguments={"a": 1, "b": 1}))
    assert result.is_error and result.data == {"error_kind": "tool_exception"}
    assert result.content.startswith("Error: Could not connect to the MCP server")


# ------------------------------------------------------------------------------------ server side


def _stdio_params(*extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=[*FNCALL_MCP_SERVE[1:], "--transport", "stdio", *extra]
    )


async def test_mcp_serve_over_stdio_driven_by_the_sdks_client() -> None:
    async with stdio_client(_stdio_params()) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = {item.name: item for item in (await session.list_tools()).tools}
        assert list(listed) == ["convert_currency", "get_current_stock_price", "get_company_news"]
        assert listed["convert_currency"].input_schema == convert_currency.parameters
        assert listed["convert_currency"].description == convert_currency.description

        converted = await session.call_tool("convert_currency", CONVERT_42)
        assert not converted.is_error
        assert converted.structured_content == {
            "from_currency": "USD",
            "to_currency": "CAD",
            "converted_amount": 131.95,
        }
        assert isinstance(converted.content[0], mcp_types.TextContent)
        assert '"converted_amount":131.95' in converted.content[0].text

        bad = await session.call_tool("convert_currency", {**CONVERT_42, "amount": "lots"})
        assert bad.is_error and bad.structured_content is None
        assert isinstance(bad.content[0], mcp_types.TextContent)
        assert "amount: 'lots' is not of type 'number'" in bad.content[0].text

        with pytest.raises(MCPError, match=r"Unknown tool 'nope'\. Available tools: convert_currency"):
            await session.call_tool("nope", {})


async def test_mcp_serve_tools_option_serves_only_the_named_tools() -> None:
    params = _stdio_params("--tools", "convert_currency")
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert [item.name for item in (await session.list_tools()).tools] == ["convert_currency"]


def test_mcp_serve_rejects_unknown_tools_and_transports() -> None:
    runner = CliRunner()
    unknown_tool = runner.invoke(mcp_app, ["serve", "--tools", "teleport"])
    assert unknown_tool.exit_code == 1
    assert "Unknown tool 'teleport'" in unknown_tool.output
    unknown_transport = runner.invoke(mcp_app, ["serve", "--transport", "pigeon"])
    assert unknown_transport.exit_code == 1
    assert "unknown transport 'pigeon'" in unknown_transport.output


async def test_in_process_server_hides_client_side_tools_and_maps_results() -> None:
    @tool
    def echo(text: str) -> str:
        """Echo a text."""
        return text

    registry = ToolRegistry(
        [echo, Tool.from_schema("browser_click", "Runs on the client.", _OBJECT, None, client_side=True)]
    )
    async with Client(build_mcp_server(registry, "in-process")) as client:
        assert [item.name for item in (await client.list_tools()).tools] == ["echo"]
        echoed = await client.call_tool("echo", {"text": "hello"})
        assert echoed.content == [mcp_types.TextContent(text="hello")]
        assert (echoed.structured_content, echoed.is_error) == (None, False)
        with pytest.raises(MCPError, match="Unknown tool 'browser_click'"):
            await client.call_tool("browser_click", {})


def test_mcp_result_keeps_dicts_as_structured_content_and_errors_as_text() -> None:
    ok = mcp_result(ToolResult(call_id="c", name="t", content='{"x":1}', data={"x": 1}))
    assert (ok.structured_content, ok.is_error) == ({"x": 1}, False)
    failed = mcp_result(
        ToolResult(call_id="c", name="t", content="Error: no", is_error=True, data={"error_kind": "timeout"})
    )
    assert (failed.structured_content, failed.is_error) == (None, True)
    assert failed.content == [mcp_types.TextContent(text="Error: no")]


_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


# ------------------------------------------------------------------------------- streamable HTTP


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _http_server_process(port: int, *extra: str) -> Iterator[str]:
    """`fncall mcp serve --transport http` in a subprocess on 127.0.0.1:port, until the block ends."""
    command = [*FNCALL_MCP_SERVE, "--transport", "http", "--port", str(port), *extra]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the MCP server exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP server did not start listening")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}{MCP_HTTP_PATH}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


async def test_mcp_serve_over_http_used_through_load_mcp_tools() -> None:
    with _http_server_process(_free_port(), "--tools", "convert_currency") as url:
        config = MCPServerConfig(transport="http", url=url, timeout_s=30)
        async with load_mcp_tools(config) as loaded:
            assert loaded.names() == ["convert_currency"]
            assert loaded.registry()["convert_currency"].parameters == convert_currency.parameters
            result = await ToolExecutor(loaded.registry()).run_call(
                ToolCall(name="convert_currency", arguments=CONVERT_42)
            )
    assert result.data == {"from_currency": "USD", "to_currency": "CAD", "converted_amount": 131.95}


class _HeaderRecorder:
    """ASGI middleware that keeps the headers of every HTTP request it passes on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append({key.decode(): value.decode() for key, value in scope["headers"]})
        await self.app(scope, receive, send)


async def test_http_config_headers_reach_the_server(serve_app: Any) -> None:
    recorder = _HeaderRecorder(build_mcp_http_app(builtin_registry(["convert_currency"])))
    with serve_app(recorder) as base_url:
        config = MCPServerConfig(
            transport="http", url=base_url + MCP_HTTP_PATH, headers={"X-Api-Key": "k-123"}
        )
        async with load_mcp_tools(config) as loaded:
            result = await ToolExecutor(loaded.registry()).run_call(
                ToolCall(name="convert_currency", arguments={**CONVERT_42, "to_currency": "EUR"})
            )
    assert result.data == {"from_currency": "USD", "to_currency": "EUR", "converted_amount": 38.64}
    assert recorder.seen and all(headers.get("x-api-key") == "k-123" for headers in recorder.seen)


async def test_an_http_server_that_is_not_there_is_a_connection_error() -> None:
    config = MCPServerConfig(transport="http", url=f"http://127.0.0.1:{_free_port()}/mcp", timeout_s=10)
    with pytest.raises(MCPConnectionError, match=r"Could not connect to the MCP server http://127\.0\.0\.1"):
        async with load_mcp_tools(config):
            pass


async def test_an_agent_spec_declares_mcp_tools_and_its_run_calls_them() -> None:
    from fncall.agents.spec import build_agent, load_agent_spec
    from fncall.llms.scripted import Scripted
    from fncall.types import ToolCall

    spec = load_agent_spec(
        {
            "name": "calculator",
            "type": "function_calling",
            "llm": {"spec": "scripted:"},
            "tools": [
                {
                    "type": "mcp",
                    "server": {"transport": "stdio", "command": sys.executable, "args": [TEST_SERVER]},
                    "tools": ["add"],
                }
            ],
        }
    )
    model = Scripted([ToolCall(name="add", arguments={"a": 2, "b": 40}), "The sum is 42."])
    built = build_agent(spec, llm_factory=lambda _spec: model)
    result = await built.run("What is 2 + 40?")
    assert result.final_answer == "The sum is 42."
    assert [r.data for r in result.tool_results()] == [{"result": 42}]
    assert [t.name for t in model.requests[0].tools] == ["add"]
