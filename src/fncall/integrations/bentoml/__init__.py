"""fncall on BentoML (extra `bento`): the seed's two services, each with its own resources.

    LLMService         the OpenAI-compatible LLM API (`/v1/...`) over the backend named by $FNCALL_BENTO_LLM:
                       `local:` (the embedded model, default) or `openai:http://vllm:8000/v1#model` to relay
                       to a vLLM / LMDeploy server
    ExchangeAssistant  `POST /exchange {"query": ...}`, the agent API (`/v1/agents`, `/v1/runs`, ...) and a
                       relay of the LLM API, over `bentoml.depends(LLMService)`

Serve both with `bentoml serve fncall.integrations.bentoml.service:ExchangeAssistant`. This package's root
imports nothing from BentoML: the services live in `fncall.integrations.bentoml.service`.
"""

from fncall.integrations.bentoml.settings import (
    ASSISTANT_MODEL_NAME_ENV,
    DEFAULT_LLM_SPEC,
    LLM_SPEC_ENV,
    assistant_model_name,
    llm_spec_from_env,
)

__all__ = [
    "ASSISTANT_MODEL_NAME_ENV",
    "DEFAULT_LLM_SPEC",
    "LLM_SPEC_ENV",
    "assistant_model_name",
    "llm_spec_from_env",
]
