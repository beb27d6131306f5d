"""`POST /v1/messages`: Anthropic's Messages API over any fncall LLM backend, streamed or not.

Errors come back in Anthropic's shape, not OpenAI's: the body is parsed inside the route (not by FastAPI),
so the app-wide OpenAI-shaped handlers never see this route's validation errors.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fncall.errors import InvalidRequestError, LLMError, LLMUnavailableError, OverloadedError
from fncall.formats.anthropic import (
    MessageStreamEncoder,
    completion_to_message,
    error_body,
    parse_request,
    sse,
    to_canonical,
)
from fncall.llms.base import LLM, StreamAssembler
from fncall.types import Completion, FinishEvent, StreamEvent


def anthropic_router(llm: LLM, model_name: str) -> APIRouter:
    """A router serving `POST /v1/messages` with `llm`; responses name the model `model_name`."""
    router = APIRouter(tags=["anthropic"])

    @router.post("/v1/messages", response_model=None)
    async def create_message(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error_response(400, "invalid_request_error", "the request body is not valid JSON")
        try:
            parsed = parse_request(body)
            messages, tools, tool_choice, params = to_canonical(parsed)
        except InvalidRequestError as exc:
            return _error_response(400, "invalid_request_error", exc.message)
        message_id = "msg_" + uuid.uuid4().hex[:24]

        if not parsed.stream:
            try:
                completion = await llm.complete(messages, tools, tool_choice, params)
            except (InvalidRequestError, LLMError) as exc:
                return _failure_response(exc)
            return JSONResponse(completion_to_message(completion, model=model_name, message_id=message_id))

        events = llm.stream(messages, tools, tool_choice, params)
        try:
            # Wait for the first event before answering 200, so a backend that fails at once (overloaded,
            # unreachable) gets a real status code the client can act on, not an error inside a stream.
            first = await anext(events, None)
        except (InvalidRequestError, LLMError) as exc:
            await events.aclose()
            return _failure_response(exc)
        encoder = MessageStreamEncoder(model=model_name, message_id=message_id)
        return StreamingResponse(
            _sse_stream(events, first, encoder),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return router


async def _sse_stream(
    events: AsyncIterator[StreamEvent], first: StreamEvent | None, encoder: MessageStreamEncoder
) -> AsyncIterator[str]:
    """The SSE text of a backend stream. When the client disconnects, Starlette stops iterating this
    generator, and `finally` closes the backend stream, so the backend stops generating."""
    assembler = StreamAssembler()
    try:
        for event in encoder.start():
            yield sse(event)
        pending = [first] if first is not None else []
        while True:
            event = pending.pop() if pending else await anext(events, None)
            if event is None:
                break
            assembler.add(event)
            for wire_event in encoder.encode(event):
                yield sse(wire_event)
            if isinstance(event, FinishEvent):
                break
        if not encoder.finished:  # a backend stream without FinishEvent: close with what it sent
            message = assembler.message()
            completion = Completion(
                message=message, finish_reason="tool_calls" if message.tool_calls else "stop"
            )
            for wire_event in encoder.finish(completion):
                yield sse(wire_event)
    except (InvalidRequestError, LLMError) as exc:
        yield sse(_error_event(exc))
    except Exception as exc:  # a bug in a backend must still end the stream in the protocol's terms
        yield sse(error_body(f"the backend failed: {exc}", "api_error"))
    finally:
        await _close(events)


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _error_event(exc: InvalidRequestError | LLMError) -> dict[str, Any]:
    _, error_type = _status_of(exc)
    message = exc.message if isinstance(exc, InvalidRequestError) else str(exc)
    return error_body(message, error_type)


def _status_of(exc: InvalidRequestError | LLMError) -> tuple[int, str]:
    if isinstance(exc, InvalidRequestError):
        return 400, "invalid_request_error"
    if isinstance(exc, OverloadedError):
        return 429, "overloaded_error"
    if isinstance(exc, LLMUnavailableError):
        return 503, "api_error"
    return 502, "api_error"


def _failure_response(exc: InvalidRequestError | LLMError) -> JSONResponse:
    status, error_type = _status_of(exc)
    message = exc.message if isinstance(exc, InvalidRequestError) else str(exc)
    headers = (
        {"Retry-After": _retry_after_header(exc.retry_after)} if isinstance(exc, OverloadedError) else None
    )
    return _error_response(status, error_type, message, headers)


def _retry_after_header(seconds: float) -> str:
    return str(max(1, round(seconds)))


def _error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, error_type), status_code=status, headers=headers)
