"""Grammars (GBNF) that constrain the local model to well-formed tool calls or to a response schema.

A call is `{"name": <one offered tool, as a constant>, "arguments": <that tool's parameter schema>}`:
an alternation over tools, so the name decides the argument schema. llama-cpp-python's JSON-schema
converter writes the schema parts (types, enums, required keys, string lengths); we add the family's
wrapping (`<tool_call>` tags, a fence, or bare JSON) and the one-or-many rule.

Which grammar a request gets is decided by `plan_constraint` from its tool_choice:
- `required`: calls from the first token; named: the same, that tool only (both always constrained);
- `auto`: free text; when a call trigger appears the engine cuts there and, if constraining `auto`,
  continues from that point under `call_grammar_after(trigger)`;
- `none`: no tools in the prompt, no grammar, and the tokens that open a call are banned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llama_cpp.llama_grammar import JSON_GBNF, SchemaConverter

from fncall.engine.model import GrammarConstraint
from fncall.errors import InvalidRequestError
from fncall.types import ToolChoice, ToolSpec, forced_tool_name

if TYPE_CHECKING:
    from fncall.formats.chat import CallLayout

# JSON forbids raw control characters inside strings; the converter's default `char` allows them, which
# lets a small model run on inside a string across lines.
_STRICT_CHAR_RULE = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
# The converter allows at most one space between JSON tokens; models like to pretty-print (newline and
# indent). Allowing that keeps the token the model prefers valid, which is both more natural for it and
# much faster (a rejected token costs a mask over the whole vocabulary).
_SPACE_RULE = r'| " " | "\n" [ \t]{0,20}'
_FENCE_OPEN = "```"


def gbnf_literal(text: str) -> str:
    """A GBNF string literal."""
    return json.dumps(text, ensure_ascii=False)


def _sequence(*parts: str) -> str:
    """GBNF items in order; empty literals (a layout with no prefix) are left out."""
    return " ".join(part for part in parts if part and part != '""')


def parameters_schema(tool: ToolSpec) -> dict:
    """The tool's parameter schema as the converter needs it: an object with `properties`, even when empty."""
    parameters = tool.parameters or {"type": "object", "properties": {}}
    if parameters.get("type", "object") == "object" and "properties" not in parameters:
        parameters = {**parameters, "properties": {}}
    return parameters


def call_object_schema(tool: ToolSpec, name_key: str = "name", arguments_key: str = "arguments") -> dict:
    """The JSON Schema of one call of `tool`: its name as a constant and its parameters."""
    return {
        "type": "object",
        "properties": {name_key: {"const": tool.name}, arguments_key: parameters_schema(tool)},
        "required": [name_key, arguments_key],
    }


class GrammarRules:
    """Collects GBNF rules from llama-cpp-python's JSON-schema converter plus our own: how every grammar
    here is built (calls, response formats, the ReAct agent's reply)."""

    def __init__(self, key_order: Sequence[str]) -> None:
        self._converter = SchemaConverter(
            prop_order={key: index for index, key in enumerate(key_order)},
            allow_fetch=False,
            dotall=False,
            raw_pattern=False,
        )
        self._extra: dict[str, str] = {}

    def schema(self, schema: dict[str, Any], name: str) -> str:
        """Add rules for `schema`; returns the name of its rule."""
        try:
            resolved = self._converter.resolve_refs(schema, "request")
            return self._converter.visit(resolved, name)
        except Exception as error:  # the converter raises bare exceptions on schemas it cannot do
            raise InvalidRequestError(
                f"Cannot build a grammar for the JSON schema of {name!r}: {error}", param="tools"
            ) from error

    def add(self, name: str, rule: str) -> None:
        self._extra[name] = rule

    def text(self) -> str:
        rules = dict(self._converter._rules)
        if "char" in rules:
            rules["char"] = _STRICT_CHAR_RULE
        if "space" in rules:
            rules["space"] = _SPACE_RULE
        rules.update(self._extra)
        return "\n".join(f"{name} ::= {rule}" for name, rule in sorted(rules.items())) + "\n"


def _call_rule(rules: GrammarRules, tools: Sequence[ToolSpec], layout: CallLayout) -> str:
    """Add one rule per tool and their alternation; returns the alternation's rule name."""
    if not tools:
        raise InvalidRequestError("tool calls were requested but no tools were given", param="tools")
    names = []
    for index, tool in enumerate(tools):
        schema = call_object_schema(tool, layout.name_key, layout.arguments_key)
        names.append(rules.schema(schema, f"tool{index}"))
    rules.add("call", " | ".join(names))
    return "call"


def _calls_rule(rules: GrammarRules, name: str, separator: str, parallel: bool) -> str:
    """`call`, once, or one or more times joined by `separator`; returns the rule's name."""
    rules.add(name, f"call ({_sequence(gbnf_literal(separator), 'call')})*" if parallel else "call")
    return name


OPENERS = ("layout", "fence", "bare", "any")


def call_grammar(
    tools: Sequence[ToolSpec], layout: CallLayout, *, parallel: bool, opener: str = "any"
) -> GrammarConstraint:
    """Tool calls from the first token, written the way `opener` says.

    `layout`: the family's way (prefix, calls joined by the separator, suffix); `fence`: in a ```json
    fence; `bare`: plain JSON objects, one per line; `any`: whichever of these the model starts with.
    Small models often ignore their own template's syntax (Qwen 0.5B writes fences), and forcing it on
    them costs speed (rejected tokens) for no gain, since the parser reads all three.
    """
    if opener not in OPENERS:
        raise ValueError(f"unknown call opener {opener!r}; expected one of {', '.join(OPENERS)}")
    rules = GrammarRules(layout.key_order or (layout.name_key, layout.arguments_key))
    _call_rule(rules, tools, layout)
    forms = []
    if opener in ("layout", "any"):
        calls = _calls_rule(rules, "layout-calls", layout.separator, parallel)
        rules.add("layout-form", _sequence(gbnf_literal(layout.prefix), calls, gbnf_literal(layout.suffix)))
        forms.append("layout-form")
    if opener in ("fence", "any"):
        calls = _calls_rule(rules, "fenced-calls", "\n", parallel)
        rules.add("fence-form", f'"```" "json"? "\\n" {calls} "\\n"? "```"')
        forms.append("fence-form")
    if opener in ("bare", "any") and (opener == "bare" or layout.prefix.strip()):
        forms.append(_calls_rule(rules, "bare-calls", "\n", parallel))
    rules.add("root", " | ".join(forms))
    return GrammarConstraint(gbnf=rules.text())


def opener_for_trigger(trigger: str, layout: CallLayout) -> str:
    """Which way of writing calls a trigger string begins."""
    stripped = trigger.strip()
    if stripped.startswith(_FENCE_OPEN):
        return "fence"
    if stripped and layout.prefix.strip() and layout.prefix.strip().startswith(stripped):
        return "layout"
    return "bare"


def response_format_grammar(response_format: dict[str, Any] | None) -> GrammarConstraint | None:
    """A grammar for OpenAI's `response_format`: a JSON schema, any JSON object, or None for text."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return GrammarConstraint(gbnf=JSON_GBNF)
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format of type json_schema needs json_schema.schema (a JSON Schema object)",
                param="response_format",
            )
        rules = GrammarRules(())
        rules.add("root", rules.schema(schema, "answer"))
        return GrammarConstraint(gbnf=rules.text())
    raise InvalidRequestError(
        f"response_format type {kind!r} is not supported; use text, json_object or json_schema",
        param="response_format",
    )


@dataclass(frozen=True)
class ConstraintPlan:
    """How one request is constrained, decided before generation starts.

    prompt_tools: the tools rendered into the prompt (none for tool_choice "none").
    grammar: applied from the first token (required, named, response_format), else None.
    call_tools: the tools a call may name; the parser accepts calls to these only.
    constrain_after_trigger: in auto mode, continue under a call grammar once a trigger appears.
    banned_prefixes: text whose tokens are banned (the call openers, for tool_choice "none").
    """

    prompt_tools: tuple[ToolSpec, ...]
    call_tools: tuple[ToolSpec, ...]
    grammar: GrammarConstraint | None = None
    constrain_after_trigger: bool = False
    banned_prefixes: tuple[str, ...] = field(default_factory=tuple)


def plan_constraint(
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice,
    layout: CallLayout,
    triggers: Sequence[str],
    *,
    parallel: bool,
    constrain_auto: bool,
    response_format: dict[str, Any] | None = None,
    opener: str = "any",
    grammar: str | None = None,
) -> ConstraintPlan:
    """The constraint policy for one request (see the module docstring). `grammar` (GBNF) constrains the
    whole reply of a request without tools, like `response_format`, instead of it."""
    tools = tuple(tools)
    if grammar is not None:
        if tools and tool_choice != "none":
            raise InvalidRequestError("send either grammar or tools, not both", param="grammar")
        if response_format and response_format.get("type") != "text":
            raise InvalidRequestError("send either grammar or response_format, not both", param="grammar")
        constraint = GrammarConstraint(gbnf=grammar, param="grammar")
        return ConstraintPlan(prompt_tools=(), call_tools=(), grammar=constraint)
    forced = forced_tool_name(tool_choice)
    if forced is not None:
        chosen = tuple(tool for tool in tools if tool.name == forced)
        if not chosen:
            raise InvalidRequestError(
                f"tool_choice names {forced!r}, which is not among the tools offered", param="tool_choice"
            )
        grammar = call_grammar(chosen, layout, parallel=parallel, opener=opener)
        return ConstraintPlan(prompt_tools=tools, call_tools=chosen, grammar=grammar)
    if tool_choice == "required":
        if not tools:
            raise InvalidRequestError("tool_choice is required but no tools were given", param="tool_choice")
        grammar = call_grammar(tools, layout, parallel=parallel, opener=opener)
        return ConstraintPlan(prompt_tools=tools, call_tools=tools, grammar=grammar)
    format_grammar = response_format_grammar(response_format)
    if tool_choice == "none" or not tools:
        banned = tuple(_call_openers(layout, triggers)) if tool_choice == "none" and tools else ()
        return ConstraintPlan(prompt_tools=(), call_tools=(), grammar=format_grammar, banned_prefixes=banned)
    return ConstraintPlan(
        prompt_tools=tools,
        call_tools=tools,
        grammar=format_grammar,
        constrain_after_trigger=constrain_auto and format_grammar is None,
    )


def _call_openers(layout: CallLayout, triggers: Sequence[str]) -> list[str]:
    """Markers that only ever start a tool call (tags, not `{` or a fence, which ordinary answers use)."""
    openers = [layout.prefix.strip(), *(trigger.strip() for trigger in triggers)]
    return [text for text in dict.fromkeys(openers) if re.fullmatch(r"[<\[].*[>\]]", text or "")]
