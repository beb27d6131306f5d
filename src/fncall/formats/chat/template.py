"""Rendering a model's own Jinja chat template (the one in its GGUF or tokenizer_config.json), safely.

Templates come with model files, so they are untrusted code: they run in Jinja's immutable sandbox, and
every failure (a syntax error, a `raise_exception` call, a blocked attribute) becomes a `ChatTemplateError`.
The environment mirrors the one Hugging Face renders with (trim_blocks, lstrip_blocks, `tojson` keeping key
order and non-ASCII text, `raise_exception`, `strftime_now`), so templates render as their authors tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fncall.errors import ConfigError
from fncall.types import Message, ToolSpec


class ChatTemplateError(ConfigError):
    """A chat template could not be compiled or rendered."""


class _GenerationBlock(Extension):
    """Accepts Hugging Face's `{% generation %}...{% endgeneration %}` marker and renders its body as is."""

    tags = {"generation"}

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(format_string: str) -> str:
    return datetime.now().strftime(format_string)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def template_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tools in the OpenAI shape chat templates iterate over."""
    return [
        {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
        }
        for tool in tools
    ]


def template_message(message: Message) -> dict[str, Any]:
    """One message in the OpenAI-like dict shape templates expect.

    Tool-call arguments are passed as dicts: templates that JSON-encode them (Qwen's) would encode a string
    a second time, and the model then copies the double-encoded form into its next call.
    """
    entry: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.reasoning:
        entry["reasoning_content"] = message.reasoning
    if message.tool_calls:
        entry["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        entry["tool_call_id"] = message.tool_call_id
        if message.name:
            entry["name"] = message.name
    return entry


class ChatTemplate:
    """A compiled chat template: `render(messages, tools)` gives the prompt text."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._environment = ImmutableSandboxedEnvironment(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[loopcontrols, _GenerationBlock],
        )
        self._environment.filters["tojson"] = _tojson
        self._environment.globals["raise_exception"] = _raise_exception
        self._environment.globals["strftime_now"] = _strftime_now
        try:
            syntax_tree = self._environment.parse(source)
            self._template = self._environment.from_string(source)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"The chat template does not compile: {exc}") from exc
        self._variables = jinja2.meta.find_undeclared_variables(syntax_tree)

    @property
    def supports_tools(self) -> bool:
        """Whether the template reads a `tools` variable, i.e. knows how to show tools to the model."""
        return "tools" in self._variables

    def render(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        tools: Sequence[ToolSpec] = (),
        *,
        add_generation_prompt: bool = True,
        **variables: Any,
    ) -> str:
        """The prompt text. `messages` are Messages or already-shaped dicts; extra variables (such as
        `enable_thinking`) are passed through to the template."""
        shaped = [
            template_message(message) if isinstance(message, Message) else dict(message)
            for message in messages
        ]
        context = {
            "messages": shaped,
            "tools": template_tools(tools) if tools else None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **variables,
        }
        try:
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"The chat template failed to render: {exc}") from exc
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise ChatTemplateError(
                f"The chat template failed to render ({type(exc).__name__}): {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"<ChatTemplate {len(self.source)} chars, tools={self.supports_tools}>"
