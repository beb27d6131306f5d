"""Exceptions of fncall's library API: each carries a sentence a user can act on."""

from __future__ import annotations


class FncallError(Exception):
    """Base class of every error fncall raises on purpose."""


class InvalidRequestError(FncallError):
    """A request a client sent cannot be served as given; `param` names the offending field.

    Servers turn it into an HTTP 400 with an OpenAI-shaped error body.
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class LLMError(FncallError):
    """An LLM backend failed to produce a completion."""


class LLMUnavailableError(LLMError):
    """The LLM backend could not be reached (connection refused, DNS, timeout) after retries."""


class OverloadedError(LLMError):
    """The backend's queue is full; retry after `retry_after` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(FncallError):
    """A backend spec, agent spec or setting is invalid."""
