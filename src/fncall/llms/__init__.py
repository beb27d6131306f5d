"""LLM backends behind one small async protocol, and `from_spec` to pick one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fncall.llms.base import LLM, BaseLLM, collect_stream, events_from_completion
from fncall.llms.scripted import Scripted
from fncall.llms.spec import from_spec, register_scheme

if TYPE_CHECKING:
    from fncall.llms.openai_compat import OpenAICompatible

__all__ = [
    "LLM",
    "BaseLLM",
    "OpenAICompatible",
    "Scripted",
    "collect_stream",
    "events_from_completion",
    "from_spec",
    "register_scheme",
]


def __getattr__(name: str) -> Any:
    # The OpenAI SDK is imported only by code that uses this backend.
    if name == "OpenAICompatible":
        from fncall.llms.openai_compat import OpenAICompatible

        return OpenAICompatible
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
