"""BFCL function docs to fncall tools, and tool names back to BFCL's.

BFCL writes parameter types in its own vocabulary (`dict`, `float`, `tuple`, `any`) and names functions with
dots (`math.factorial`), which OpenAI-style tool names (`^[a-zA-Z0-9_-]{1,64}$`) forbid. Tools offered to a
model get JSON Schema types and sanitised names; the calls a model makes are mapped back to the original
names before BFCL's checker sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fncall.errors import ConfigError
from fncall.types import Message, ToolSpec

# BFCL type names (and the JSON Schema names some docs already use) to JSON Schema types. "any" becomes a
# string, as in BFCL's own OpenAPI mapping: its checker accepts only strings for "any" parameters.
JSON_SCHEMA_TYPES = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "dict": "object",
    "object": "object",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "any": "string",
}

# JSON Schema keywords carried over as they are; BFCL-only keys (such as "optional") are dropped.
_KEPT_KEYWORDS = (
    "description",
    "enum",
    "default",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
)
_TOOL_NAME_LIMIT = 64
_NOT_ALLOWED_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")


def json_schema_from_bfcl(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one BFCL parameter (or parameters object), nested properties and items included."""
    converted: dict[str, Any] = {}
    bfcl_type = schema.get("type")
    if bfcl_type is not None:
        if bfcl_type not in JSON_SCHEMA_TYPES:
            raise ConfigError(
                f"Unknown BFCL parameter type {bfcl_type!r}; known types: {', '.join(JSON_SCHEMA_TYPES)}."
            )
        converted["type"] = JSON_SCHEMA_TYPES[bfcl_type]
    for keyword in _KEPT_KEYWORDS:
        if keyword in schema:
            converted[keyword] = schema[keyword]
    properties = schema.get("properties")
    if isinstance(properties, dict):
        converted["properties"] = {name: json_schema_from_bfcl(value) for name, value in properties.items()}
        required = [name for name in schema.get("required", []) if name in properties]
        if required:
            converted["required"] = required
    if isinstance(schema.get("items"), dict):
        converted["items"] = json_schema_from_bfcl(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        converted["additionalProperties"] = json_schema_from_bfcl(schema["additionalProperties"])
    return converted


@dataclass
class ToolNames:
    """Sanitised tool names and the BFCL names they stand for."""

    to_original: dict[str, str] = field(default_factory=dict)

    def add(self, original: str) -> str:
        """A valid, unused tool name for `original` (dots and other characters become `_`)."""
        base = _NOT_ALLOWED_IN_NAMES.sub("_", original)[:_TOOL_NAME_LIMIT] or "tool"
        candidate, counter = base, 1
        while candidate in self.to_original:
            counter += 1
            suffix = f"_{counter}"
            candidate = base[: _TOOL_NAME_LIMIT - len(suffix)] + suffix
        self.to_original[candidate] = original
        return candidate

    def original(self, name: str) -> str:
        """The BFCL name behind a tool name; a name that was never offered stays as the model wrote it."""
        return self.to_original.get(name, name)


def tools_from_bfcl(functions: Sequence[dict[str, Any]]) -> tuple[list[ToolSpec], ToolNames]:
    """The tools to offer for a case's function docs, and the name map to read the calls back."""
    names = ToolNames()
    tools = []
    for function in functions:
        parameters = json_schema_from_bfcl(function.get("parameters") or {"type": "dict", "properties": {}})
        parameters["type"] = "object"
        parameters.setdefault("properties", {})
        tools.append(
            ToolSpec(
                name=names.add(function["name"]),
                description=function.get("description", ""),
                parameters=parameters,
            )
        )
    return tools, names


def messages_from_bfcl(turn: Sequence[dict[str, Any]]) -> list[Message]:
    """A BFCL single-turn question (role/content dicts) as canonical messages."""
    return [Message(role=message["role"], content=message.get("content") or "") for message in turn]
