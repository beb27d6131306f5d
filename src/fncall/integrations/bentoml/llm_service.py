"""The LLM service: fncall's OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`, `/v1/messages`)
over the backend $FNCALL_BENTO_LLM names: the embedded model by default, or a vLLM / LMDeploy server
(`openai:http://vllm:8000/v1#Qwen/Qwen2.5-7B-Instruct`), whose tool calls then pass through fncall's parsing.

The API is mounted at `/` because its routes already carry the `/v1` prefix: the paths are the seed's
(`@bentoml.asgi_app(app, path="/v1")` over an app with unprefixed routes).
"""

from __future__ import annotations

import bentoml

from fncall.integrations.bentoml.deferred_app import DeferredApp
from fncall.integrations.bentoml.settings import llm_spec_from_env
from fncall.llms.base import LLM
from fncall.llms.spec import from_spec
from fncall.server.llm_api import create_llm_app

LLM_SERVICE_NAME = "fncall-llm"
LLM_SERVICE_TRAFFIC = {"timeout": 300}
LLM_SERVICE_RESOURCES = {"cpu": "2", "memory": "2Gi"}

llm_api = DeferredApp("LLM service")


@bentoml.asgi_app(llm_api, path="/")
@bentoml.service(name=LLM_SERVICE_NAME, traffic=LLM_SERVICE_TRAFFIC, resources=LLM_SERVICE_RESOURCES)
class LLMService:
    """Holds one backend (for `local:`, the loaded model) and serves it with OpenAI's API."""

    def __init__(self) -> None:
        self.spec: str = llm_spec_from_env()
        self.llm: LLM = from_spec(self.spec)  # `local:` loads the model now, not on the first request
        llm_api.bind(create_llm_app(self.llm))

    @bentoml.on_startup
    async def start_api(self) -> None:
        await llm_api.start()

    @bentoml.on_shutdown
    async def stop_api(self) -> None:
        await llm_api.stop()
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()


__all__ = ["LLM_SERVICE_NAME", "LLMService", "llm_api"]
