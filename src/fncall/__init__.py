"""fncall: function-calling LLM agents, from the model to the HTTP API."""

from fncall.types import (
    Completion,
    GenerationParams,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Completion",
    "GenerationParams",
    "Message",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "__version__",
]
