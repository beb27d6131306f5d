"""Compact tool signatures: every part of a schema survives; the compact prompt keeps the model's turns."""

from __future__ import annotations

from fncall.formats.chat import ChatTemplate, get_format
from fncall.formats.chat.signatures import tool_signatures, type_text
from fncall.types import Message, ToolCall, ToolResult, ToolSpec

BOOKING = ToolSpec(
    name="book_room",
    description="Book a hotel room.\n  Pays at the desk.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "kind": {"type": "string", "enum": ["single", "double"], "default": "single"},
            "guests": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "Full name"},
                        "age": {"type": "integer"},
                    },
                    "required": ["name"],
                },
            },
            "card": {
                "type": "object",
                "properties": {"number": {"type": "string", "description": "Card number"}},
                "description": "Payment card",
            },
            "nights": {"type": ["integer", "null"]},
        },
        "required": ["city", "guests"],
    },
)


def test_a_tool_becomes_one_signature_line_and_its_descriptions() -> None:
    assert tool_signatures([BOOKING]) == (
        'book_room(city: string, kind?: "single" | "double" = "single", '
        "guests: {name: string, age?: integer}[], card?: {number?: string}, nights?: integer | null): "
        "Book a hotel room. Pays at the desk.\n"
        "  city: City name\n"
        "  guests[].name: Full name\n"
        "  card: Payment card\n"
        "  card.number: Card number"
    )


def test_schema_shapes_read_as_types() -> None:
    assert type_text({"type": "array", "items": {"enum": [1, 2]}}) == "(1 | 2)[]"
    assert (
        type_text({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "string"}]})
        == "string | number"
    )
    assert type_text({"const": "x"}) == '"x"'
    assert type_text({"type": "object"}) == "object"
    assert type_text({}) == "any"
    assert type_text(True) == "any"


def test_a_tool_without_parameters_or_description() -> None:
    bare = ToolSpec(name="now", description="", parameters={"type": "object", "properties": {}})
    assert tool_signatures([bare, bare]) == "now()\nnow()"


QWEN_LIKE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endfor %}"
    "{% if tools %}TOOLS-FROM-TEMPLATE{% endif %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_compact_tools_skip_the_templates_tool_json_and_keep_its_turns() -> None:
    call = ToolCall(id="call_1", name="book_room", arguments={"city": "Oslo", "guests": []})
    messages = [
        Message.system("Be brief."),
        Message.user("Book Oslo."),
        Message.assistant(tool_calls=[call]),
        Message.tool(ToolResult(call_id="call_1", name="book_room", content="booked")),
    ]
    template = ChatTemplate(QWEN_LIKE)
    assert template.supports_tools
    hermes = get_format("hermes")
    native = hermes.render(messages, [BOOKING], template=template)
    compact = hermes.render(messages, [BOOKING], template=template, compact_tools=True)
    assert "TOOLS-FROM-TEMPLATE" in native and "TOOLS-FROM-TEMPLATE" not in compact
    assert compact.startswith(
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou can call the functions below to help with the "
        "user's request. Their signatures are inside <tools></tools>:\n<tools>\nbook_room(city: string, "
    )
    assert '{"type": "function"' not in compact
    assert (
        '<tool_call>\n{"name": "book_room", "arguments": {"city": "Oslo", "guests": []}}\n</tool_call>'
        in compact
    )
    assert "<|im_start|>user\n<tool_response>\nbooked\n</tool_response><|im_end|>" in compact
    assert compact.endswith("<|im_start|>assistant\n")


def test_refs_resolve_into_the_tools_own_definitions() -> None:
    paint = ToolSpec(
        name="paint",
        description="Paint a wall.",
        parameters={
            "$defs": {
                "Color": {"enum": ["red", "blue"], "type": "string"},
                "Wall": {"type": "object", "properties": {"side": {"type": "string", "description": "N/S"}}},
            },
            "type": "object",
            "properties": {"color": {"$ref": "#/$defs/Color"}, "wall": {"$ref": "#/$defs/Wall"}},
            "required": ["color", "wall"],
        },
    )
    assert tool_signatures([paint]) == (
        'paint(color: "red" | "blue", wall: {side?: string}): Paint a wall.\n  wall.side: N/S'
    )
    assert type_text({"$ref": "#/$defs/Missing"}, paint.parameters) == "any"
