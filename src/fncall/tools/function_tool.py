"""`Tool`: a callable plus the ToolSpec a model sees, and the `@tool` decorator that builds one."""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, overload

import jsonschema
from jsonschema import Draft202012Validator

from fncall.tools.errors import ToolDefinitionError
from fncall.tools.function_schema import FunctionSchema, function_schema, json_path
from fncall.types import ToolSpec

# OpenAI's rule for function names; the strictest any backend we speak to enforces.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_PROBLEM_CHARS = 300

# JSON Schema `type` -> the Python types that certainly match it (bool is never a number here, as in JSON).
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_ANNOTATION_KEYWORDS = frozenset({"title", "description", "default", "examples"})  # never validated
_FAST_OBJECT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties"}) | (
    _ANNOTATION_KEYWORDS
)


class Tool:
    """A function a model can call: its spec, the callable and how it may be run.

    `timeout_s` None means the executor's default. `requires_approval` marks tools a human must approve
    before they run; `client_side` tools are run by the API client, not here, so they may have no callable.
    A Tool stays callable like the function it wraps.
    """

    def __init__(
        self,
        spec: ToolSpec,
        fn: Callable[..., Any] | None,
        *,
        timeout_s: float | None = None,
        requires_approval: bool = False,
        client_side: bool = False,
        function_schema: FunctionSchema | None = None,
    ) -> None:
        if not _TOOL_NAME.match(spec.name):
            raise ToolDefinitionError(
                f"Invalid tool name {spec.name!r}: use 1 to 64 letters, digits, '_' or '-' (pass name=...)."
            )
        if fn is None and not client_side:
            raise ToolDefinitionError(f"Tool {spec.name!r} needs a function unless it is client_side.")
        if timeout_s is not None and timeout_s <= 0:
            raise ToolDefinitionError(f"Tool {spec.name!r}: timeout_s must be positive, got {timeout_s}.")
        try:
            Draft202012Validator.check_schema(spec.parameters)
        except jsonschema.SchemaError as error:
            raise ToolDefinitionError(
                f"Tool {spec.name!r}: its parameters are not a valid JSON Schema: {error.message}"
            ) from None
        if spec.parameters.get("type") != "object":
            raise ToolDefinitionError(f"Tool {spec.name!r}: its parameters schema must have type 'object'.")
        if fn is not None:
            functools.update_wrapper(self, fn)  # name, docstring and __wrapped__ of the original function
        self.spec = spec
        self.fn = fn
        self.timeout_s = timeout_s
        self.requires_approval = requires_approval
        self.client_side = client_side
        self.function_schema = function_schema
        self._validator = Draft202012Validator(
            spec.parameters, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        self._plain_shape = _plain_shape(spec.parameters)

    # ------------------------------------------------------------------------------------ construction

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        requires_approval: bool = False,
        client_side: bool = False,
        strict: bool = False,
    ) -> Tool:
        """A tool whose schema comes from `fn`'s type hints, defaults and docstring."""
        tool_name = name or getattr(fn, "__name__", "")
        if not _TOOL_NAME.match(tool_name):
            raise ToolDefinitionError(
                f"Invalid tool name {tool_name!r}: use 1 to 64 letters, digits, '_' or '-' (pass name=...)."
            )
        schema = function_schema(fn, tool_name)
        spec = ToolSpec(
            name=tool_name,
            description=schema.description if description is None else description,
            parameters=schema.parameters,
            strict=strict,
        )
        return cls(
            spec,
            fn,
            timeout_s=timeout_s,
            requires_approval=requires_approval,
            client_side=client_side,
            function_schema=schema,
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: dict[str, Any],
        fn: Callable[..., Any] | None,
        *,
        timeout_s: float | None = None,
        requires_approval: bool = False,
        client_side: bool = False,
        strict: bool = False,
    ) -> Tool:
        """A tool from an explicit JSON Schema; `fn` receives the arguments as keyword arguments."""
        spec = ToolSpec(name=name, description=description, parameters=parameters, strict=strict)
        return cls(
            spec, fn, timeout_s=timeout_s, requires_approval=requires_approval, client_side=client_side
        )

    # ---------------------------------------------------------------------------------------- calling

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def parameters(self) -> dict[str, Any]:
        return self.spec.parameters

    def argument_errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """Every way `arguments` violate the JSON Schema (Draft 2020-12), one line each; empty when valid.

        Strings are not coerced: "42" where a number is expected is reported, so the model learns the type.
        """
        if self._plain_shape is not None and self._plain_shape.surely_accepts(arguments):
            return []
        errors = sorted(
            self._validator.iter_errors(dict(arguments)),
            key=lambda error: (json_path(error.absolute_path), error.message),
        )
        return [_describe_schema_error(error) for error in errors]

    def bind_arguments(self, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments to call the function with.

        Tools made from a typed function validate and convert through their pydantic model (raising
        InvalidToolArgumentsError); tools made from a schema pass the arguments through as keywords.
        """
        if self.function_schema is None:
            return [], dict(arguments)
        return self.function_schema.bind(self.name, arguments)

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Run the function with `arguments`: sync functions in a worker thread, async ones awaited."""
        args, kwargs = self.bind_arguments(arguments)
        return await self.call_bound(args, kwargs)

    async def call_bound(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run the function with arguments `bind_arguments` produced."""
        if self.fn is None:
            raise ToolDefinitionError(f"Tool {self.name!r} runs on the client side; there is nothing to run.")
        if _is_async(self.fn):
            return await self.fn(*args, **kwargs)
        result = await asyncio.to_thread(self.fn, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise ToolDefinitionError(
                f"Tool {self.name!r} runs on the client side; there is nothing to call."
            )
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    requires_approval: bool = False,
    client_side: bool = False,
    strict: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    requires_approval: bool = False,
    client_side: bool = False,
    strict: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) and its docstring into a Tool; use as `@tool` or `@tool(...)`."""

    def decorate(function: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            function,
            name=name,
            description=description,
            timeout_s=timeout_s,
            requires_approval=requires_approval,
            client_side=client_side,
            strict=strict,
        )

    return decorate if fn is None else decorate(fn)


class _PlainShape:
    """A flat object schema of plain-typed properties, checked without jsonschema's machinery.

    Argument validation runs on every tool call, and jsonschema's general walk costs more than the rest of
    the call. For schemas this simple (what `@tool` makes from ints, strs, floats and bools) an exact type
    check says "valid" much faster; anything it does not accept goes to jsonschema, which stays the judge
    and writes the error messages.
    """

    def __init__(self, types: dict[str, tuple[type, ...]], required: frozenset[str], closed: bool) -> None:
        self.types = types
        self.required = required
        self.closed = closed

    def surely_accepts(self, arguments: Mapping[str, Any]) -> bool:
        if not isinstance(arguments, dict) or not self.required.issubset(arguments):
            return False
        for name, value in arguments.items():
            allowed = self.types.get(name)
            if allowed is None:
                if self.closed:
                    return False
                continue
            if type(value) not in allowed:
                return False
        return True


def _plain_shape(schema: Mapping[str, Any]) -> _PlainShape | None:
    """The schema as a _PlainShape, or None when it uses anything beyond plain property types."""
    if not _FAST_OBJECT_KEYWORDS.issuperset(schema) or schema.get("type") != "object":
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    closed = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list) or not isinstance(closed, bool):
        return None
    types: dict[str, tuple[type, ...]] = {}
    for name, subschema in properties.items():
        if not isinstance(subschema, dict) or not ({"type"} | _ANNOTATION_KEYWORDS).issuperset(subschema):
            return None
        kind = subschema.get("type")
        allowed = _PLAIN_TYPES.get(kind) if isinstance(kind, str) else None
        if allowed is None:
            return None
        types[name] = allowed
    if not all(isinstance(name, str) for name in required):
        return None
    return _PlainShape(types, frozenset(required), not closed)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    message = error.message
    if len(message) > _MAX_PROBLEM_CHARS:
        message = message[:_MAX_PROBLEM_CHARS] + "..."
    path = json_path(error.absolute_path)
    return f"{path}: {message}" if path else message
