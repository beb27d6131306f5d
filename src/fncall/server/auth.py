"""API keys: when keys are configured, every route but `/health` needs `Authorization: Bearer <key>`.

Keys come from the app factory or from `FNCALL_API_KEYS` (comma-separated). `x-api-key: <key>` is accepted
too, because that is how the official Anthropic SDK sends its key to `/v1/messages`. Keys are compared in
constant time, against every configured key, so timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import sys
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from fncall.server.errors import ErrorReply, error_body

logger = logging.getLogger(__name__)

API_KEYS_ENV = "FNCALL_API_KEYS"
PUBLIC_PATHS = frozenset({"/health"})
_LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def api_keys_from_env() -> list[str]:
    """The keys in `$FNCALL_API_KEYS` (comma-separated, blanks ignored); none when it is unset."""
    return parse_api_keys(os.environ.get(API_KEYS_ENV, ""))


def parse_api_keys(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


def key_is_valid(candidate: str, keys: Iterable[bytes]) -> bool:
    """Whether `candidate` is one of `keys`, compared in constant time against each of them."""
    given = candidate.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


class ApiKeyMiddleware:
    """Refuses requests without a valid key (401, OpenAI-shaped); `/health` stays open for probes."""

    def __init__(
        self, app: ASGIApp, api_keys: Sequence[str], public_paths: frozenset[str] = PUBLIC_PATHS
    ) -> None:
        self.app = app
        self._keys = [key.encode() for key in api_keys]
        self._public = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._keys or scope.get("path") in self._public:
            await self.app(scope, receive, send)
            return
        candidate = _presented_key(scope)
        if candidate is not None and key_is_valid(candidate, self._keys):
            await self.app(scope, receive, send)
            return
        if candidate is None:
            message = (
                "This server needs an API key: send it as 'Authorization: Bearer <key>' "
                "(or 'x-api-key: <key>')."
            )
        else:
            message = "The API key is not valid for this server."
        reply = ErrorReply(
            401,
            error_body(message, "invalid_request_error", None, "invalid_api_key"),
            {"WWW-Authenticate": "Bearer"},
        )
        await reply.response()(scope, receive, send)


def _presented_key(scope: Scope) -> str | None:
    """The key in `Authorization: Bearer ...` or `x-api-key`, None when neither is there."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, api_keys: Sequence[str]) -> bool:
    """Prints a loud warning when the server binds a non-loopback address without API keys; True if it did."""
    if api_keys or is_loopback(host):
        return False
    banner = "!" * 78
    text = (
        f"\n{banner}\n"
        f"WARNING: serving on {host} WITHOUT API KEYS. Anyone who can reach this address can run agents,\n"
        f"their tools and the model. Set {API_KEYS_ENV}=key1,key2 (or pass --api-key) to require\n"
        "'Authorization: Bearer <key>', or bind 127.0.0.1.\n"
        f"{banner}\n"
    )
    print(text, file=sys.stderr, flush=True)
    logger.warning("serving on %s without API keys", host)
    return True


__all__ = [
    "API_KEYS_ENV",
    "PUBLIC_PATHS",
    "ApiKeyMiddleware",
    "api_keys_from_env",
    "is_loopback",
    "key_is_valid",
    "parse_api_keys",
    "warn_if_exposed",
]
