"""The Exchange Assistant service: the seed's `POST /exchange {"query": ...}` -> text, plus fncall's agent API
(`/v1/agents`, `/v1/runs`, `/v1/memory`, the ml-commons routes) and a relay of the LLM API at `/v1/chat/...`,
all over the LLM service it depends on.

It needs no model of its own, so it asks for one CPU and scales apart from the LLM service. Runs and
conversations go to `$FNCALL_DATABASE_URL` (default: SQLite in fncall's data directory); give every replica
the same PostgreSQL URL when it runs more than one.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import Field

from fncall.agents.assistants import EXCHANGE_DEFAULT_QUERY
from fncall.integrations.bentoml.deferred_app import DeferredApp
from fncall.integrations.bentoml.dependency_llm import llm_for_dependency
from fncall.integrations.bentoml.llm_service import LLMService
from fncall.integrations.bentoml.settings import assistant_model_name
from fncall.llms.base import LLM
from fncall.server.app import create_app
from fncall.server.compat import EXCHANGE_AGENT_ID
from fncall.server.runs import RunService

ASSISTANT_SERVICE_NAME = "fncall-exchange-assistant"
ASSISTANT_TRAFFIC = {"timeout": 300}
ASSISTANT_RESOURCES = {"cpu": "1", "memory": "1Gi"}

DEPENDENCY_LLM_SPEC = "bentoml:fncall-llm"
"""The LLM spec agents name to run on the LLM service (the built-in agents do; so may registered ones)."""

agent_api = DeferredApp("Exchange Assistant")


@bentoml.asgi_app(agent_api, path="/")
@bentoml.service(name=ASSISTANT_SERVICE_NAME, traffic=ASSISTANT_TRAFFIC, resources=ASSISTANT_RESOURCES)
class ExchangeAssistant:
    """Runs fncall's agents; every LLM call goes to the `llm` dependency."""

    llm = bentoml.depends(LLMService)

    def __init__(self) -> None:
        dependency = type(self).llm  # the descriptor itself: after resolving, `.url` says where the LLM is
        resolved = self.llm
        self.backend: LLM = llm_for_dependency(dependency.url, resolved, model=assistant_model_name())
        agent_api.bind(create_app(DEPENDENCY_LLM_SPEC, llm=self.backend, serve_llm_api=True))

    @bentoml.on_startup
    async def start_api(self) -> None:
        await agent_api.start()

    @bentoml.on_shutdown
    async def stop_api(self) -> None:
        await agent_api.stop()
        close = getattr(self.backend, "aclose", None)
        if close is not None and type(self).llm.url is not None:  # an in-process backend is the LLM's
            await close()

    @bentoml.api
    async def exchange(self, query: Annotated[str, Field(min_length=1)] = EXCHANGE_DEFAULT_QUERY) -> str:
        """Answer a currency question with the convert_currency tool, as the BentoML seed does."""
        app = agent_api.bound
        service: RunService | None = getattr(app.state, "run_service", None) if app is not None else None
        if service is None:
            raise BentoMLException(
                "The Exchange Assistant is still starting; retry shortly.",
                error_code=HTTPStatus.SERVICE_UNAVAILABLE,
            )
        prepared = await service.prepare(EXCHANGE_AGENT_ID, query)
        finished = await service.run_to_end(prepared)
        interaction = finished.interaction
        if interaction.status != "completed":
            raise BentoMLException(
                interaction.error or "The Exchange Assistant did not finish its answer.",
                error_code=HTTPStatus.BAD_GATEWAY,
            )
        return interaction.response or ""


__all__ = ["ASSISTANT_SERVICE_NAME", "DEPENDENCY_LLM_SPEC", "ExchangeAssistant", "agent_api"]
