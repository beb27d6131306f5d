"""The embedded local engine: a GGUF model in this process, constrained tool-call decoding, one queue.

The catalogue (`fncall.engine.models`) needs nothing but the standard library, so `fncall models list`
works without the `local` extra; everything else imports llama-cpp-python and is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fncall.engine.models import DEFAULT_MODEL, MODELS, ModelInfo, fetch, list_models, resolve

if TYPE_CHECKING:
    from fncall.engine.grammar import ConstraintPlan, call_grammar, plan_constraint, response_format_grammar
    from fncall.engine.model import GrammarConstraint, LocalModel, SamplingSettings
    from fncall.engine.queue import GenerationQueue

_LAZY = {
    "LocalModel": "fncall.engine.model",
    "SamplingSettings": "fncall.engine.model",
    "GrammarConstraint": "fncall.engine.model",
    "GenerationQueue": "fncall.engine.queue",
    "ConstraintPlan": "fncall.engine.grammar",
    "call_grammar": "fncall.engine.grammar",
    "plan_constraint": "fncall.engine.grammar",
    "response_format_grammar": "fncall.engine.grammar",
}

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ConstraintPlan",
    "GenerationQueue",
    "GrammarConstraint",
    "LocalModel",
    "ModelInfo",
    "SamplingSettings",
    "call_grammar",
    "fetch",
    "list_models",
    "plan_constraint",
    "resolve",
    "response_format_grammar",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
