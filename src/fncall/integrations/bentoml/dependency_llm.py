"""The fncall LLM backend an assistant uses to reach its `bentoml.depends` LLM service.

BentoML resolves a dependency in one of three ways, and each gets the backend that fits:
- in the same process (development mode, tests): the LLM service instance itself, whose backend is shared;
- `file:///...sock` (`bentoml serve` on Linux): the LLM service's worker on a Unix socket, reached by the
  OpenAI SDK over an httpx transport bound to that socket;
- `tcp://HOST:PORT` or `http(s)://...` (other platforms, BentoCloud, `depends(url=...)`): plain HTTP.
BentoML's own client for dependencies cannot carry OpenAI's API (it speaks BentoML's endpoints over aiohttp),
so the seed's `OpenAI(http_client=self.llm.to_sync.client)` does not apply to BentoML 1.4.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx2

from fncall.errors import ConfigError
from fncall.llms.base import LLM
from fncall.llms.openai_compat import OpenAICompatible

DEPENDENCY_TIMEOUT_S = 300.0
"""Long enough for a CPU model's answer; the services' BentoML traffic timeout is the same."""

_SOCKET_BASE_URL = "http://fncall-llm.socket/v1"  # the host is a label: the transport ignores it


class UnixSocketOpenAI(OpenAICompatible):
    """An OpenAI-compatible server listening on a Unix socket (BentoML's dependency sockets)."""

    def __init__(
        self,
        socket_path: str,
        model: str,
        *,
        timeout_s: float = DEPENDENCY_TIMEOUT_S,
        max_retries: int = 3,
    ) -> None:
        transport = httpx2.AsyncHTTPTransport(uds=socket_path)
        super().__init__(
            _SOCKET_BASE_URL,
            model,
            timeout_s=timeout_s,
            max_retries=max_retries,
            http_client=httpx2.AsyncClient(transport=transport, timeout=timeout_s),
        )
        self.socket_path = socket_path
        self.base_url = f"unix:{socket_path}"  # what error messages name

    def __repr__(self) -> str:
        return f"UnixSocketOpenAI(socket_path={self.socket_path!r}, model={self.model!r})"


def llm_for_dependency(url: str | None, resolved: Any, *, model: str) -> LLM:
    """The backend for a dependency BentoML resolved to `resolved` at `url` (None: in this process).

    An in-process LLM service hands over its own backend (one loaded model, no HTTP); a remote one is reached
    with `model` as the requested model name.
    """
    if url is None:
        backend = getattr(resolved, "llm", None)
        if not isinstance(backend, LLM):
            raise ConfigError(
                f"The assistant's LLM dependency resolved to {type(resolved).__name__}, which has no fncall "
                "backend in `.llm`; depend on fncall.integrations.bentoml.llm_service.LLMService."
            )
        return backend
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return UnixSocketOpenAI(url2pathname(parsed.path), model)
    if parsed.scheme == "tcp":
        return OpenAICompatible(f"http://{parsed.netloc}/v1", model, timeout_s=DEPENDENCY_TIMEOUT_S)
    if parsed.scheme in ("http", "https"):
        return OpenAICompatible(f"{url.rstrip('/')}/v1", model, timeout_s=DEPENDENCY_TIMEOUT_S)
    raise ConfigError(
        f"Cannot reach the LLM service at {url!r}: expected a file://, tcp://, http:// or https:// address."
    )


__all__ = ["DEPENDENCY_TIMEOUT_S", "UnixSocketOpenAI", "llm_for_dependency"]
