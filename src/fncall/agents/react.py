"""ReAct agents: the model reasons in text (Thought / Action / Action Input, or Final Answer) instead of
emitting native tool calls.

ReAct is a different *protocol* over the same loop. `ReactRunner` runs the function-calling `Runner` with the
agent's LLM wrapped in `ReactProtocolLLM`, which renders the canonical transcript (tool calls and tool
results) as ReAct text, asks the real model without native tools and with a stop sequence on "Observation:",
and parses its reply back into one canonical tool call or a final answer. Budgets, loop detection, events,
the RunResult and tool execution are the Runner's own.

The parser is lenient on purpose: small models skip "Thought:", write markdown, put the action in backticks,
send arguments as `key=value` or a bare string, or answer with one JSON object. A reply that still cannot be
read becomes an observation that restates the format, never a crash.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from fncall.agents.agent import Agent
from fncall.agents.result import RunResult
from fncall.agents.runner import Approvals, RunInput, Runner, RunStream, SubmittedResults
from fncall.agents.state import LLMRequest, RunState, StepCallback
from fncall.errors import ConfigError
from fncall.formats.chat.signatures import alternatives, resolved, type_text
from fncall.llms.answering.tool_turn import call_key
from fncall.llms.base import LLM, BaseLLM
from fncall.tools import ToolExecutor
from fncall.types import (
    Completion,
    GenerationParams,
    Message,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
    forced_tool_name,
)

OBSERVATION_STOP = "Observation:"
FORMAT_ERROR_TOOL = "react_format_error"
"""The pseudo tool call an unreadable reply becomes; its result restates the format."""

DEFAULT_PERSONA = "You are a helpful assistant."

ACTION_INPUT_HINT = "the tool's JSON object, like its example above, with the real values from the question"

REACT_FORMAT = """If no tool is needed (a greeting, small talk, a question you can answer),
write "Final Answer:" and then your answer.

To use a tool, reply with these three lines and stop:
Thought: why you need the tool
Action: one tool name ({names})
Action Input: {hint}
The system then runs the tool and shows you its result. After it, use another tool the same way, or write
"Final Answer:" and then your answer."""

FORMAT_REMINDER = """Your reply could not be used: {problem}
Reply either with "Final Answer:" and then your answer, or with
Thought: why you need the tool
Action: one tool name ({names})
Action Input: {hint}"""

_FINAL_PLACEHOLDERS = frozenset(
    {"your answer", "your reply to the user", "the answer to the user's question", "then your answer"}
)
"""Final answers that are the format's own words (a small model copies them instead of answering)."""

TOOL_ERROR_HINT = (
    "(The action failed. Fix the Action Input or choose another action; do not invent a result. If you "
    "cannot get the information, say so in the Final Answer.)"
)
REQUIRED_TOOL_HINT = "Use a tool (an Action) before you give the Final Answer."

_RENDERED_REPLY_CHARS = 1000

# ------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ReactStep:
    """What one ReAct reply asks for: an action (a tool and its arguments), a final answer, or nothing usable.

    `unparsed_arguments` holds the Action Input text when it could not be read as arguments; `note` says what
    the parser decided on the model's behalf (several names on the Action line); `problem` says why an
    `invalid` reply could not be used.
    """

    kind: Literal["action", "final", "invalid"]
    thought: str | None = None
    action: str | None = None
    arguments: dict[str, Any] | None = None
    unparsed_arguments: str | None = None
    answer: str | None = None
    problem: str | None = None
    note: str | None = None


# Labels end in a colon, ASCII or full-width (\uff1a, which models trained on Chinese text write).
_LABEL_NAMES = r"thoughts?|action[ _]?input|actions?|final[ _]?answer|observation"
# A label at the start of a line, tolerating markdown around it: "**Action:**", "### Thought:", "- Action:".
_LINE_LABEL = re.compile(
    rf"^[ \t>#*_\-]*(?P<label>{_LABEL_NAMES})[ \t*_]*[:\uff1a][ \t*_]*", re.IGNORECASE | re.MULTILINE
)
# The same labels inside a line, for replies that put everything on one line.
_INLINE_LABEL = re.compile(
    rf"(?:^|(?<=[\s.;,]))[*_]*(?P<label>{_LABEL_NAMES})[ \t*_]*[:\uff1a][ \t*_]*", re.IGNORECASE
)
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(?P<body>.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(?P<body>.*)$", re.DOTALL)
_LIST_SEPARATOR = re.compile(r"\s*(?:[,/|;&+]|\band\b|\bor\b|\bthen\b)\s*", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9_.-]+")
_KEY_VALUE = re.compile(
    r"""(?P<key>[A-Za-z_][\w-]*)\s*[=:]\s*(?P<value>"[^"]*"|'[^']*'|[^,;\n]+)""",
)
_FINAL_NAME = re.compile(r"^final[ _-]?answer$", re.IGNORECASE)
_NO_INPUT = {"", "none", "null", "n/a", "{}", "no input", "nothing"}


@dataclass(frozen=True)
class _Segment:
    label: str
    start: int
    text: str


def parse_react_reply(text: str, tools: Sequence[ToolSpec]) -> ReactStep:
    """Read one ReAct reply against the offered tools; never raises."""
    reply = _cut_at_observation(text or "")
    if not reply.strip():
        return ReactStep(kind="invalid", problem="the reply was empty.")
    segments = _segments(reply, _LINE_LABEL)
    if not any(segment.label in ("action", "final answer") for segment in segments):
        from_json = _step_from_json_reply(reply, tools)
        if from_json is not None:
            return from_json
        inline = _segments(reply, _INLINE_LABEL)
        if any(segment.label in ("action", "final answer") for segment in inline):
            segments = inline
    return _step_from_segments(reply, segments, tools)


def _canonical_label(raw: str) -> str:
    label = re.sub(r"[ _]+", " ", raw.lower())
    if label.startswith("thought"):
        return "thought"
    if label in ("action input", "actioninput"):
        return "action input"
    if label.startswith("action"):
        return "action"
    if label.startswith("final"):
        return "final answer"
    return "observation"


def _segments(text: str, pattern: re.Pattern[str]) -> list[_Segment]:
    matches = list(pattern.finditer(text))
    segments = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        segments.append(_Segment(_canonical_label(match["label"]), match.start(), text[match.end() : end]))
    return segments


def _cut_at_observation(text: str) -> str:
    """Drop an Observation the model wrote itself (and everything after it): the backend ignored the stop."""
    seen_action = False
    for segment in _segments(text, _LINE_LABEL):
        if segment.label == "observation" and seen_action:
            return text[: segment.start]
        seen_action = seen_action or segment.label == "action"
    return text


def _step_from_segments(reply: str, segments: list[_Segment], tools: Sequence[ToolSpec]) -> ReactStep:
    thought = _thought(reply, segments)
    action_at = next((i for i, s in enumerate(segments) if s.label == "action"), None)
    final_at = next((i for i, s in enumerate(segments) if s.label == "final answer"), None)
    if action_at is not None and (final_at is None or action_at < final_at):
        action = segments[action_at]
        input_text = _action_input_text(segments, action_at)
        line, _, rest = action.text.strip().partition("\n")
        if _FINAL_NAME.match(_clean_name(line)):
            answer = (input_text if input_text is not None else rest).strip()
            if answer:
                return ReactStep(kind="final", thought=thought, answer=_clean_answer(answer))
            if final_at is None:
                return ReactStep(kind="invalid", thought=thought, problem="the Final Answer was empty.")
        else:
            if input_text is None and rest.strip():
                input_text = rest  # the arguments on the lines under "Action:", without their own label
            return _action_step(line, input_text, tools, thought)
    if final_at is not None:
        answer = _clean_answer(segments[final_at].text)
        if " ".join(re.findall(r"[a-z']+", answer.lower())) in _FINAL_PLACEHOLDERS:
            problem = "the Final Answer was the format's placeholder text; write the real answer."
            return ReactStep(kind="invalid", thought=thought, problem=problem)
        if answer:
            return ReactStep(kind="final", thought=thought, answer=answer)
        return ReactStep(kind="invalid", thought=thought, problem="the Final Answer was empty.")
    if thought is not None:
        problem = "it had a Thought but neither an Action nor a Final Answer."
    else:
        problem = "it contained neither 'Action:' nor 'Final Answer:'."
    return ReactStep(kind="invalid", thought=thought, problem=problem)


def _thought(reply: str, segments: list[_Segment]) -> str | None:
    """The Thought, or the text before the first label when the model left the label out."""
    for segment in segments:
        if segment.label == "thought" and segment.text.strip():
            return segment.text.strip()
    preamble = reply[: segments[0].start] if segments else ""
    return preamble.strip() or None


def _action_input_text(segments: list[_Segment], action_at: int) -> str | None:
    for segment in segments[action_at + 1 :]:
        if segment.label == "action input":
            return segment.text
        if segment.label in ("action", "final answer"):
            return None
    return None


def _clean_answer(text: str) -> str:
    answer = text.strip()
    if answer.startswith("```") or answer.endswith("```"):
        answer = answer.strip("`").strip()
    return answer.strip("*").strip()


def _clean_name(text: str) -> str:
    return text.strip().strip("`'\"*[]<> ").rstrip(".:").strip()


# -------------------------------------------------------------------------------------- the action


def _action_step(
    line: str, input_text: str | None, tools: Sequence[ToolSpec], thought: str | None
) -> ReactStep:
    names_part, inline_input = _split_inline_arguments(line)
    if input_text is None or not input_text.strip():
        input_text = inline_input
    candidates = _action_candidates(names_part)
    if not candidates:
        return ReactStep(kind="invalid", thought=thought, problem="the Action line named no tool.")
    chosen: ToolSpec | None = None
    for candidate in candidates:
        chosen = _resolve_tool(candidate, tools)
        if chosen is not None:
            break
    if chosen is None:
        chosen = _tool_taking(_first_json_object(input_text or "") or _first_json_object(line), tools)
        if chosen is not None:
            candidates = [chosen.name]
    note = None
    if chosen is not None and len(candidates) > 1:
        others = [c for c in candidates if _resolve_tool(c, tools) is not chosen]
        note = (
            f"Note: the Action line named several tools; only one runs per step, so {chosen.name} ran "
            f"(not {', '.join(others)}). Use the others in later steps if you still need them."
        )
    name = chosen.name if chosen is not None else candidates[0]
    parsed = _parse_arguments(input_text or "", chosen)
    if parsed.problem is not None:
        return ReactStep(kind="invalid", thought=thought, action=name, problem=parsed.problem)
    notes = [text for text in (note, parsed.note) if text]
    return ReactStep(
        kind="action",
        thought=thought,
        action=name,
        arguments=parsed.arguments,
        unparsed_arguments=parsed.unparsed,
        note="\n".join(notes) or None,
    )


def _split_inline_arguments(line: str) -> tuple[str, str | None]:
    """`get_rate(currency="CAD")` or `get_rate {"currency": "CAD"}` -> the name part and the argument part."""
    stripped = line.strip().strip("`*")
    brace = stripped.find("{")
    paren = stripped.find("(")
    if brace > 0 and (paren < 0 or brace < paren):
        return stripped[:brace], stripped[brace:]
    if paren > 0:
        inner = stripped[paren + 1 :]
        inner = inner[: inner.rfind(")")] if ")" in inner else inner
        return stripped[:paren], inner.strip() or None
    return stripped, None


def _action_candidates(names_part: str) -> list[str]:
    candidates: list[str] = []
    for item in _LIST_SEPARATOR.split(names_part):
        cleaned = _clean_name(item)
        if not cleaned:
            continue
        words = _WORD.findall(cleaned)
        candidate = cleaned if len(words) != 1 else words[0]
        candidate = candidate.removeprefix("functions.").removeprefix("tools.")
        if candidate and candidate not in candidates:
            candidates.append(candidate)
    return candidates


def _normalized(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


def _resolve_tool(candidate: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The offered tool a candidate names: exactly, ignoring case and separators, or as one of its words."""
    for spec in tools:
        if spec.name == candidate:
            return spec
    wanted = _normalized(candidate)
    for spec in tools:
        if _normalized(spec.name) == wanted:
            return spec
    for word in _WORD.findall(candidate):  # "use the get_rate tool"
        for spec in tools:
            if _normalized(spec.name) == _normalized(word):
                return spec
    return None


def _tool_taking(arguments: dict[str, Any] | None, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """The one offered tool whose parameters hold every key of `arguments`. Measured on Qwen2.5-Coder-0.5B:
    it writes the arguments on the Action line (`Action: {"city": "Lisbon"}`) or copies the format's own
    words there ("one tool name"); the keys still say which tool it meant."""
    if not arguments:
        return None
    fitting = [spec for spec in tools if set(arguments) <= set(_properties(spec))]
    return fitting[0] if len(fitting) == 1 else None


# ----------------------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class _ParsedArguments:
    """What an Action Input gave: arguments, or the raw text when unreadable, or a `problem` that makes the
    whole reply a format error (a copied placeholder or schema); `note` tells the model what was repaired."""

    arguments: dict[str, Any] | None = None
    unparsed: str | None = None
    problem: str | None = None
    note: str | None = None


def _parse_arguments(text: str, spec: ToolSpec | None) -> _ParsedArguments:
    """The arguments an Action Input describes, or the raw text when they cannot be read."""
    raw = text.strip()
    body = _unfenced(raw)
    if body.lower().rstrip(".") in _NO_INPUT:
        return _ParsedArguments(arguments={})
    if _copied_from_format(body):
        return _ParsedArguments(problem=_copied_problem("the Action Input was the format's own text", spec))
    value = _first_json_object(body)
    if value is not None:
        return _checked_object(value, spec)
    properties = _properties(spec)
    pairs = _key_value_pairs(body, properties)
    if pairs:
        return _checked_object(pairs, spec)
    single = _single_parameter(spec)
    if single is not None:
        name, schema = single
        return _checked_object({name: _coerce(_unquoted(body), schema)}, spec)
    return _ParsedArguments(unparsed=raw)


def _checked_object(value: dict[str, Any], spec: ToolSpec | None) -> _ParsedArguments:
    """Unwrap a copied schema wrapper; reject copied placeholders and copied schemas."""
    note = None
    unwrapped = _unwrapped_schema_copy(value, spec)
    if unwrapped is not None:
        value, note = unwrapped
        if not value:
            return _ParsedArguments(
                problem=_copied_problem("the Action Input was a JSON Schema, not the arguments", spec)
            )
    copied = _copied_placeholders(value, spec)
    if copied:
        reason = f"the Action Input kept the example's placeholder {', '.join(copied)}"
        return _ParsedArguments(problem=_copied_problem(reason, spec))
    return _ParsedArguments(arguments=value, note=note)


def _copied_problem(reason: str, spec: ToolSpec | None) -> str:
    if spec is None:
        return f"{reason}; write the tool's arguments with real values from the question."
    return (
        f"{reason}. Write a JSON object like {action_input_example(spec)} with the real values from "
        "the question in place of the placeholders."
    )


def _normalized_words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


_FORMAT_PHRASES = tuple(
    _normalized_words(line) for line in (ACTION_INPUT_HINT, "the tool's arguments as one JSON object")
)


def _copied_from_format(text: str) -> bool:
    """Whether an Action Input is (most of) the format's description of one rather than arguments."""
    words = _normalized_words(text)
    return len(words) >= 12 and any(words in phrase or phrase in words for phrase in _FORMAT_PHRASES)


def _copied_placeholders(value: Any, spec: ToolSpec | None) -> list[str]:
    """The `<name>` placeholders from the prompt's example that a model copied instead of real values."""
    placeholders = {f"<{name}>" for name in _properties(spec)}
    found: list[str] = []

    def visit(item: Any) -> None:
        if isinstance(item, str) and item.strip() in placeholders and item.strip() not in found:
            found.append(item.strip())
        elif isinstance(item, dict):
            for inner in item.values():
                visit(inner)
        elif isinstance(item, list):
            for inner in item:
                visit(inner)

    visit(value)
    return [_json(text) for text in found]


_SCHEMA_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "definitions", "title", "description", "type", "properties", "required",
        "additionalProperties", "items", "enum", "const", "default", "anyOf", "oneOf", "allOf", "$ref",
        "format", "minimum", "maximum", "minLength", "maxLength", "pattern", "examples",
    }
)  # fmt: skip
_SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


def _looks_like_schema(value: Any) -> bool:
    """A dict made only of JSON Schema keywords that names a type (or an enum, a reference, alternatives)."""
    if not isinstance(value, dict) or not value or not set(value) <= _SCHEMA_KEYWORDS:
        return False
    kind = value.get("type")
    names_type = kind in _SCHEMA_TYPES or (
        isinstance(kind, list) and bool(kind) and set(kind) <= _SCHEMA_TYPES
    )
    return names_type or bool(set(value) & {"enum", "anyOf", "oneOf", "$ref", "properties"})


def _unwrapped_schema_copy(
    value: dict[str, Any], spec: ToolSpec | None
) -> tuple[dict[str, Any], str | None] | None:
    """`{"type": "object", "properties": {"city": "Paris"}}` -> `{"city": "Paris"}`, for a model that copied
    the schema's wrapper around its arguments. Only when the wrapper is made of schema keywords that are not
    the tool's own parameters, and its properties are the tool's parameters. Properties that are themselves
    schemas carry no value: they are dropped, and the note says so (an empty result means a copied schema)."""
    properties = _properties(spec)
    inner = value.get("properties")
    if not isinstance(inner, dict) or not inner or not properties:
        return None
    if not set(value) <= _SCHEMA_KEYWORDS or set(value) <= set(properties):
        return None
    if value.get("type", "object") != "object" or not set(inner) <= set(properties):
        return None
    arguments: dict[str, Any] = {}
    dropped: list[str] = []
    for name, item in inner.items():
        if _looks_like_schema(item) and not _expects_object(properties[name], spec):
            dropped.append(name)
        else:
            arguments[name] = item
    if not dropped or not arguments:
        return arguments, None
    note = (
        "Note: the Action Input was wrapped like a schema; its values were used, but "
        f"{', '.join(dropped)} had a schema instead of a value and was left out."
    )
    return arguments, note


def _expects_object(schema: Any, spec: ToolSpec | None) -> bool:
    target = resolved(schema, spec.parameters if spec is not None else {})
    return isinstance(target, dict) and target.get("type") == "object"


def _unfenced(text: str) -> str:
    match = _FENCE.search(text) or _OPEN_FENCE.search(text)
    body = match["body"] if match else text
    body = body.strip()
    if len(body) >= 2 and body[0] == body[-1] == "`":
        body = body.strip("`").strip()
    return body


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (prose around it is ignored); Python-style dicts are accepted too."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = _python_dict(text[start:])
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _python_dict(text: str) -> dict[str, Any] | None:
    end = text.rfind("}")
    if end < 0:
        return None
    try:
        value = ast.literal_eval(text[: end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) and all(isinstance(k, str) for k in value) else None


def _properties(spec: ToolSpec | None) -> dict[str, Any]:
    if spec is None:
        return {}
    properties = spec.parameters.get("properties")
    return properties if isinstance(properties, dict) else {}


def _key_value_pairs(text: str, properties: dict[str, Any]) -> dict[str, Any] | None:
    """`currency=CAD, amount=42` (or `currency: CAD`), when every key is one of the tool's parameters."""
    pairs = list(_KEY_VALUE.finditer(text.strip().strip("{}()")))
    if not pairs or not properties:
        return None
    if any(pair["key"] not in properties for pair in pairs):
        return None
    return {pair["key"]: _coerce(_unquoted(pair["value"]), properties[pair["key"]]) for pair in pairs}


def _single_parameter(spec: ToolSpec | None) -> tuple[str, dict[str, Any]] | None:
    """The tool's only parameter (or its only required one), which a bare Action Input fills."""
    properties = _properties(spec)
    if len(properties) == 1:
        name = next(iter(properties))
        return name, properties[name]
    required = spec.parameters.get("required", []) if spec is not None else []
    if isinstance(required, list) and len(required) == 1 and required[0] in properties:
        return required[0], properties[required[0]]
    return None


def _unquoted(text: str) -> str:
    value = text.strip().rstrip(",")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        return value[1:-1]
    return value


def _coerce(text: str, schema: Any) -> Any:
    """Text to the type the parameter's schema asks for; text stays text when it does not convert."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "string":
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if kind in ("number", "integer") and isinstance(value, bool):
        return text
    return value


# ----------------------------------------------------------------------------------- JSON replies


def _step_from_json_reply(reply: str, tools: Sequence[ToolSpec]) -> ReactStep | None:
    """A step written as one JSON object: ml-commons' {"thought","action","action_input"} or
    {"final_answer"}, LangChain's {"action": "Final Answer"}, or a native-style {"name","arguments"}."""
    value = _first_json_object(_unfenced(reply))
    if value is None:
        return None
    fields = {re.sub(r"[\s\-]+", "_", str(key).lower()): item for key, item in value.items()}
    thought = fields.get("thought") if isinstance(fields.get("thought"), str) else None
    if "final_answer" in fields:
        return ReactStep(kind="final", thought=thought, answer=_as_text(fields["final_answer"]))
    if isinstance(fields.get("action"), str):
        name = fields["action"]
        action_input = next(
            (fields[k] for k in ("action_input", "input", "arguments", "parameters") if k in fields), None
        )
    elif isinstance(fields.get("name"), str) and ("arguments" in fields or "parameters" in fields):
        name = fields["name"]
        action_input = fields.get("arguments", fields.get("parameters"))
    else:
        return None
    if _FINAL_NAME.match(name.strip()):
        return ReactStep(kind="final", thought=thought, answer=_as_text(action_input))
    if isinstance(action_input, dict):
        return _action_step(name, json.dumps(action_input, ensure_ascii=False), tools, thought)
    text = "" if action_input is None else _as_text(action_input)
    return _action_step(name, text, tools, thought)


def _as_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------------------- rendering


def tool_signature(spec: ToolSpec) -> str:
    """A tool as one line a small model imitates: `name(a: string, b: "x" | "y" = "x") - description`.

    Shown instead of the JSON Schema, which the 0.5B model copied into its Action Input (arguments one level
    too deep); optional parameters show their default, or "(optional)" when they have none.
    """
    parameters = spec.parameters
    required = _required(spec)
    rendered = []
    for name, schema in _properties(spec).items():
        text = f"{name}: {type_text(schema, parameters)}"
        if name not in required:
            has_default = isinstance(schema, dict) and "default" in schema
            text += f" = {_json(schema['default'])}" if has_default else " (optional)"
        rendered.append(text)
    description = " ".join(spec.description.split()) or "(no description)"
    return f"{spec.name}({', '.join(rendered)}) - {description}"


def action_input_example(spec: ToolSpec) -> str:
    """The Action Input a call of `spec` looks like: its own parameter names (the required ones, or the first
    one when none is required) with placeholder values of the right JSON type, never a schema."""
    properties = _properties(spec)
    required = _required(spec)
    names = [name for name in properties if name in required] or list(properties)[:1]
    example = {name: _placeholder(name, properties[name], spec.parameters) for name in names}
    return _json(example)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _required(spec: ToolSpec | None) -> set[str]:
    required = spec.parameters.get("required", []) if spec is not None else []
    return {name for name in required if isinstance(name, str)} if isinstance(required, list) else set()


def _placeholder(name: str, schema: Any, root: Mapping[str, Any]) -> Any:
    """An example value of the parameter's JSON type; strings are `<name>`, which the parser rejects when a
    model copies it instead of writing a real value."""
    schema = resolved(schema, root)
    if not isinstance(schema, dict):
        return f"<{name}>"
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    options = alternatives(schema)
    kind = schema.get("type")
    if options is not None:
        usable = [o for o in options if resolved(o, root) != {"type": "null"}] or options
        return _placeholder(name, usable[0], root)
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "string")
    if kind == "integer":
        return 0
    if kind == "number":
        return 0.0
    if kind == "boolean":
        return True
    if kind == "array":
        return [_placeholder(name, schema.get("items", {}), root)]
    if kind == "object":
        return {}
    return f"<{name}>"


def react_system_prompt(
    instructions: str, tools: Sequence[ToolSpec], tool_choice: ToolChoice = "auto"
) -> str:
    """The system prompt of a ReAct turn: the agent's instructions, the tools as signatures with an example
    Action Input each, and the reply format (the Final Answer path first, so small talk takes it)."""
    persona = instructions.strip() or DEFAULT_PERSONA
    if not tools:
        return persona
    lines = [persona, "", "You can use these tools:"]
    for spec in tools:
        lines.append(f"- {tool_signature(spec)}")
        lines.append(f"  Action Input example: {action_input_example(spec)}")
    names = ", ".join(spec.name for spec in tools)
    lines += ["", REACT_FORMAT.format(names=names, hint=ACTION_INPUT_HINT)]
    if tool_choice == "required":
        lines += ["", REQUIRED_TOOL_HINT]
    return "\n".join(lines)


def render_react_messages(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice = "auto",
    notes: dict[str, str] | None = None,
) -> list[Message]:
    """The canonical transcript as a ReAct chat: one system prompt with the tools, each assistant tool call
    as its Thought/Action/Action Input text, each tool result as an "Observation:" user turn."""
    notes = notes or {}
    instructions = "\n\n".join(m.text for m in messages if m.role == "system" and m.text.strip())
    rendered = [Message.system(react_system_prompt(instructions, tools, tool_choice))]
    observations: list[str] = []
    for message in messages:
        if message.role == "tool":
            observations.append(_observation(message, notes))
            continue
        if observations:
            rendered.append(Message.user("\n".join(observations)))
            observations = []
        if message.role == "system":
            continue
        if message.role == "assistant" and message.tool_calls:
            rendered.append(Message.assistant(_action_text(message)))
        elif message.role == "assistant":
            rendered.append(Message.assistant(message.text))
        else:
            rendered.append(Message.user(message.text))
    if observations:
        rendered.append(Message.user("\n".join(observations)))
    return rendered


def _action_text(message: Message) -> str:
    call = message.tool_calls[0]
    if call.name == FORMAT_ERROR_TOOL:
        reply = str(call.arguments.get("reply", ""))
        return reply[:_RENDERED_REPLY_CHARS] + ("..." if len(reply) > _RENDERED_REPLY_CHARS else "")
    lines = [f"Thought: {message.reasoning}"] if message.reasoning else []
    lines += [f"Action: {call.name}", f"Action Input: {call.arguments_json()}"]
    return "\n".join(lines)


def _observation(message: Message, notes: dict[str, str]) -> str:
    parts = [f"{OBSERVATION_STOP} {message.text}"]
    note = notes.get(message.tool_call_id or "")
    if note:
        parts.append(note)
    if message.is_error and message.name != FORMAT_ERROR_TOOL:
        parts.append(TOOL_ERROR_HINT)
    return "\n".join(parts)


def react_grammar(tools: Sequence[ToolSpec], *, required: bool = False) -> str:
    """A GBNF grammar for one ReAct reply: an optional one-line Thought, then a Final Answer, or an Action
    naming one of `tools` followed by an Action Input that fits that tool's parameter schema (only an
    Action when `required`, only a Final Answer without tools). Measured on Qwen2.5-Coder-0.5B without
    it: tool names it invents, several names or the arguments on the Action line, and the schema itself
    as the Action Input. Needs llama-cpp-python (`fncall[local]`) for its JSON-schema converter."""
    try:
        from fncall.engine.grammar import GrammarRules, gbnf_literal, parameters_schema
    except ImportError as error:  # pragma: no cover - the local extra is not installed
        raise ConfigError("A constrained ReAct reply needs llama-cpp-python (fncall[local]).") from error
    rules = GrammarRules(())
    rules.add("thought", '"Thought: " [^\\n]+ "\\n"')
    rules.add("final", '"Final Answer: " [^\\x00]*')
    if not tools:
        rules.add("root", "thought? final")
        return rules.text()
    actions = []
    for index, spec in enumerate(tools):
        arguments = rules.schema(parameters_schema(spec), f"input{index}")
        actions.append(f'{gbnf_literal(spec.name)} "\\nAction Input: " {arguments}')
    rules.add("action", f'"Action: " ({" | ".join(actions)})')
    rules.add("root", "thought? action" if required else "thought? (action | final)")
    return rules.text()


def format_reminder(problem: str, tool_names: Sequence[str]) -> str:
    """The observation a reply that could not be parsed gets: what was wrong, and the format again."""
    names = ", ".join(tool_names) or "(no tools)"
    return FORMAT_REMINDER.format(problem=problem, names=names, hint=ACTION_INPUT_HINT)


# ------------------------------------------------------------------------------------ the protocol


class ReactProtocolLLM(BaseLLM):
    """An LLM that speaks ReAct to `inner` and canonical completions to the Runner.

    It receives the canonical transcript and the tools, sends `inner` a text-only ReAct conversation (no
    native tools, `stop` extended with "Observation:"), and answers with a completion holding either one
    ToolCall (the thought kept as `reasoning`), the final answer as content, or a `react_format_error`
    pseudo call when the reply could not be read. One instance serves one run: it remembers the notes the
    parser made for each call so the next prompt can show them with the observation.

    `constrained`: send `inner` a grammar (`react_grammar`) so the reply is either a Final Answer or an
    Action naming an offered tool with an Action Input that fits its schema. None (the default): when
    `inner` applies grammars (`reads_grammar`: the local engine). Over HTTP, fncall's and llama.cpp's
    servers read the `grammar` field; others may refuse it, so it is sent there only when asked for.
    """

    def __init__(self, inner: LLM, *, constrained: bool | None = None) -> None:
        self.inner = inner
        self.model = inner.model
        self.constrained = getattr(inner, "reads_grammar", False) if constrained is None else constrained
        self.notes: dict[str, str] = {}

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        offered = _offered(tools, tool_choice)
        prompt = render_react_messages(messages, offered, tool_choice, self.notes)
        base = params or GenerationParams()
        stop = [*base.stop, *([] if OBSERVATION_STOP in base.stop else [OBSERVATION_STOP])]
        update: dict[str, Any] = {"stop": stop, "parallel_tool_calls": False}
        if self.constrained and offered:
            update["grammar"] = react_grammar(offered, required=tool_choice == "required")
        completion = await self.inner.complete(prompt, [], "none", base.model_copy(update=update))
        if completion.message.tool_calls:  # a backend that called a tool natively anyway: take it as is
            return completion
        message = self._message(completion, offered)
        if _repeats_an_answered_call(message, messages):
            # Measured on Qwen2.5-Coder-0.5B: after an Observation it repeats the same Action until the
            # loop detector stops the run. It already has that result: ask for the Final Answer alone.
            update["grammar"] = react_grammar([]) if self.constrained else None
            answer_prompt = render_react_messages(messages, [], "none", self.notes)
            retry = await self.inner.complete(answer_prompt, [], "none", base.model_copy(update=update))
            step = parse_react_reply(retry.message.text, [])
            if step.kind == "final" and step.answer:  # else the repeat stands, and loop detection sees it
                completion = retry
                message = Message(role="assistant", content=step.answer, reasoning=step.thought)
        finish = "tool_calls" if message.tool_calls else "stop"
        return completion.model_copy(update={"message": message, "finish_reason": finish})

    def _message(self, completion: Completion, offered: list[ToolSpec]) -> Message:
        text = completion.message.text
        if not offered:  # the summary turn, or tool_choice "none": the reply is the answer
            step = parse_react_reply(text, [])
            answer = step.answer if step.kind == "final" and step.answer else text.strip()
            return Message.assistant(answer)
        step = parse_react_reply(text, offered)
        if step.kind == "final":
            return Message(role="assistant", content=step.answer, reasoning=step.thought)
        if step.kind == "action" and step.action is not None:
            if step.unparsed_arguments is not None:
                call = ToolCall(name=step.action, unparsed_arguments=step.unparsed_arguments)
            else:
                call = ToolCall(name=step.action, arguments=step.arguments or {})
            if step.note:
                self.notes[call.id] = step.note
            return Message(role="assistant", tool_calls=[call], reasoning=step.thought)
        problem = step.problem or "it did not follow the format."
        if completion.finish_reason == "length":
            problem += " It was cut off by the token limit: keep the reply shorter."
        call = ToolCall(name=FORMAT_ERROR_TOOL, arguments={"reply": text, "problem": problem})
        return Message(role="assistant", tool_calls=[call], reasoning=step.thought)


def _repeats_an_answered_call(message: Message, messages: Sequence[Message]) -> bool:
    """Whether the reply's action is a call the transcript already holds a successful result for."""
    if not message.tool_calls:
        return False
    answered = {
        message.tool_call_id for message in messages if message.role == "tool" and not message.is_error
    }
    earlier = [
        call_key(call)
        for earlier in messages
        if earlier.role == "assistant"
        for call in earlier.tool_calls
        if call.id in answered
    ]
    return any(call_key(call) in earlier for call in message.tool_calls)


def _offered(tools: Sequence[ToolSpec], tool_choice: ToolChoice) -> list[ToolSpec]:
    if tool_choice == "none":
        return []
    forced = forced_tool_name(tool_choice)
    if forced is not None:
        return [spec for spec in tools if spec.name == forced] or list(tools)
    return list(tools)


class _ReactToolExecutor(ToolExecutor):
    """Answers `react_format_error` pseudo calls with the format reminder; runs every other call as usual."""

    async def run_call(self, call: ToolCall) -> ToolResult:
        if call.name == FORMAT_ERROR_TOOL:
            problem = str(call.arguments.get("problem", "it did not follow the format."))
            return ToolResult(
                call_id=call.id,
                name=call.name,
                content=format_reminder(problem, self.registry.names()),
                is_error=True,
                data={"error_kind": "invalid_format"},
            )
        return await super().run_call(call)


class ReactRunner(Runner):
    """Runs agents with the ReAct protocol: the same loop, budgets, events and pauses as `Runner`, tools in
    the prompt instead of native tool calls. An unparseable reply is answered with a format reminder; it
    uses up neither `max_tool_calls` nor loop detection (`max_steps` still bounds a model that never
    recovers)."""

    async def run(
        self,
        agent: Agent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        on_step: StepCallback | None = None,
    ) -> RunResult:
        return await super().run(react_agent(agent), input, history=history, on_step=on_step)

    def stream(
        self,
        agent: Agent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        on_step: StepCallback | None = None,
    ) -> RunStream:
        return super().stream(react_agent(agent), input, history=history, on_step=on_step)

    async def resume(
        self,
        agent: Agent,
        state: Mapping[str, Any],
        *,
        approvals: Approvals = MappingProxyType({}),
        tool_results: SubmittedResults = MappingProxyType({}),
        on_step: StepCallback | None = None,
    ) -> RunResult:
        return await super().resume(
            react_agent(agent), state, approvals=approvals, tool_results=tool_results, on_step=on_step
        )

    def resume_stream(
        self,
        agent: Agent,
        state: Mapping[str, Any],
        *,
        approvals: Approvals = MappingProxyType({}),
        tool_results: SubmittedResults = MappingProxyType({}),
        on_step: StepCallback | None = None,
    ) -> RunStream:
        return super().resume_stream(
            react_agent(agent), state, approvals=approvals, tool_results=tool_results, on_step=on_step
        )

    def counts_against_budget(self, call: ToolCall) -> bool:
        """The format-error pseudo call is the runner's own reply, not a tool the model chose to run."""
        return call.name != FORMAT_ERROR_TOOL

    def next_request(self, state: RunState) -> LLMRequest:
        """The base request with one action per step: ReAct has no parallel calls."""
        request = super().next_request(state)
        request.params = request.params.model_copy(update={"parallel_tool_calls": False})
        return request

    def tool_executor(self, agent: Agent) -> ToolExecutor:
        return _ReactToolExecutor(
            agent.tools, max_concurrency=agent.max_concurrency, default_timeout_s=agent.tool_timeout_s
        )


def react_agent(agent: Agent) -> Agent:
    """`agent` with its LLM wrapped in a fresh ReactProtocolLLM (one per run: it keeps per-run notes)."""
    if FORMAT_ERROR_TOOL in agent.tools:
        raise ConfigError(
            f"The tool name {FORMAT_ERROR_TOOL!r} is reserved by the ReAct runner; rename that tool."
        )
    inner = agent.llm.inner if isinstance(agent.llm, ReactProtocolLLM) else agent.llm
    return agent.model_copy(update={"llm": ReactProtocolLLM(inner)})


_DEFAULT_REACT_RUNNER = ReactRunner()


async def run_react(
    agent: Agent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    on_step: StepCallback | None = None,
) -> RunResult:
    """Run `agent` with the ReAct protocol."""
    return await _DEFAULT_REACT_RUNNER.run(agent, input, history=history, on_step=on_step)


def stream_react(
    agent: Agent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    on_step: StepCallback | None = None,
) -> RunStream:
    """Stream the events of a ReAct run of `agent`."""
    return _DEFAULT_REACT_RUNNER.stream(agent, input, history=history, on_step=on_step)


__all__ = [
    "FORMAT_ERROR_TOOL",
    "OBSERVATION_STOP",
    "ReactProtocolLLM",
    "ReactRunner",
    "ReactStep",
    "action_input_example",
    "format_reminder",
    "parse_react_reply",
    "react_agent",
    "react_system_prompt",
    "render_react_messages",
    "run_react",
    "stream_react",
    "tool_signature",
]
