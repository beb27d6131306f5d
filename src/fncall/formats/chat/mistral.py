"""Mistral tool calls: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, or the newer
`[TOOL_CALLS]name[ARGS]{...}` form (optionally with `[CALL_ID]id` before `[ARGS]`).

Mistral's templates insist on tool-call ids of exactly 9 alphanumeric characters, so ids are mapped to
stable 9-character hashes when rendering. Reasoning models of the family think inside `[THINK]...[/THINK]`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from fncall.formats.chat.base import CallLayout
from fncall.formats.chat.prompt import PromptedFormat, ToolPrompt, result_text
from fncall.formats.chat.scanner import ScanRules
from fncall.formats.chat.template import template_tools
from fncall.types import Message, ToolSpec

MISTRAL_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + '[/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

_RULES = ScanRules(mistral_prefix="[TOOL_CALLS]", think=("[THINK]", "[/THINK]"))

_LAYOUT = CallLayout(
    prefix="[TOOL_CALLS][",
    suffix="]",
    separator=", ",
    name_key="name",
    arguments_key="arguments",
    key_order=("name", "arguments"),
)


def mistral_call_id(call_id: str) -> str:
    """A stable 9-character alphanumeric id, the only shape Mistral's templates accept."""
    return hashlib.sha256(call_id.encode()).hexdigest()[:9]


def _list_tools(tools: Sequence[ToolSpec]) -> str:
    return json.dumps(template_tools(tools), ensure_ascii=False)


def _offer_tools(listing: str) -> str:
    return (
        f"[AVAILABLE_TOOLS]{listing}[/AVAILABLE_TOOLS]\n"
        'To call tools, reply with [TOOL_CALLS] followed by a JSON list of {"name": ..., "arguments": {...}} '
        "objects. Otherwise answer in plain text."
    )


def _render_result(message: Message) -> str:
    payload = {"call_id": message.tool_call_id, "content": result_text(message)}
    return f"[TOOL_RESULTS]{json.dumps(payload, ensure_ascii=False)}[/TOOL_RESULTS]"


_PROMPT = ToolPrompt(
    list_tools=_list_tools, offer_tools=_offer_tools, layout=_LAYOUT, render_result=_render_result
)


def _with_mistral_ids(message: Message) -> Message:
    if message.tool_calls:
        calls = [call.model_copy(update={"id": mistral_call_id(call.id)}) for call in message.tool_calls]
        return message.model_copy(update={"tool_calls": calls})
    if message.tool_call_id:
        return message.model_copy(update={"tool_call_id": mistral_call_id(message.tool_call_id)})
    return message


class MistralFormat(PromptedFormat):
    """Mistral `[TOOL_CALLS]` tool calls."""

    name = "mistral"
    triggers = ("[TOOL_CALLS]",)
    prompt = _PROMPT
    rules = _RULES
    fallback_source = MISTRAL_TEMPLATE
    fallback_eos_token = "</s>"
    fallback_has_system_role = False

    def prepare(self, messages: Sequence[Message]) -> Sequence[Message]:
        return [_with_mistral_ids(message) for message in messages]
