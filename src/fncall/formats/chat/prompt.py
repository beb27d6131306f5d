"""Prompts for chat templates that do not know tools: tools, calls and results as plain conversation text.

Many small models' templates (SmolLM2's ChatML, older Mistral and Llama templates) have no `tools` variable
and no tool role. Such a template can still show everything if the tools are described in the system
prompt, past calls are written in the family's call syntax as assistant text, and tool results come back as
user turns. The same path renders a family's prompt when no template is given at all, through a small
built-in template of the family's turn markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from fncall.formats.chat.base import CallLayout, ChatFormat, StreamParser
from fncall.formats.chat.scanner import CallScanner, ScanRules
from fncall.formats.chat.signatures import tool_signatures
from fncall.formats.chat.template import ChatTemplate, ChatTemplateError
from fncall.types import Message, ToolSpec


@dataclass(frozen=True)
class ToolPrompt:
    """How one family writes tools, calls and results as text."""

    list_tools: Callable[[Sequence[ToolSpec]], str]  # the tools in the family's own JSON shape
    offer_tools: Callable[[str], str]  # the system-prompt block around a listing: how to call
    layout: CallLayout  # how past calls are written back
    render_result: Callable[[Message], str]  # one tool message as text

    def describe_tools(self, tools: Sequence[ToolSpec], *, compact: bool = False) -> str:
        """The block that offers `tools`: listed as the family's JSON, or as compact signatures."""
        return self.offer_tools(tool_signatures(tools) if compact else self.list_tools(tools))


@cache
def builtin_template(source: str, eos_token: str = "") -> ChatTemplate:
    """A family's own fallback template, compiled once."""
    return ChatTemplate(source, eos_token=eos_token)


class PromptedFormat(ChatFormat):
    """A family defined by data: how it offers tools in text, its fallback template, its parser rules.

    Subclasses set the class attributes; `prepare` may rewrite messages before rendering.
    """

    prompt: ToolPrompt
    rules: ScanRules
    fallback_source: str
    fallback_eos_token: str = ""
    fallback_has_system_role: bool = True
    native: bool = True  # use the model's own template when it knows tools

    def prepare(self, messages: Sequence[Message]) -> Sequence[Message]:
        return messages

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        template: ChatTemplate | None,
        add_generation_prompt: bool = True,
        compact_tools: bool = False,
    ) -> str:
        return render_prompt(
            self.prepare(messages),
            tools,
            template=template,
            fallback=builtin_template(self.fallback_source, self.fallback_eos_token),
            prompt=self.prompt,
            native=self.native,
            add_generation_prompt=add_generation_prompt,
            fallback_has_system_role=self.fallback_has_system_role,
            compact_tools=compact_tools,
        )

    def stream_parser(self, tools: Sequence[ToolSpec], *, reasoning_open: bool = False) -> StreamParser:
        return CallScanner(self.rules, tools, reasoning_open=reasoning_open)

    def call_layout(self) -> CallLayout:
        return self.prompt.layout


def render_prompt(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    *,
    template: ChatTemplate | None,
    fallback: ChatTemplate,
    prompt: ToolPrompt,
    native: bool,
    add_generation_prompt: bool,
    fallback_has_system_role: bool = True,
    compact_tools: bool = False,
) -> str:
    """The prompt: the model's own template when it knows tools (and `native`), else the text-only path.

    `compact_tools` always takes the text-only path, with the tools as signatures (`signatures.py`): the
    model's template still writes the turns, but no longer the tools' JSON. A template that rejects system
    turns (it raises) gets the system text at the start of the first user turn instead.
    """
    if native and not compact_tools and template is not None and template.supports_tools:
        return template.render(messages, tools, add_generation_prompt=add_generation_prompt)
    if template is None:
        shaped = tool_free_messages(
            messages, tools, prompt, system_role=fallback_has_system_role, compact_tools=compact_tools
        )
        return fallback.render(shaped, add_generation_prompt=add_generation_prompt)
    try:
        shaped = tool_free_messages(messages, tools, prompt, compact_tools=compact_tools)
        return template.render(shaped, add_generation_prompt=add_generation_prompt)
    except ChatTemplateError:
        if not any(entry["role"] == "system" for entry in shaped):
            raise
    merged = tool_free_messages(messages, tools, prompt, system_role=False, compact_tools=compact_tools)
    return template.render(merged, add_generation_prompt=add_generation_prompt)


def tool_free_messages(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    prompt: ToolPrompt,
    *,
    system_role: bool = True,
    compact_tools: bool = False,
) -> list[dict[str, str]]:
    """Messages with only system/user/assistant roles and text content, showing tools, calls and results.

    Consecutive tool results become one user turn, and consecutive turns of one role are merged, so
    templates that insist on alternating user/assistant turns accept the result. Without `system_role`
    the system text opens the first user turn.
    """
    shaped: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            shaped.append({"role": "user", "content": prompt.render_result(message)})
        elif message.role == "assistant":
            parts = [message.content] if message.content else []
            if message.tool_calls:
                parts.append(prompt.layout.render_calls(message.tool_calls))
            shaped.append({"role": "assistant", "content": "\n".join(parts)})
        else:
            shaped.append({"role": message.role, "content": message.text})
    if tools:
        block = prompt.describe_tools(tools, compact=compact_tools)
        if shaped and shaped[0]["role"] == "system":
            existing = shaped[0]["content"]
            shaped[0]["content"] = f"{existing}\n\n{block}" if existing else block
        else:
            shaped.insert(0, {"role": "system", "content": block})
    if not system_role:
        shaped = _system_into_first_user_turn(shaped)
    return _merge_consecutive_roles(shaped)


def _system_into_first_user_turn(shaped: list[dict[str, str]]) -> list[dict[str, str]]:
    system_text = "\n\n".join(entry["content"] for entry in shaped if entry["role"] == "system")
    rest = [entry for entry in shaped if entry["role"] != "system"]
    if not system_text:
        return rest
    for entry in rest:
        if entry["role"] == "user":
            entry["content"] = f"{system_text}\n\n{entry['content']}"
            return rest
    return [{"role": "user", "content": system_text}, *rest]


def _merge_consecutive_roles(shaped: list[dict[str, str]]) -> list[dict[str, str]]:
    merged: list[dict[str, str]] = []
    for entry in shaped:
        if merged and merged[-1]["role"] == entry["role"] and entry["role"] != "system":
            merged[-1] = {"role": entry["role"], "content": f"{merged[-1]['content']}\n\n{entry['content']}"}
        else:
            merged.append(dict(entry))
    return merged


def result_text(message: Message) -> str:
    """A tool result's text, marked as an error when it is one, so the model does not mistake it for data."""
    content = message.text
    if message.is_error and not content.lower().startswith("error"):
        return f"Error: {content}"
    return content
