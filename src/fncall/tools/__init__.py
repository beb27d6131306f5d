"""Tools a model can call: `@tool` turns typed functions into specs, a registry names them, and the executor
runs calls, turning every failure into a ToolResult the model can read."""

from fncall.tools.errors import (
    DuplicateToolError,
    InvalidToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    UnknownToolError,
)
from fncall.tools.executor import ToolErrorKind, ToolExecutor, render_tool_output
from fncall.tools.function_schema import FunctionSchema, function_schema, self_contained_schema
from fncall.tools.function_tool import Tool, tool
from fncall.tools.registry import ToolRegistry

__all__ = [
    "DuplicateToolError",
    "FunctionSchema",
    "InvalidToolArgumentsError",
    "Tool",
    "ToolDefinitionError",
    "ToolError",
    "ToolErrorKind",
    "ToolExecutor",
    "ToolRegistry",
    "UnknownToolError",
    "function_schema",
    "render_tool_output",
    "self_contained_schema",
    "tool",
]
