"""fncall's own tool-call format, for chat templates without tool support (SmolLM2's ChatML, Phi, Gemma).

Tools are listed in the system prompt with one instruction: answer in plain text, or reply with exactly
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`. Results come back as `<tool_response>` user turns,
which any template can show. Output is parsed like Hermes: tags, and fenced or bare JSON naming an offered
tool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fncall.formats.chat.base import CallLayout
from fncall.formats.chat.hermes import CHATML_TEMPLATE, HERMES_RULES
from fncall.formats.chat.prompt import PromptedFormat, ToolPrompt, result_text
from fncall.types import Message, ToolSpec

_LAYOUT = CallLayout(
    prefix="<tool_call>",
    suffix="</tool_call>",
    separator="</tool_call>\n<tool_call>",
    name_key="name",
    arguments_key="arguments",
    key_order=("name", "arguments"),
)


def _list_tools(tools: Sequence[ToolSpec]) -> str:
    return "\n".join(
        json.dumps(
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
            ensure_ascii=False,
        )
        for tool in tools
    )


def _offer_tools(listing: str) -> str:
    return (
        "You can use these tools:\n"
        f"{listing}\n\n"
        "Answer in plain text, or, to use a tool, reply with exactly "
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments>}}</tool_call> and nothing else.'
    )


def _render_result(message: Message) -> str:
    return f"<tool_response>\n{result_text(message)}\n</tool_response>"


_PROMPT = ToolPrompt(
    list_tools=_list_tools, offer_tools=_offer_tools, layout=_LAYOUT, render_result=_render_result
)


class GenericFormat(PromptedFormat):
    """Tools described in the system prompt of any template; calls parsed like Hermes."""

    name = "generic"
    triggers = ("<tool_call>", "```json", "```\n{", "{")
    prompt = _PROMPT
    rules = HERMES_RULES
    fallback_source = CHATML_TEMPLATE
    native = False
