"""The whole service in one process: the agent API, the seed-compatible routes and, unless the agents use a
remote LLM, the OpenAI-compatible LLM API over the embedded model, which agents then call in-process.

    app = create_app()                                        # embedded model, $FNCALL_DATA_DIR/fncall.db
    app = create_app("openai:http://10.0.0.5:8000/v1#qwen")   # agents on a remote LLM service, no LLM API
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fncall import __version__
from fncall.agents.assistants import EXCHANGE_SYSTEM_PROMPT, STOCK_SYSTEM_PROMPT
from fncall.llms.base import LLM
from fncall.memory import MemoryStore, default_database_url
from fncall.server.agent_api import agent_router, install_agent_error_handlers
from fncall.server.agent_store import AgentDefinition, AgentStore
from fncall.server.auth import ApiKeyMiddleware, api_keys_from_env
from fncall.server.compat import EXCHANGE_AGENT_ID, compat_router
from fncall.server.errors import DEFAULT_MAX_REQUEST_BYTES, RequestSizeLimitMiddleware, install_error_handlers
from fncall.server.http_metrics import HttpMetricsMiddleware
from fncall.server.runs import LLMFactory, RunMetrics, RunService

logger = logging.getLogger(__name__)

EMBEDDED_LLM_SPEC = "local:"
STOCK_AGENT_ID = "stock"


def builtin_agents(llm_spec: str) -> dict[str, AgentDefinition]:
    """The agents every server registers at startup under stable ids: the seeds' Exchange Assistant and the
    stock assistant, on the server's LLM."""
    exchange = {
        "name": "exchange-assistant",
        "description": "Converts an amount between currencies (the BentoML seed's Exchange Assistant).",
        "system_prompt": EXCHANGE_SYSTEM_PROMPT,
        "llm": {"spec": llm_spec},
        "tools": [{"type": "builtin", "name": "convert_currency"}],
    }
    stock = {
        "name": "stock-assistant",
        "description": "Stock prices and company news by ticker symbol (the Triton tutorial's tools).",
        "system_prompt": STOCK_SYSTEM_PROMPT,
        "llm": {"spec": llm_spec},
        "tools": [
            {"type": "builtin", "name": "get_current_stock_price"},
            {"type": "builtin", "name": "get_company_news"},
        ],
    }
    return {
        EXCHANGE_AGENT_ID: AgentDefinition.from_request(exchange),
        STOCK_AGENT_ID: AgentDefinition.from_request(stock),
    }


def create_app(
    llm_spec: str | None = None,
    *,
    database_url: str | None = None,
    api_keys: Sequence[str] | None = None,
    llm: LLM | None = None,
    llm_factory: LLMFactory | None = None,
    serve_llm_api: bool | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> FastAPI:
    """The agent service as one FastAPI app.

    `llm_spec` is the LLM of the built-in agents; None means the embedded model (`local:`). An embedded
    model (`local:...`) is loaded now and also served as the OpenAI-compatible LLM API on the same app
    (`serve_llm_api` overrides that choice).
    `llm` is the backend behind `llm_spec` when the caller already has one. `llm_factory` turns the
    `llm.spec` of agent specs into backends (default `fncall.llms.from_spec`; tests inject a scripted one);
    backends are made once per spec string and shared. `database_url` defaults to `$FNCALL_DATABASE_URL` or
    the data directory's SQLite file; `api_keys` to `$FNCALL_API_KEYS`.
    """
    default_spec = llm_spec or EMBEDDED_LLM_SPEC
    embedded = default_spec.startswith(EMBEDDED_LLM_SPEC)
    factory = _SharedLLMFactory(llm_factory or _from_spec)
    if llm is None and embedded:
        llm = factory(default_spec)  # loads the model now, so the first request does not wait for it
    if llm is not None:
        factory.preset(default_spec, llm)
    keys = list(api_keys) if api_keys is not None else api_keys_from_env()
    url = database_url or default_database_url()
    metrics = RunMetrics()
    served_llm = llm if (serve_llm_api if serve_llm_api is not None else embedded) else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        memory = await MemoryStore.open(url)
        agents = await AgentStore.open(url)
        service = RunService(memory, agents, factory, metrics, default_llm_spec=default_spec)
        try:
            for agent_id, definition in builtin_agents(default_spec).items():
                service.build(definition)
                await agents.put_builtin(agent_id, definition)
            app.state.run_service = service
            yield
        finally:
            await service.shutdown()
            await agents.close()
            await memory.close()

    app = FastAPI(
        title="fncall agent service",
        version=__version__,
        description="Function-calling agents over HTTP: register, run, stream, approve, remember.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_agent_error_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware, max_bytes=max_request_bytes)
    app.add_middleware(ApiKeyMiddleware, api_keys=keys)
    app.add_middleware(HttpMetricsMiddleware, observe=metrics.observe_request)
    app.state.api_keys_configured = bool(keys)

    llm_app = None
    if served_llm is not None:
        from fncall.server.llm_api import create_llm_app

        llm_app = create_llm_app(served_llm, max_request_bytes=max_request_bytes)

    @app.get("/health", tags=["service"], summary="Liveness (open without an API key)")
    async def health(request: Request) -> dict[str, Any]:
        service: RunService | None = getattr(request.app.state, "run_service", None)
        body: dict[str, Any] = {"status": "ok"}  # open without a key: nothing about where the LLM lives
        if served_llm is not None:
            body["model"] = getattr(served_llm, "model", None)
        body["runs_in_progress"] = service.active_count() if service is not None else 0
        return body

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics: runs, steps, tool calls, errors")
    async def prometheus_metrics() -> Response:
        text = generate_latest(metrics.registry)
        if llm_app is not None:
            text += await _llm_metrics(llm_app)
        return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)

    app.include_router(agent_router())
    app.include_router(compat_router())
    if llm_app is not None:
        app.mount(
            "/", llm_app
        )  # last, so every route above wins: /v1/chat/completions, /v1/models, /v1/messages
    return app


async def _llm_metrics(llm_app: FastAPI) -> bytes:
    """The mounted LLM API's own metrics, appended to ours (its /metrics route is hidden behind ours)."""
    transport = httpx.ASGITransport(app=llm_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llm-api") as client:
        response = await client.get("/metrics")
    return response.content if response.status_code == 200 else b""


def _from_spec(spec: str) -> LLM:
    from fncall.llms.spec import from_spec  # backends import optional dependencies when first used

    return from_spec(spec)


class _SharedLLMFactory:
    """Makes one backend per spec string and hands it to every agent that names it (one loaded model, one
    HTTP connection pool)."""

    def __init__(self, make: Callable[[str], LLM]) -> None:
        self._make = make
        self._made: dict[str, LLM] = {}
        self._lock = threading.Lock()

    def preset(self, spec: str, llm: LLM) -> None:
        self._made[spec.strip()] = llm

    def __call__(self, spec: str) -> LLM:
        key = spec.strip()
        with self._lock:
            if key not in self._made:
                self._made[key] = self._make(key)
            return self._made[key]


__all__ = ["EMBEDDED_LLM_SPEC", "STOCK_AGENT_ID", "builtin_agents", "create_app"]
