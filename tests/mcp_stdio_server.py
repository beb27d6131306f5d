"""A tiny MCP server over stdio for the MCP client tests, written with the SDK's own server API (MCPServer).

Run as `python tests/mcp_stdio_server.py`. It offers `add(a, b)`, `shout(text)` (which fails on empty text
with a message for the model) and `describe(topic)` (plain text, no structured content).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("fncall-test-server", log_level="ERROR")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Repeat a text in capital letters with an exclamation mark.")
def shout(text: str) -> str:
    if not text:
        raise ToolError("there is nothing to shout")
    return text.upper() + "!"


@server.tool(description="Describe a topic in one sentence.", structured_output=False)
def describe(topic: str) -> str:
    return f"{topic} is a topic."


if __name__ == "__main__":
    server.run("stdio")
