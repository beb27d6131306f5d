"""The OpenAI-compatible LLM service over any backend that implements the LLM protocol.

`POST /v1/chat/completions` (whole or streamed), `GET /v1/models`, `GET /health` and `GET /metrics`, plus
Anthropic's `POST /v1/messages` when that router is installed. A request naming another model is served by
the one model we have and answered with the served model's name (as llama.cpp does). A client that goes away
cancels its generation, so abandoned requests do not hold the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from fncall import __version__
from fncall.formats.openai import (
    ChatCompletionRequest,
    ChunkEncoder,
    completion_to_response,
    new_request_id,
    to_canonical,
)
from fncall.llms.base import LLM, StreamAssembler
from fncall.server.errors import (
    DEFAULT_MAX_REQUEST_BYTES,
    RequestSizeLimitMiddleware,
    error_body,
    install_error_handlers,
    read_json_body,
    reply_for_exception,
)
from fncall.server.http_metrics import HttpMetricsMiddleware
from fncall.server.sse import SSE_DONE, sse_data, sse_response
from fncall.types import Completion, FinishEvent, StreamEvent, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ANTHROPIC_ROUTER_MODULE = "fncall.server.anthropic_api"


def create_llm_app(
    llm: LLM,
    *,
    model_name: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    disconnect_poll_s: float = 0.25,
) -> FastAPI:
    """A FastAPI app serving `llm` with OpenAI's chat-completions API.

    `model_name` is the name clients see (default: the backend's `model`); `max_request_bytes` bounds request
    bodies (413 above it); `disconnect_poll_s` is how often a non-streamed request checks for its client.
    """
    served_model = model_name or getattr(llm, "model", None) or "default"
    started_at = int(time.time())
    metrics = _LLMMetrics()
    app = FastAPI(title="fncall LLM service", version=__version__)
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware, max_bytes=max_request_bytes)
    app.add_middleware(
        HttpMetricsMiddleware, observe=metrics.observe_request, in_progress=metrics.in_progress
    )
    app.state.llm = llm
    app.state.model_name = served_model

    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await read_json_body(request, ChatCompletionRequest)
        messages, tools, tool_choice, params = to_canonical(body)
        request_id, created = new_request_id(), int(time.time())
        if body.stream:
            events = aiter(llm.stream(messages, tools, tool_choice, params))
            try:
                first = await _unless_disconnected(request, anext(events, None), disconnect_poll_s)
            except BaseException:
                await _close(events)
                raise
            if isinstance(first, _Disconnected):
                await _close(events)
                return Response(status_code=499)
            encoder = ChunkEncoder(served_model, request_id, created, include_usage=body.include_usage)
            return sse_response(_stream_chunks(first, events, encoder, metrics))
        outcome = await _unless_disconnected(
            request, llm.complete(messages, tools, tool_choice, params), disconnect_poll_s
        )
        if isinstance(outcome, _Disconnected):
            return Response(status_code=499)
        metrics.count_tokens(outcome.usage)
        return JSONResponse(
            completion_to_response(outcome, model=served_model, request_id=request_id, created=created)
        )

    @router.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(served_model, started_at)]}

    @router.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> Response:
        if model_id != served_model:
            body = error_body(
                f"The model {model_id!r} does not exist; this server serves {served_model!r}.",
                param="model",
                code="model_not_found",
            )
            return JSONResponse(body, status_code=404)
        return JSONResponse(_model_card(served_model, started_at))

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": served_model}

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    _include_anthropic_router(app, llm, served_model)
    return app


def _model_card(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "fncall"}


def _include_anthropic_router(app: FastAPI, llm: LLM, model_name: str) -> None:
    try:
        from fncall.server.anthropic_api import anthropic_router
    except ModuleNotFoundError as error:
        if error.name != _ANTHROPIC_ROUTER_MODULE:
            raise
        logger.info("the Anthropic Messages API is not installed; serving the OpenAI API only")
        return
    app.include_router(anthropic_router(llm, model_name))


# ------------------------------------------------------------------------------------- streaming


async def _stream_chunks(
    first: StreamEvent | None, events: AsyncIterator[StreamEvent], encoder: ChunkEncoder, metrics: _LLMMetrics
) -> AsyncIterator[str]:
    """The SSE blocks of one streamed completion; a failure mid-stream becomes an error block."""
    assembler = StreamAssembler()
    try:
        event = first
        while event is not None:
            for chunk in encoder.encode(event):
                yield sse_data(chunk)
            if isinstance(event, FinishEvent):
                metrics.count_tokens(event.completion.usage)
                break
            assembler.add(event)
            event = await anext(events, None)
        else:  # the backend's stream ended without a FinishEvent: finish it from what it sent
            message = assembler.message()
            reason = "tool_calls" if message.tool_calls else "stop"
            for chunk in encoder.encode(
                FinishEvent(completion=Completion(message=message, finish_reason=reason))
            ):
                yield sse_data(chunk)
        yield SSE_DONE
    except Exception as exc:
        reply = reply_for_exception(exc)
        if reply.status >= 500:
            logger.warning("a streamed completion failed: %s", exc, exc_info=reply.status == 500)
        metrics.errors.labels(endpoint="/v1/chat/completions", status="stream").inc()
        yield sse_data(reply.body)
    finally:
        await _close(events)


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    # Shielded: this runs while the response is being cancelled, and the backend must still be told.
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(5, shield=True):
        await aclose()


# ----------------------------------------------------------------------------------- disconnects


class _Disconnected:
    """The client went away before the answer was ready."""


async def _unless_disconnected(request: Request, work: Awaitable[T], poll_s: float) -> T | _Disconnected:
    """`work`'s result, or _Disconnected (with `work` cancelled) once the client has gone away."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                logger.info("client disconnected; cancelling its generation")
                return _Disconnected()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------------------- metrics


class _LLMMetrics:
    """Prometheus metrics of one app, in its own registry so that several apps in a process stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fncall_llm_requests", "HTTP requests served", ["endpoint", "status"], registry=self.registry
        )
        self.errors = Counter(
            "fncall_llm_errors",
            "Requests that ended in an error (status 'stream' for errors inside a stream)",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.tokens = Counter("fncall_llm_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "fncall_llm_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["endpoint"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "fncall_llm_requests_in_progress", "Requests being served", registry=self.registry
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def count_tokens(self, usage: Usage) -> None:
        self.tokens.labels(kind="prompt").inc(usage.prompt_tokens)
        self.tokens.labels(kind="completion").inc(usage.completion_tokens)
