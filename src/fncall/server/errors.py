"""Every failure of an HTTP request becomes an OpenAI-shaped error body:
`{"error": {"message", "type", "param", "code"}}`.

Client mistakes are 4xx with the offending parameter named (never FastAPI's 422 shape, never a 500),
backend failures are 429/502/503, and only our own bugs are 500. The LLM and agent APIs both install these
handlers, read JSON bodies with `read_json_body` and bound body sizes with `RequestSizeLimitMiddleware`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fncall.errors import FncallError, InvalidRequestError, LLMError, LLMUnavailableError, OverloadedError

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ErrorReply:
    """What an error becomes on the wire: a status, an OpenAI-shaped body and headers (Retry-After)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers or None)


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body OpenAI's API answers errors with."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def reply_for_exception(exc: BaseException) -> ErrorReply:
    """The HTTP reply for an exception raised while serving a request."""
    if isinstance(exc, InvalidRequestError):
        return ErrorReply(400, error_body(exc.message, "invalid_request_error", exc.param, exc.code))
    if isinstance(exc, OverloadedError):
        seconds = max(1, math.ceil(exc.retry_after))
        body = error_body(str(exc), "rate_limit_error", None, "overloaded")
        return ErrorReply(429, body, {"Retry-After": str(seconds)})
    if isinstance(exc, LLMUnavailableError):
        return ErrorReply(503, error_body(str(exc), "server_error", None, "llm_unavailable"))
    if isinstance(exc, LLMError):
        return ErrorReply(502, error_body(str(exc), "server_error", None, "llm_error"))
    if isinstance(exc, RequestTooLargeError):
        return ErrorReply(413, error_body(str(exc), "invalid_request_error", None, "request_too_large"))
    message = f"The server failed unexpectedly ({type(exc).__name__}); the error has been logged."
    return ErrorReply(500, error_body(message, "server_error", None, "internal_error"))


# ------------------------------------------------------------------------------- request bodies


async def read_json_body(request: Request, model: type[ModelT]) -> ModelT:
    """The request's JSON body validated as `model`; InvalidRequestError naming the parameter otherwise."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequestError(
            f"The request body is not valid JSON ({error}). Send a JSON object with Content-Type "
            "application/json."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise invalid_request_from_validation(error.errors(), data) from None


def invalid_request_from_validation(errors: Sequence[Any], data: Any) -> InvalidRequestError:
    """An InvalidRequestError for pydantic's first error, its `param` written like `messages[0].role`."""
    first = dict(errors[0])
    param = _param_path(tuple(first.get("loc", ())), data, missing=first.get("type") == "missing")
    where = f" at '{param}'" if param else ""
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return InvalidRequestError(
        f"Invalid request{where}: {first.get('msg', 'invalid value')}{more}.", param=param
    )


def _param_path(loc: tuple[Any, ...], data: Any, *, missing: bool) -> str | None:
    # pydantic's locations include union member tags ("str", "function-after[...]"); keep only the part
    # of the path that exists in the request, plus the name of a missing field.
    parts: list[str] = []
    current = data
    for position, key in enumerate(loc):
        if isinstance(key, int) and isinstance(current, list) and 0 <= key < len(current):
            parts.append(f"[{key}]")
            current = current[key]
        elif isinstance(key, str) and isinstance(current, dict) and key in current:
            parts.append(f".{key}" if parts else key)
            current = current[key]
        else:
            if missing and position == len(loc) - 1 and isinstance(key, str):
                parts.append(f".{key}" if parts else key)
            break
    return "".join(parts) or None


# ----------------------------------------------------------------------------------- body size


class RequestTooLargeError(FncallError):
    """A request body over the server's limit (HTTP 413)."""


class RequestSizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with a 413, before any handler reads them.

    A declared Content-Length is checked up front; a chunked body is read (up to the limit) and replayed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLargeError(
            f"The request body is larger than this server's limit of {self.max_bytes} bytes."
        )
        await reply_for_exception(error).response()(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# ------------------------------------------------------------------------------------- handlers


def install_error_handlers(app: FastAPI) -> None:
    """Make every error `app` answers OpenAI-shaped."""
    app.add_exception_handler(FncallError, _fncall_error_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)


async def _fncall_error_handler(request: Request, exc: Exception) -> JSONResponse:
    reply = reply_for_exception(exc)
    if reply.status >= 500:
        logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
    return reply.response()


async def _request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return ErrorReply(400, error_body("Invalid request.")).response()
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return ErrorReply(400, error_body("The request body is not valid JSON.")).response()
    source, rest = (loc[0], loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else (None, loc)
    data = exc.body if source == "body" and exc.body is not None else {}
    invalid = invalid_request_from_validation([{**first, "loc": rest}, *errors[1:]], data)
    if invalid.param is None and rest:
        invalid.param = ".".join(str(part) for part in rest)
    return reply_for_exception(invalid).response()


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message, code = f"Unknown URL: {request.method} {request.url.path}.", "unknown_url"
    elif exc.status_code == 405:
        message, code = f"Method {request.method} is not allowed on {request.url.path}.", "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(message, kind, None, code), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return reply_for_exception(exc).response()
