"""Exceptions of the tools package: defining, registering, looking up and validating tools."""

from __future__ import annotations

from collections.abc import Sequence

from fncall.errors import ConfigError, FncallError


class ToolDefinitionError(ConfigError):
    """A function or schema cannot become a tool (bad name, unsupported parameter, invalid JSON Schema)."""


class DuplicateToolError(ConfigError):
    """Two tools with the same name were put in one registry; a model could not tell them apart."""


class UnknownToolError(FncallError, LookupError):
    """Tools were asked for by names the registry does not hold."""

    def __init__(self, unknown: Sequence[str], available: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.available = list(available)
        listed = ", ".join(repr(name) for name in self.unknown)
        offered = ", ".join(self.available) if self.available else "none"
        noun = "tool" if len(self.unknown) == 1 else "tools"
        super().__init__(f"Unknown {noun} {listed}. Available tools: {offered}.")


class InvalidToolArgumentsError(FncallError, ValueError):
    """A tool's arguments do not fit its parameters; `problems` holds one readable line per violation."""

    def __init__(self, tool_name: str, problems: Sequence[str]) -> None:
        self.tool_name = tool_name
        self.problems = list(problems)
        super().__init__(f"Invalid arguments for {tool_name}: " + "; ".join(self.problems))


class ToolError(FncallError):
    """Raise it inside a tool to tell the model something in your own words.

    The executor shows its message as is, without the exception type other failures are reported with.
    """
