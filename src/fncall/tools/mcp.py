"""Tools from MCP servers: connect over stdio or streamable HTTP with the official `mcp` SDK, list the
server's tools and wrap each one as a fncall `Tool` whose invocation is a `tools/call` on the server.

Two ways to hold a connection:

- `async with load_mcp_tools(config) as toolset:` keeps one session (one server subprocess) for the block and
  shuts it down on exit. Use it when you run agents from Python.
- `await mcp_tools_for_entry(entry)` lists the tools once and returns tools that open a short session per
  call. Agent specs use it: a built agent has no close hook, so no connection may outlive a call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import httpx2
import mcp_types
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fncall.errors import ConfigError, FncallError
from fncall.tools.errors import ToolDefinitionError, ToolError
from fncall.tools.function_tool import Tool
from fncall.tools.registry import ToolRegistry

_TOOL_NAME_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TOOL_NAME = 64
_MAX_PAGES = 100  # a server whose tool list never ends must not hang the connection

SessionOpener = Callable[[], AbstractAsyncContextManager[ClientSession]]


class MCPConnectionError(FncallError):
    """An MCP server could not be started, reached or initialised."""


class MCPServerConfig(BaseModel):
    """How to reach one MCP server: a command to run (`stdio`) or a URL (`http`, streamable HTTP).

    `tool_filter` keeps only the named tools (None keeps all); `name_prefix` is put before every tool name so
    two servers offering the same name can share an agent. `timeout_s` bounds connecting and each request.
    """

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"] = "stdio"
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tool_filter: list[str] | None = None
    name_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$", max_length=32)
    timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _transport_fields(self) -> MCPServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP server needs a command (e.g. command: python, args: [server.py])")
        if self.transport == "http" and not self.url:
            raise ValueError("an http MCP server needs a url (e.g. http://127.0.0.1:8000/mcp)")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):  # type: ignore[union-attr]
            raise ValueError(f"the MCP server url must start with http:// or https://, got {self.url!r}")
        return self

    def label(self) -> str:
        """How messages name this server: its URL or its command line."""
        if self.transport == "http":
            return str(self.url)
        return " ".join([str(self.command), *self.args])


class MCPToolConfig(BaseModel):
    """An agent-spec tool entry `{type: mcp, name, server: {...}, tools: [...]}`: the tools of one server.

    `name` labels the entry among the agent's tool entries; `tools` (if given) picks tools by their MCP names
    and wins over `server.tool_filter`.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["mcp"]
    name: str = Field(default="mcp", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    server: MCPServerConfig
    tools: list[str] | None = None


class MCPToolset:
    """The tools of one connected MCP server, in the server's order; iterate it or make a registry."""

    def __init__(
        self, config: MCPServerConfig, tools: Sequence[Tool], server_info: mcp_types.Implementation | None
    ) -> None:
        self.config = config
        self.tools = list(tools)
        self.server_info = server_info

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    def __repr__(self) -> str:
        return f"MCPToolset({self.config.label()!r}, {self.names()!r})"

    def names(self) -> list[str]:
        return [item.name for item in self.tools]

    def registry(self) -> ToolRegistry:
        return ToolRegistry(self.tools)


@asynccontextmanager
async def load_mcp_tools(config: MCPServerConfig) -> AsyncIterator[MCPToolset]:
    """Connect to the server, list its tools and yield them as fncall Tools bound to this one session.

    The session (and a stdio server's subprocess) lives until the block ends. Raises MCPConnectionError when
    the server cannot be reached and ConfigError when a filtered tool does not exist or a tool cannot be
    wrapped.
    """
    async with _open_session(config) as session:
        listed = await _list_tools(session, config)
        server_info = session.server_info

        @asynccontextmanager
        async def reuse_session() -> AsyncIterator[ClientSession]:
            yield session

        tools = [_wrap_tool(listed_tool, config, reuse_session) for listed_tool in listed]
        yield MCPToolset(config, tools, server_info)


async def mcp_tools_for_entry(entry: MCPToolConfig) -> list[Tool]:
    """The tools an agent-spec entry names, each opening its own short session per call.

    The server is contacted once now to read the tool schemas; every later call starts a fresh session
    (for stdio, a fresh subprocess), so the tools hold no connection and work from any event loop.
    """
    config = entry.server
    if entry.tools is not None:
        config = config.model_copy(update={"tool_filter": entry.tools})
    async with _open_session(config) as session:
        listed = await _list_tools(session, config)
    return [_wrap_tool(listed_tool, config, lambda: _open_session(config)) for listed_tool in listed]


def mcp_tools_for_entry_sync(entry: MCPToolConfig) -> list[Tool]:
    """`mcp_tools_for_entry` for synchronous builders, callable with or without a running event loop: the
    listing runs on a private loop in a worker thread (a caller's running loop waits for it)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, mcp_tools_for_entry(entry)).result()


# --------------------------------------------------------------------------------------- connecting


@asynccontextmanager
async def _open_session(config: MCPServerConfig) -> AsyncIterator[ClientSession]:
    """An initialised session; failures to start or reach the server become MCPConnectionError.

    The SDK's transports run task groups, which wrap every exception crossing them (the caller's own ones
    too) in exception groups; a group holding a single exception is unwrapped so callers see that one.
    """
    connected = False
    try:
        async with AsyncExitStack() as stack:
            try:
                read_stream, write_stream = await stack.enter_async_context(_transport(config))
                session = await stack.enter_async_context(
                    ClientSession(read_stream, write_stream, read_timeout_seconds=config.timeout_s)
                )
                await session.initialize()
            except (OSError, MCPError, httpx2.HTTPError) as error:
                raise _connection_error(config, error) from error
            connected = True
            yield session
    except BaseExceptionGroup as group:
        sole = _sole_exception(group)
        if sole is None:
            raise
        if not connected and isinstance(sole, Exception) and not isinstance(sole, MCPConnectionError):
            raise _connection_error(config, sole) from sole  # a transport task failed while connecting
        raise sole from sole.__cause__


def _connection_error(config: MCPServerConfig, error: BaseException) -> MCPConnectionError:
    return MCPConnectionError(f"Could not connect to the MCP server {config.label()}: {_describe(error)}")


def _transport(config: MCPServerConfig) -> AbstractAsyncContextManager[Any]:
    if config.transport == "stdio":
        parameters = StdioServerParameters(
            command=str(config.command), args=config.args, env=config.env or None, cwd=config.cwd
        )
        return stdio_client(parameters)
    http_client = httpx2.AsyncClient(
        headers=config.headers, timeout=httpx2.Timeout(config.timeout_s, read=max(config.timeout_s, 300.0))
    )
    return _http_transport(str(config.url), http_client)


@asynccontextmanager
async def _http_transport(url: str, http_client: httpx2.AsyncClient) -> AsyncIterator[Any]:
    async with http_client, streamable_http_client(url, http_client=http_client) as streams:
        yield streams


async def _list_tools(session: ClientSession, config: MCPServerConfig) -> list[mcp_types.Tool]:
    """Every tool the server lists (all pages), narrowed to `tool_filter` in the filter's order."""
    listed: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        listed.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    if config.tool_filter is None:
        return listed
    by_name = {listed_tool.name: listed_tool for listed_tool in listed}
    unknown = [name for name in config.tool_filter if name not in by_name]
    if unknown:
        offered = ", ".join(by_name) or "none"
        missing = ", ".join(map(repr, unknown))
        raise ConfigError(f"The MCP server {config.label()} has no tool {missing}; it offers: {offered}.")
    return [by_name[name] for name in dict.fromkeys(config.tool_filter)]


# ------------------------------------------------------------------------------------------ calling


def _wrap_tool(listed: mcp_types.Tool, config: MCPServerConfig, open_session: SessionOpener) -> Tool:
    """A fncall Tool with the MCP tool's schema whose function calls the tool through `open_session`."""
    name = _fncall_tool_name(config.name_prefix + listed.name)
    invoke = _tool_function(listed.name, config, open_session)
    try:
        return Tool.from_schema(name, listed.description or "", dict(listed.input_schema), invoke)
    except ToolDefinitionError as error:
        raise ToolDefinitionError(
            f"The MCP server {config.label()} offers an unusable tool: {error}"
        ) from None


def _tool_function(
    mcp_name: str, config: MCPServerConfig, open_session: SessionOpener
) -> Callable[..., Awaitable[Any]]:
    async def call_mcp_tool(**arguments: Any) -> Any:
        try:
            async with open_session() as session:
                result = await session.call_tool(mcp_name, arguments, read_timeout_seconds=config.timeout_s)
        except MCPConnectionError as error:
            raise ToolError(str(error)) from error
        except MCPError as error:
            raise ToolError(f"The MCP server refused the call to {mcp_name}: {error.message}") from error
        if result.is_error:
            text = _joined_text(result.content) or "the tool reported an error without a message"
            raise ToolError(text)
        return tool_output(result)

    call_mcp_tool.__name__ = _fncall_tool_name(mcp_name)
    return call_mcp_tool


def tool_output(result: mcp_types.CallToolResult) -> Any:
    """The value a successful MCP result becomes: its structured content when the server sent some (the
    executor keeps it as data and shows it as JSON), else its content blocks as one text."""
    if result.structured_content is not None:
        return result.structured_content
    return _joined_text(result.content)


def _joined_text(blocks: Sequence[mcp_types.ContentBlock]) -> str:
    """Content blocks as the text a model reads: text as is, other blocks as a one-line description."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.EmbeddedResource):
            contents = block.resource
            if isinstance(contents, mcp_types.TextResourceContents):
                parts.append(contents.text)
            else:
                parts.append(f"[binary resource {contents.uri} ({contents.mime_type or 'unknown type'})]")
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{block.type} ({block.mime_type})]")
    return "\n".join(parts)


def _fncall_tool_name(name: str) -> str:
    """MCP allows names (dots, slashes) that model APIs reject; map them onto `[A-Za-z0-9_-]{1,64}`."""
    return _TOOL_NAME_CHAR.sub("_", name)[:_MAX_TOOL_NAME] or "tool"


def _sole_exception(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception nested groups carry, or None when they carry several."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    """The innermost readable cause: task groups wrap transport failures in exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, MCPError):
        return error.message
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = [
    "MCPConnectionError",
    "MCPServerConfig",
    "MCPToolConfig",
    "MCPToolset",
    "load_mcp_tools",
    "mcp_tools_for_entry",
    "mcp_tools_for_entry_sync",
    "tool_output",
]
