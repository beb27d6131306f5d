"""Choosing a chat format: by name, or from the model's own chat template text."""

from __future__ import annotations

from fncall.formats.chat.base import ChatFormat
from fncall.formats.chat.generic import GenericFormat
from fncall.formats.chat.hermes import HermesFormat
from fncall.formats.chat.llama3 import Llama3Format
from fncall.formats.chat.mistral import MistralFormat
from fncall.formats.chat.template import ChatTemplate

_FORMATS: dict[str, ChatFormat] = {
    chat_format.name: chat_format
    for chat_format in (HermesFormat(), Llama3Format(), MistralFormat(), GenericFormat())
}
_ALIASES = {"qwen": "hermes", "qwen2.5": "hermes", "qwen3": "hermes", "llama": "llama3", "chatml": "generic"}


def format_names() -> list[str]:
    """The names `get_format` accepts (aliases aside)."""
    return list(_FORMATS)


def get_format(name: str) -> ChatFormat:
    """The chat format called `name` (case-insensitive; "qwen" and "llama" are aliases)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _FORMATS:
        raise ValueError(f"Unknown chat format {name!r}; choose one of: {', '.join(_FORMATS)}.")
    return _FORMATS[key]


def detect_format(template: str | ChatTemplate | None) -> ChatFormat:
    """The format a chat template was written for, from the tool markers it contains.

    `[TOOL_CALLS]`/`[AVAILABLE_TOOLS]` mean Mistral, `<tool_call>` Hermes/Qwen, `<|python_tag|>` (or Llama 3
    headers with tool text) Llama 3; no template, or one without tool markers, gets the generic format.
    """
    source = template.source if isinstance(template, ChatTemplate) else template
    if not source:
        return _FORMATS["generic"]
    if "[TOOL_CALLS]" in source or "[AVAILABLE_TOOLS]" in source:
        return _FORMATS["mistral"]
    if "<tool_call>" in source:
        return _FORMATS["hermes"]
    if "<|python_tag|>" in source:
        return _FORMATS["llama3"]
    if "<|start_header_id|>" in source and ("tools" in source or "ipython" in source):
        return _FORMATS["llama3"]
    return _FORMATS["generic"]
