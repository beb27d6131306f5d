"""Tool specs from typed functions and docstrings, Tool.from_schema, and the registry."""

import enum
import json
import threading
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from fncall.tools import (
    DuplicateToolError,
    InvalidToolArgumentsError,
    Tool,
    ToolDefinitionError,
    ToolRegistry,
    UnknownToolError,
    self_contained_schema,
    tool,
)
from fncall.tools.function_tool import _plain_shape
from fncall.types import ToolSpec


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str = "Paris"


class Order(BaseModel):
    item: str
    quantity: int
    ship_to: Address


class TreeNode(BaseModel):
    label: str
    children: list["TreeNode"] = []


def _walk_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in _walk_keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in _walk_keys(value)}
    return set()


# ------------------------------------------------------------------------------------------ docstrings


def test_google_docstring_fills_descriptions_and_seed_shape() -> None:
    @tool
    def convert(from_currency: str, to_currency: str, amount: float) -> dict:
        """Convert from one currency to another. Result is returned in the
        'converted_amount' key.

        Args:
            from_currency (str): The source currency to convert from, e.g. USD
            to_currency: The target currency
                to convert to, e.g. CAD
            amount: The amount to be converted

        Returns:
            The converted amount.
        """
        return {}

    assert convert.spec == ToolSpec(
        name="convert",
        description="Convert from one currency to another. Result is returned in the 'converted_amount' key.",
        parameters={
            "type": "object",
            "properties": {
                "from_currency": {
                    "type": "string",
                    "description": "The source currency to convert from, e.g. USD",
                },
                "to_currency": {
                    "type": "string",
                    "description": "The target currency to convert to, e.g. CAD",
                },
                "amount": {"type": "number", "description": "The amount to be converted"},
            },
            "required": ["from_currency", "to_currency", "amount"],
            "additionalProperties": False,
        },
    )


def test_numpy_docstring() -> None:
    @tool
    def area(width: float, height: float = 1.0) -> float:
        """Area of a rectangle.

        Parameters
        ----------
        width : float
            Width in metres.
        height : float, optional
            Height in metres.
        """
        return width * height

    assert area.description == "Area of a rectangle."
    assert area.parameters["properties"] == {
        "width": {"type": "number", "description": "Width in metres."},
        "height": {"type": "number", "description": "Height in metres.", "default": 1.0},
    }
    assert area.parameters["required"] == ["width"]


def test_rest_docstring_and_long_description_kept() -> None:
    @tool
    def greet(name: str, excited: bool = False) -> str:
        """Greet someone.

        Use it when the user asks for a greeting.

        :param name: Who to greet.
        :param excited: Add an exclamation mark.
        :returns: the greeting
        """
        return f"Hello {name}" + ("!" if excited else "")

    assert greet.description == "Greet someone.\n\nUse it when the user asks for a greeting."
    assert greet.parameters["properties"]["name"] == {"type": "string", "description": "Who to greet."}
    assert greet.parameters["properties"]["excited"] == {
        "type": "boolean",
        "description": "Add an exclamation mark.",
        "default": False,
    }


def test_annotated_field_description_wins_over_docstring() -> None:
    @tool
    def search(query: Annotated[str, Field(description="From Field", max_length=50)], limit: int = 5) -> list:
        """Search.

        Args:
            query: From the docstring.
            limit: How many results.
        """
        return []

    assert search.parameters["properties"]["query"] == {
        "type": "string",
        "description": "From Field",
        "maxLength": 50,
    }
    assert search.parameters["properties"]["limit"]["description"] == "How many results."


def test_no_docstring_gives_empty_description_and_options_override() -> None:
    @tool(name="renamed", description="Custom.", timeout_s=2.5, requires_approval=True)
    def original(x: int) -> int:
        return x

    assert original.name == "renamed"
    assert original.description == "Custom."
    assert original.timeout_s == 2.5
    assert original.requires_approval is True
    assert original.client_side is False

    @tool
    def bare(x: int) -> int:
        return x

    assert bare.description == ""
    assert bare.timeout_s is None
    assert bare.requires_approval is False


# ---------------------------------------------------------------------------------------------- types


def test_enums_from_literal_and_enum() -> None:
    @tool
    def paint(color: Color, finish: Literal["matte", "gloss"] = "matte") -> str:
        return f"{color.value}/{finish}"

    properties = paint.parameters["properties"]
    assert properties["color"] == {"type": "string", "enum": ["red", "green"]}
    assert properties["finish"] == {"type": "string", "enum": ["matte", "gloss"], "default": "matte"}
    assert paint.parameters["required"] == ["color"]


def test_enum_default_is_serialised_by_value() -> None:
    @tool
    def paint(color: Color = Color.GREEN) -> str:
        return color.value

    assert paint.parameters["properties"]["color"] == {
        "type": "string",
        "enum": ["red", "green"],
        "default": "green",
    }
    assert "required" not in paint.parameters


def test_nested_models_are_inlined_without_refs_or_titles() -> None:
    @tool
    def place_order(order: Order, gift_wrap: bool = False) -> str:
        """Place an order.

        Args:
            order: The order to place.
            gift_wrap: Wrap it.
        """
        return "ok"

    assert place_order.parameters["properties"]["order"] == {
        "type": "object",
        "description": "The order to place.",
        "properties": {
            "item": {"type": "string"},
            "quantity": {"type": "integer"},
            "ship_to": {
                "type": "object",
                "description": "A postal address.",
                "properties": {"street": {"type": "string"}, "city": {"type": "string", "default": "Paris"}},
                "required": ["street"],
            },
        },
        "required": ["item", "quantity", "ship_to"],
    }
    keys = _walk_keys(place_order.parameters)
    assert "$ref" not in keys
    assert "$defs" not in keys
    assert "title" not in keys


def test_lists_dicts_and_optional() -> None:
    @tool
    def stats(values: list[float], labels: dict[str, int], note: str | None = None) -> dict:
        return {}

    properties = stats.parameters["properties"]
    assert properties["values"] == {"type": "array", "items": {"type": "number"}}
    assert properties["labels"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert properties["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert stats.parameters["required"] == ["values", "labels"]


def test_optional_nested_model_is_inlined_inside_any_of() -> None:
    @tool
    def ship(address: Address | None = None) -> str:
        return "ok"

    assert ship.parameters["properties"]["address"]["anyOf"][0]["properties"]["street"] == {"type": "string"}
    assert "$ref" not in _walk_keys(ship.parameters)


def test_recursive_model_keeps_only_its_own_definition() -> None:
    @tool
    def count_nodes(tree: TreeNode) -> int:
        return 1

    schema = count_nodes.parameters
    assert set(schema["$defs"]) == {"TreeNode"}
    assert schema["properties"]["tree"]["properties"]["children"]["items"] == {"$ref": "#/$defs/TreeNode"}
    assert "title" not in _walk_keys(schema)


def test_property_named_title_is_kept() -> None:
    @tool
    def publish(title: str, type: str = "post") -> str:
        return title

    assert publish.parameters["properties"] == {
        "title": {"type": "string"},
        "type": {"type": "string", "default": "post"},
    }


def test_parameter_names_that_clash_with_pydantic_attributes() -> None:
    @tool
    def odd(json: str, model_config: int, schema: bool = True) -> dict:
        return {"json": json, "model_config": model_config, "schema": schema}

    assert list(odd.parameters["properties"]) == ["json", "model_config", "schema"]
    assert odd.bind_arguments({"json": "x", "model_config": 3}) == (
        [],
        {"json": "x", "model_config": 3, "schema": True},
    )


def test_self_contained_schema_does_not_touch_default_values() -> None:
    schema = {
        "type": "object",
        "properties": {"p": {"$ref": "#/$defs/P", "default": {"title": "kept", "$ref": "not a ref"}}},
        "$defs": {"P": {"type": "object", "title": "P"}},
    }
    assert self_contained_schema(schema) == {
        "type": "object",
        "properties": {"p": {"type": "object", "default": {"title": "kept", "$ref": "not a ref"}}},
    }


def test_var_args_are_rejected() -> None:
    def spread(*values: int) -> int:
        return 0

    with pytest.raises(ToolDefinitionError, match=r"\*args and \*\*kwargs"):
        tool(spread)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(ToolDefinitionError, match="Invalid tool name '<lambda>'"):
        tool(lambda x: x)
    assert tool(name="identity")(lambda x: x).name == "identity"


# ------------------------------------------------------------------------------------------ invoking


async def test_invoke_converts_arguments_with_the_same_model() -> None:
    received: dict[str, Any] = {}

    @tool
    def place(order: Order, color: Color, when: Literal["now", "later"] = "now") -> str:
        received.update(order=order, color=color, when=when)
        return "placed"

    arguments = {"order": {"item": "pen", "quantity": 2, "ship_to": {"street": "1 Main St"}}, "color": "red"}
    assert await place.invoke(arguments) == "placed"
    assert received["order"] == Order(item="pen", quantity=2, ship_to=Address(street="1 Main St"))
    assert received["color"] is Color.RED
    assert received["when"] == "now"


async def test_invoke_async_function_is_awaited() -> None:
    @tool
    async def double(x: int) -> int:
        """Double a number.

        Args:
            x: The number.
        """
        return 2 * x

    assert double.parameters["properties"]["x"] == {"type": "integer", "description": "The number."}
    assert await double.invoke({"x": 21}) == 42


async def test_positional_only_parameters_are_passed_positionally() -> None:
    @tool
    def minus(a: int, /, b: int) -> int:
        return a - b

    assert minus.parameters["required"] == ["a", "b"]
    assert await minus.invoke({"b": 1, "a": 5}) == 4


async def test_invoke_rejects_invalid_arguments_with_readable_problems() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(InvalidToolArgumentsError) as caught:
        await add.invoke({"a": "x", "c": 1})
    assert caught.value.problems == [
        "a: Input should be a valid integer, unable to parse string as an integer",
        "b: Field required",
        "c: Extra inputs are not permitted",
    ]


def test_tool_stays_callable_like_the_function() -> None:
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    assert add(2, b=3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert repr(add) == "Tool(name='add')"


def test_argument_errors_report_every_violation_with_its_path() -> None:
    @tool
    def place(order: Order) -> str:
        return "ok"

    problems = place.argument_errors({"order": {"item": 5, "quantity": "2", "ship_to": {}}, "extra": 1})
    assert problems == [
        "Additional properties are not allowed ('extra' was unexpected)",
        "order.item: 5 is not of type 'string'",
        "order.quantity: '2' is not of type 'integer'",
        "order.ship_to: 'street' is a required property",
    ]


# --------------------------------------------------------------------------------------- from_schema

_WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"],
}


async def test_from_schema_passes_keyword_arguments() -> None:
    def weather(**kwargs: Any) -> str:
        return json.dumps(kwargs, sort_keys=True)

    weather_tool = Tool.from_schema(
        "get_weather", "Weather for a city.", _WEATHER_SCHEMA, weather, timeout_s=3
    )
    assert weather_tool.spec == ToolSpec(
        name="get_weather", description="Weather for a city.", parameters=_WEATHER_SCHEMA
    )
    assert weather_tool.timeout_s == 3
    assert await weather_tool.invoke({"city": "Oslo", "unit": "C"}) == '{"city": "Oslo", "unit": "C"}'
    assert weather_tool.argument_errors({"unit": "K"}) == [
        "'city' is a required property",
        "unit: 'K' is not one of ['C', 'F']",
    ]


def test_from_schema_rejects_invalid_schema_and_names() -> None:
    with pytest.raises(ToolDefinitionError, match="not a valid JSON Schema"):
        Tool.from_schema("bad", "", {"type": "object", "properties": 5}, lambda: None)
    with pytest.raises(ToolDefinitionError, match="type 'object'"):
        Tool.from_schema("bad", "", {"type": "string"}, lambda: None)
    with pytest.raises(ToolDefinitionError, match="Invalid tool name 'has space'"):
        Tool.from_schema("has space", "", _WEATHER_SCHEMA, lambda: None)
    with pytest.raises(ToolDefinitionError, match="needs a function unless it is client_side"):
        Tool.from_schema("no_fn", "", _WEATHER_SCHEMA, None)


def test_client_side_tool_needs_no_function() -> None:
    client_tool = Tool.from_schema("ask_user", "Ask the user.", _WEATHER_SCHEMA, None, client_side=True)
    assert client_tool.client_side is True
    with pytest.raises(ToolDefinitionError, match="client side"):
        client_tool()


# ------------------------------------------------------------------------------------------- registry


def _one(x: int) -> int:
    """First tool."""
    return x


def _two(y: str) -> str:
    """Second tool."""
    return y


def test_registry_wraps_functions_and_keeps_order() -> None:
    registry = ToolRegistry([_two, tool(_one)])
    assert registry.names() == ["_two", "_one"]
    assert len(registry) == 2
    assert "_one" in registry
    assert "missing" not in registry
    assert [t.name for t in registry] == ["_two", "_one"]
    assert [spec.description for spec in registry.specs()] == ["Second tool.", "First tool."]
    assert registry.get("_one") is registry["_one"]
    assert registry.get("missing") is None


def test_registry_rejects_duplicate_names() -> None:
    registry = ToolRegistry([_one])
    with pytest.raises(DuplicateToolError, match=r"A tool named '_one' is already registered"):
        registry.add(tool(name="_one")(_two))


def test_registry_subset_and_unknown_names() -> None:
    registry = ToolRegistry([_one, _two])
    subset = registry.subset(["_two"])
    assert subset.names() == ["_two"]
    assert subset["_two"] is registry["_two"]
    with pytest.raises(UnknownToolError) as caught:
        registry.subset(["_one", "nope", "also_nope"])
    assert str(caught.value) == "Unknown tools 'nope', 'also_nope'. Available tools: _one, _two."
    assert caught.value.unknown == ["nope", "also_nope"]
    with pytest.raises(UnknownToolError, match=r"Unknown tool 'x'\. Available tools: _one, _two\."):
        registry["x"]


def test_unsupported_parameter_type_is_named() -> None:
    def locked(count: int, lock: threading.Lock) -> None:
        return None

    with pytest.raises(ToolDefinitionError, match=r"Tool 'locked': parameter 'lock' cannot be described"):
        tool(locked)


async def test_field_as_default_value() -> None:
    @tool
    def page(
        limit: int = Field(5, description="How many.", ge=1), tags: list[str] = Field(default_factory=list)
    ):
        """Page through results.

        Args:
            limit: Loses against the Field description.
            tags: Tags to filter by.
        """
        return {"limit": limit, "tags": tags}

    assert page.parameters == {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "description": "How many.", "default": 5, "minimum": 1},
            "tags": {"type": "array", "description": "Tags to filter by.", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    assert await page.invoke({}) == {"limit": 5, "tags": []}


_FLAT_TYPES = st.sampled_from(["string", "integer", "number", "boolean", "null", "array", "object"])
_FLAT_SCHEMAS = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(
            st.sampled_from(["a", "b", "c"]), st.builds(lambda t: {"type": t}, _FLAT_TYPES)
        ),
    },
    optional={
        "required": st.lists(st.sampled_from(["a", "b", "c"]), unique=True),
        "additionalProperties": st.booleans(),
    },
)
_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=500)
@given(_FLAT_SCHEMAS, st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _JSON_VALUES))
def test_the_fast_argument_check_never_accepts_what_jsonschema_rejects(schema: dict, arguments: dict) -> None:
    """The executor's shortcut for flat schemas may only say "surely valid" when jsonschema agrees."""
    shape = _plain_shape(schema)
    if shape is not None and shape.surely_accepts(arguments):
        assert Draft202012Validator(schema).is_valid(arguments)
