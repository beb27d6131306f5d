"""`ToolRegistry`: the named set of tools an agent or a request offers to a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fncall.tools.errors import DuplicateToolError, UnknownToolError
from fncall.tools.function_tool import Tool, tool
from fncall.types import ToolSpec


class ToolRegistry:
    """Tools by name, in the order they were added. Plain functions are wrapped with `@tool`."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool | Callable[..., Any]) -> Tool:
        """Register a tool (or a function, wrapped with `@tool`) and return it; names must be unique."""
        new_tool = item if isinstance(item, Tool) else tool(item)
        if new_tool.name in self._tools:
            raise DuplicateToolError(
                f"A tool named {new_tool.name!r} is already registered; give one of them another name "
                "with @tool(name=...)."
            )
        self._tools[new_tool.name] = new_tool
        return new_tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError([name], self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[ToolSpec]:
        """What a model is told about these tools, in registration order."""
        return [registered.spec for registered in self._tools.values()]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A registry of only the named tools, in the order given; unknown names raise UnknownToolError."""
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in self._tools]
        if unknown:
            raise UnknownToolError(unknown, self.names())
        return ToolRegistry(self._tools[name] for name in wanted)
