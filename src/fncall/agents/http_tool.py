"""HTTP tools: a remote endpoint described by a JSON Schema becomes a Tool the model can call.

The target host is checked against an allow-list (loopback only unless told otherwise) before any request is
made, both when the tool is built and at every call (arguments can fill `{placeholders}` in the URL).
Redirects are not followed, so a server cannot bounce a call to a host the list does not allow. Every
failure (a refused host, a non-2xx status, a network error, a timeout) becomes a tool error the model can
read.
"""

from __future__ import annotations

import ipaddress
import json
import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import SplitResult, quote, urlsplit

from fncall.errors import ConfigError
from fncall.tools import Tool, ToolError

if TYPE_CHECKING:
    import httpx

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
"""The hosts an HTTP tool may reach when no allow-list is given."""

_ERROR_BODY_CHARS = 500


class HostNotAllowedError(ConfigError):
    """An HTTP tool's URL points at a host its allow-list does not contain."""


def host_is_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether `host` matches an entry: an exact name (case-insensitive), `*.example.com` (subdomains),
    an IP network like `10.0.0.0/8`, or `*` (any host)."""
    host = host.strip("[]").lower().rstrip(".")
    for entry in allowed_hosts:
        pattern = entry.strip().lower().rstrip(".")
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if "/" in pattern and _in_network(host, pattern):
            return True
    return False


def _in_network(host: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def check_url_allowed(url: str, allowed_hosts: Sequence[str] | None = None) -> SplitResult:
    """The parsed URL, or HostNotAllowedError when it is not an http(s) URL to an allowed host."""
    allowed = LOOPBACK_HOSTS if allowed_hosts is None else tuple(allowed_hosts)
    try:
        parsed = urlsplit(url)
        host = parsed.hostname
        _ = parsed.port  # raises ValueError for a port that is not a number
    except (ValueError, TypeError) as error:
        raise HostNotAllowedError(f"{url!r} is not a valid URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise HostNotAllowedError(f"{url!r} is not an http:// or https:// URL with a host.")
    if not host_is_allowed(host, allowed):
        listed = ", ".join(allowed) or "none"
        raise HostNotAllowedError(
            f"The host {host!r} of {url!r} is not allowed; allowed hosts: {listed}. "
            "Add it to allowed_hosts to let the tool reach it."
        )
    return parsed


def url_placeholders(url: str) -> list[str]:
    """The `{name}` fields of a URL template, filled from the call's arguments."""
    return [field for _, field, _, _ in string.Formatter().parse(url) if field]


def http_tool(
    name: str,
    url: str,
    *,
    description: str = "",
    method: HttpMethod = "POST",
    parameters: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    allowed_hosts: Sequence[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Tool:
    """A Tool that calls `method url` with the model's arguments: as the query string for GET and DELETE,
    as a JSON body otherwise; arguments named in `{placeholders}` of the URL go into the URL instead.

    The reply is the response's JSON (kept as data) or its text. `transport` replaces httpx's network
    transport (tests, custom routing).
    """
    import httpx  # imported when an HTTP tool is built, not whenever fncall.agents is

    allowed = LOOPBACK_HOSTS if allowed_hosts is None else tuple(allowed_hosts)
    fields = url_placeholders(url)
    check_url_allowed(_fill_url(url, {field: "x" for field in fields}), allowed)
    if timeout_s <= 0:
        raise ConfigError(f"HTTP tool {name!r}: timeout_s must be positive, got {timeout_s}.")
    schema = parameters or {"type": "object", "properties": {}}
    fixed_headers = dict(headers or {})
    verb = method.upper()

    async def call_endpoint(**arguments: Any) -> Any:
        missing = [field for field in fields if field not in arguments]
        if missing:
            raise ToolError(f"{name} needs {', '.join(missing)} to build its URL.")
        target = _fill_url(url, {field: arguments[field] for field in fields})
        try:
            check_url_allowed(target, allowed)
        except HostNotAllowedError as error:
            raise ToolError(str(error)) from None
        payload = {key: value for key, value in arguments.items() if key not in fields}
        request: dict[str, Any] = {"headers": fixed_headers}
        if verb in ("GET", "DELETE"):
            request["params"] = {key: _query_value(value) for key, value in payload.items()}
        else:
            request["json"] = payload
        try:
            async with httpx.AsyncClient(
                timeout=timeout_s, follow_redirects=False, transport=transport
            ) as client:
                response = await client.request(verb, target, **request)
        except httpx.TimeoutException:
            raise ToolError(f"{verb} {target} did not answer within {timeout_s:g} seconds.") from None
        except httpx.HTTPError as error:
            raise ToolError(f"Could not reach {target}: {type(error).__name__}: {error}") from None
        return _reply(response, verb, target)

    return Tool.from_schema(name, description, schema, call_endpoint)


def _fill_url(url: str, values: Mapping[str, Any]) -> str:
    quoted = {key: quote(str(value), safe="") for key, value in values.items()}
    return url.format_map(quoted) if quoted else url


def _query_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _reply(response: httpx.Response, verb: str, target: str) -> Any:
    if not response.is_success:
        body = response.text.strip()
        if len(body) > _ERROR_BODY_CHARS:
            body = body[:_ERROR_BODY_CHARS] + "..."
        detail = f": {body}" if body else ""
        raise ToolError(
            f"{verb} {target} answered HTTP {response.status_code} {response.reason_phrase}{detail}"
        )
    if not response.content:
        return f"(HTTP {response.status_code}, empty response)"
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except json.JSONDecodeError:
            pass
    return response.text


__all__ = [
    "LOOPBACK_HOSTS",
    "HostNotAllowedError",
    "HttpMethod",
    "check_url_allowed",
    "host_is_allowed",
    "http_tool",
    "url_placeholders",
]
