"""What the BentoML services read from the environment.

Settings are environment variables rather than `@bentoml.service(envs=...)` defaults on purpose: BentoML gives
a dependency service its declared default even when the variable is set, so a declared default could not be
overridden for the LLM service.
"""

from __future__ import annotations

import os

LLM_SPEC_ENV = "FNCALL_BENTO_LLM"
"""The LLM service's backend spec (see `fncall.llms.spec`)."""

DEFAULT_LLM_SPEC = "local:"
"""The embedded model, so `bentoml serve` works on a CPU with nothing else running."""

ASSISTANT_MODEL_NAME_ENV = "FNCALL_BENTO_MODEL"
"""The model name the assistant sends to the LLM service and reports on its own `/v1` relay."""

_DEFAULT_ASSISTANT_MODEL_NAME = "fncall-llm"


def llm_spec_from_env() -> str:
    """The LLM service's backend spec: $FNCALL_BENTO_LLM, or the embedded model when unset or blank."""
    return os.environ.get(LLM_SPEC_ENV, "").strip() or DEFAULT_LLM_SPEC


def assistant_model_name() -> str:
    """The model name the assistant uses towards its LLM service (fncall's LLM API serves one model whatever
    the name, so this only labels responses)."""
    return os.environ.get(ASSISTANT_MODEL_NAME_ENV, "").strip() or _DEFAULT_ASSISTANT_MODEL_NAME
