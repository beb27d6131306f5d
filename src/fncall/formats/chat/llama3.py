"""Llama 3.1 / 3.2 tool calls: the reply is a JSON object `{"name": ..., "parameters": {...}}`.

The object may follow `<|python_tag|>`; several calls are separated by ";" or newlines. Calls without the
tag are bare JSON, so they count only when they name an offered tool (a Llama model explaining JSON stays
text). Tool results use the template's `ipython`/`tool` turns when it has tool support.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fncall.formats.chat.base import CallLayout
from fncall.formats.chat.prompt import PromptedFormat, ToolPrompt, result_text
from fncall.formats.chat.scanner import ScanRules
from fncall.formats.chat.template import template_tools
from fncall.types import Message, ToolSpec

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

_RULES = ScanRules(python_tag="<|python_tag|>", think=("<think>", "</think>"))

_LAYOUT = CallLayout(
    prefix="",
    suffix="",
    separator="; ",
    name_key="name",
    arguments_key="parameters",
    key_order=("name", "parameters"),
)


def _list_tools(tools: Sequence[ToolSpec]) -> str:
    return "\n\n".join(json.dumps(tool, ensure_ascii=False) for tool in template_tools(tools))


def _offer_tools(listing: str) -> str:
    return (
        "You can call the functions below. To call one, reply with only a JSON object "
        '{"name": <function name>, "parameters": <arguments as a JSON object>}; '
        'separate several calls with "; ". Otherwise answer in plain text.\n\n'
        f"{listing}"
    )


def _render_result(message: Message) -> str:
    return f"Result of {message.name or 'the tool'}: {result_text(message)}"


_PROMPT = ToolPrompt(
    list_tools=_list_tools, offer_tools=_offer_tools, layout=_LAYOUT, render_result=_render_result
)


class Llama3Format(PromptedFormat):
    """Llama 3.x JSON tool calls."""

    name = "llama3"
    triggers = ("<|python_tag|>", "{", "```json", "```\n{")
    prompt = _PROMPT
    rules = _RULES
    fallback_source = LLAMA3_TEMPLATE
