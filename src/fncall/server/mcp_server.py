"""A ToolRegistry served as an MCP server (stdio or streamable HTTP), built on the SDK's low-level `Server`.

The low-level server is used rather than `MCPServer` because fncall tools already carry their JSON Schemas
and validation: listing returns those schemas as they are, and every call goes through `ToolExecutor`, so an
MCP client sees exactly the errors an agent would (as `isError` results the model can read).

`mcp_app` is the `fncall mcp` command group (`fncall mcp serve --tools convert_currency --transport stdio`);
`python -m fncall.server.mcp_server serve ...` runs the same command without the main CLI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
import mcp_types
import typer
from mcp import MCPError
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette

from fncall.errors import ConfigError
from fncall.tools import Tool, ToolExecutor, ToolRegistry
from fncall.types import ToolCall, ToolResult

Transport = Literal["stdio", "http"]
DEFAULT_HTTP_PORT = 8765
MCP_HTTP_PATH = "/mcp"


def build_mcp_server(
    registry: ToolRegistry, name: str = "fncall", *, executor: ToolExecutor | None = None
) -> Server[Any]:
    """An MCP server listing `registry`'s tools with their JSON Schemas and running calls through
    `executor` (default: a ToolExecutor over the registry). An unknown tool name is a protocol error
    (INVALID_PARAMS), as the MCP specification asks; every other failure is an `isError` result."""
    runner = executor or ToolExecutor(registry)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[_mcp_tool(item) for item in registry if not item.client_side])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        selected = registry.get(params.name)
        if selected is None or selected.client_side:
            offered = ", ".join(item.name for item in registry if not item.client_side) or "none"
            raise MCPError(
                mcp_types.INVALID_PARAMS, f"Unknown tool {params.name!r}. Available tools: {offered}."
            )
        result = await runner.run_call(ToolCall(name=params.name, arguments=params.arguments or {}))
        return mcp_result(result)

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def mcp_result(result: ToolResult) -> mcp_types.CallToolResult:
    """A fncall ToolResult as an MCP result: its text as content, a dict value as structured content."""
    structured = result.data if isinstance(result.data, dict) and not result.is_error else None
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=result.content)],
        structured_content=structured,
        is_error=result.is_error,
    )


def build_mcp_http_app(registry: ToolRegistry, name: str = "fncall", *, host: str = "127.0.0.1") -> Starlette:
    """The streamable-HTTP ASGI app serving `registry` at `/mcp` (DNS-rebinding protection on loopback)."""
    return build_mcp_server(registry, name).streamable_http_app(streamable_http_path=MCP_HTTP_PATH, host=host)


def mcp_serve(
    registry: ToolRegistry,
    transport: Transport = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    name: str = "fncall",
) -> None:
    """Serve `registry` until the client disconnects (stdio) or the process is stopped (http)."""
    if transport == "stdio":
        anyio.run(_serve_stdio, build_mcp_server(registry, name))
    elif transport == "http":
        import uvicorn

        uvicorn.run(build_mcp_http_app(registry, name, host=host), host=host, port=port, log_level="warning")
    else:
        raise ConfigError(f"Unknown MCP transport {transport!r}: use 'stdio' or 'http'.")


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _mcp_tool(item: Tool) -> mcp_types.Tool:
    return mcp_types.Tool(name=item.name, description=item.description or None, input_schema=item.parameters)


# ------------------------------------------------------------------------------------------ command

mcp_app = typer.Typer(help="Model Context Protocol: serve fncall tools to MCP clients.", no_args_is_help=True)


@mcp_app.callback()
def _mcp_group() -> None:
    """Model Context Protocol: serve fncall tools to MCP clients."""


@mcp_app.command()
def serve(
    tools: Annotated[
        str | None, typer.Option("--tools", help="Comma-separated built-in tool names (default: all).")
    ] = None,
    transport: Annotated[
        str, typer.Option("--transport", help="stdio (for a client that starts this process) or http.")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Address to bind (http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (http).")] = DEFAULT_HTTP_PORT,
) -> None:
    """Serve built-in tools as an MCP server (streamable HTTP at /mcp)."""
    from fncall.tools.builtin import builtin_registry

    if transport not in ("stdio", "http"):
        typer.echo(f"error: unknown transport {transport!r}; use stdio or http.", err=True)
        raise typer.Exit(code=1)
    names = [name.strip() for name in tools.split(",") if name.strip()] if tools else None
    try:
        registry = builtin_registry(names)
    except (ConfigError, LookupError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    if transport == "http":
        typer.echo(
            f"MCP server on http://{host}:{port}{MCP_HTTP_PATH} ({', '.join(registry.names())})", err=True
        )
    mcp_serve(registry, "stdio" if transport == "stdio" else "http", host=host, port=port)


__all__ = [
    "DEFAULT_HTTP_PORT",
    "MCP_HTTP_PATH",
    "Transport",
    "build_mcp_http_app",
    "build_mcp_server",
    "mcp_app",
    "mcp_result",
    "mcp_serve",
    "serve",
]

if __name__ == "__main__":
    mcp_app()
