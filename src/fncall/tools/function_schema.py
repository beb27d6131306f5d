"""A Python function's signature and docstring as a self-contained JSON Schema plus a pydantic validator.

Small models and decoding grammars need a schema they can read top to bottom, so every `$ref` is inlined and
pydantic's `title` noise is dropped. The same pydantic model that produced the schema validates and converts
the arguments before the call, so a nested model parameter arrives as a model instance and an Enum as a
member.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import docstring_parser
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fncall.tools.errors import InvalidToolArgumentsError, ToolDefinitionError

# JSON Schema keywords whose value is one subschema, a list of subschemas, or a name -> subschema map.
_SINGLE_SUBSCHEMA_KEYS = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_LIST_SUBSCHEMA_KEYS = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAP_SUBSCHEMA_KEYS = ("properties", "patternProperties", "dependentSchemas", "$defs")
_DEFS_PREFIX = "#/$defs/"


@dataclass(frozen=True)
class Docstring:
    """What a docstring says about a tool: its free-text description and one line per parameter."""

    description: str
    parameters: dict[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """Google, NumPy and reST docstrings alike (docstring-parser's auto style).

    The description keeps every paragraph before the sections, each on one line; parameter descriptions
    are collapsed to one line, since models read them as part of a compact schema.
    """
    if not doc or not doc.strip():
        return Docstring(description="", parameters={})
    parsed = docstring_parser.parse(inspect.cleandoc(doc))
    text = parsed.short_description or ""
    if parsed.long_description:
        separator = "\n\n" if parsed.blank_after_short_description else "\n"
        text = f"{text}{separator}{parsed.long_description}" if text else parsed.long_description
    paragraphs = [" ".join(block.split()) for block in text.split("\n\n")]
    parameters = {
        param.arg_name: " ".join(param.description.split())
        for param in parsed.params
        if param.description and param.description.strip()
    }
    return Docstring(description="\n\n".join(p for p in paragraphs if p), parameters=parameters)


@dataclass(frozen=True)
class FunctionSchema:
    """The parameters of one function: a JSON Schema for the model and a pydantic model for the call."""

    description: str
    parameters: dict[str, Any]
    model: type[BaseModel]
    # Python parameter name -> field name inside `model` (fields are renamed so that no parameter name can
    # clash with a BaseModel attribute; the JSON names are the aliases).
    field_names: dict[str, str]
    positional_only: tuple[str, ...]

    def bind(self, tool_name: str, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate and convert `arguments`, returning the positional and keyword arguments of the call."""
        try:
            validated = self.model.model_validate(dict(arguments))
        except pydantic.ValidationError as error:
            raise InvalidToolArgumentsError(tool_name, _pydantic_problems(error)) from None
        values = {name: getattr(validated, field) for name, field in self.field_names.items()}
        args = [values.pop(name) for name in self.positional_only]
        return args, values


def function_schema(fn: Callable[..., Any], tool_name: str) -> FunctionSchema:
    """Derive the schema of `fn` from its type hints, defaults and docstring."""
    docstring = parse_docstring(inspect.getdoc(fn))
    signature = inspect.signature(fn)
    hints = _type_hints(fn, tool_name)
    fields: dict[str, Any] = {}
    field_names: dict[str, str] = {}
    positional_only: list[str] = []
    for index, (name, param) in enumerate(signature.parameters.items()):
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"Tool {tool_name!r}: parameter {param}: *args and **kwargs cannot be described to a model; "
                "list each parameter by name."
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only.append(name)
        field_name = f"p{index}"
        field_names[name] = field_name
        fields[field_name] = _field_definition(name, param, hints.get(name, Any), docstring.parameters)
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        raw_schema = model.model_json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as error:
        culprit = _undescribable_parameter(signature, hints)
        where = f"parameter {culprit!r}" if culprit else "its parameters"
        reason = str(error).splitlines()[0]
        raise ToolDefinitionError(
            f"Tool {tool_name!r}: {where} cannot be described as JSON Schema ({reason}); use JSON-like types "
            "or pydantic models."
        ) from None
    return FunctionSchema(
        description=docstring.description,
        parameters=_tool_parameters(raw_schema),
        model=model,
        field_names=field_names,
        positional_only=tuple(positional_only),
    )


def self_contained_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `#/$defs/...` reference inlined and every `title` removed.

    Recursive definitions cannot be inlined; they stay as references into a `$defs` kept for them alone.
    """
    schema = copy.deepcopy(schema)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    recursive: set[str] = set()

    def resolve(node: Any, expanding: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX) and ref[len(_DEFS_PREFIX) :] in definitions:
            name = ref[len(_DEFS_PREFIX) :]
            if name in expanding:
                recursive.add(name)
            else:
                siblings = {key: value for key, value in node.items() if key != "$ref"}
                target = resolve(definitions[name], expanding | {name})
                return {**target, **_map_subschemas(siblings, lambda sub: resolve(sub, expanding))}
        return _map_subschemas(node, lambda sub: resolve(sub, expanding))

    result = resolve(schema, frozenset())
    kept: dict[str, Any] = {}
    while pending := sorted(recursive - kept.keys()):
        for name in pending:
            kept[name] = resolve(definitions[name], frozenset({name}))
    if kept:
        result["$defs"] = kept
    return _strip_titles(result)


def _type_hints(fn: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as error:
        raise ToolDefinitionError(
            f"Tool {tool_name!r}: a type hint of its parameters cannot be resolved ({error}); define the "
            "types it names at module level."
        ) from None


def _undescribable_parameter(signature: inspect.Signature, hints: Mapping[str, Any]) -> str | None:
    """The first parameter whose type pydantic cannot turn into a JSON Schema, to name it in the error."""
    for name in signature.parameters:
        try:
            pydantic.TypeAdapter(hints.get(name, Any)).json_schema()
        except Exception:
            return name
    return None


def _field_definition(
    name: str, param: inspect.Parameter, hint: Any, doc_descriptions: Mapping[str, str]
) -> tuple[Any, Any]:
    """The (annotation, default) pair pydantic.create_model takes for one parameter."""
    has_default = param.default is not inspect.Parameter.empty
    default = param.default if has_default else ...
    own = FieldInfo.from_annotated_attribute(hint, param.default if has_default else PydanticUndefined)
    extra: dict[str, Any] = {"alias": name}
    if own.description is None and name in doc_descriptions:
        extra["description"] = doc_descriptions[name]
    return typing.Annotated[hint, Field(**extra)], default


def _tool_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """The top-level object schema in a fixed, readable key order, without the model's title."""
    inlined = self_contained_schema(raw)
    parameters: dict[str, Any] = {"type": "object", "properties": inlined.get("properties", {})}
    if inlined.get("required"):
        parameters["required"] = inlined["required"]
    parameters["additionalProperties"] = False
    if "$defs" in inlined:
        parameters["$defs"] = inlined["$defs"]
    return parameters


def _map_subschemas(node: dict[str, Any], transform: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of `node` with `transform` applied to each direct subschema (not to values like `default`)."""
    mapped = dict(node)
    for key in _SINGLE_SUBSCHEMA_KEYS:
        if isinstance(mapped.get(key), dict):
            mapped[key] = transform(mapped[key])
    for key in _LIST_SUBSCHEMA_KEYS:
        if isinstance(mapped.get(key), list):
            mapped[key] = [transform(item) for item in mapped[key]]
    for key in _MAP_SUBSCHEMA_KEYS:
        if isinstance(mapped.get(key), dict):
            mapped[key] = {name: transform(sub) for name, sub in mapped[key].items()}
    return mapped


def _strip_titles(node: Any) -> Any:
    """Drop `title`s and put `type` and `description` first, the order people and models read them in."""
    if not isinstance(node, dict):
        return node
    leading = {key: node[key] for key in ("type", "description") if key in node}
    rest = {key: value for key, value in node.items() if key not in leading}
    stripped = {**leading, **{k: v for k, v in rest.items() if not (k == "title" and isinstance(v, str))}}
    return _map_subschemas(stripped, _strip_titles)


def _pydantic_problems(error: pydantic.ValidationError) -> list[str]:
    return [
        f"{json_path(item['loc'])}: {item['msg']}" if item["loc"] else item["msg"] for item in error.errors()
    ]


def json_path(parts: Iterable[int | str]) -> str:
    """A readable location inside the arguments, e.g. `items[0].price` (empty for the object itself)."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")
