"""The backend under test, reached through an OpenAI-compatible server.

The issue asks for native function calling "through the server", so a backend that is not already behind
one (the embedded engine, for instance) is served by fncall's own LLM app on 127.0.0.1 for the length of
the run, and every mode talks to it with the openai SDK (`OpenAICompatible`). The measured quantity is the
model + parser + constraint behaviour as a client sees it; serving on the loopback adds a few milliseconds a
request, nothing the model's seconds would notice. An `openai:` spec already names a server and is used
as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from fncall.llms.base import LLM
from fncall.llms.spec import from_spec

SERVED_MODEL_NAME = "bfcl-target"
REQUEST_TIMEOUT_S = 600.0
_STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """The client every mode sends its requests to, and how it reaches the model (for the report)."""

    llm: LLM
    model: str
    route: str


@contextlib.asynccontextmanager
async def open_target(spec: str) -> AsyncIterator[Target]:
    """The backend `spec` names, behind an OpenAI-compatible server, as a client; closed on exit."""
    from fncall.llms.openai_compat import OpenAICompatible

    if spec.strip().startswith("openai:"):
        client = from_spec(spec)
        try:
            yield Target(client, client.model, f"the server named by {spec}")
        finally:
            await _close(client)
        return
    backend = await asyncio.to_thread(from_spec, spec)
    with _served(backend) as base_url:
        client = OpenAICompatible(
            f"{base_url}/v1", SERVED_MODEL_NAME, timeout_s=REQUEST_TIMEOUT_S, max_retries=1
        )
        try:
            model = getattr(backend, "model", SERVED_MODEL_NAME)
            yield Target(client, model, f"fncall's LLM server on {base_url} (openai SDK), backend {spec}")
        finally:
            await client.aclose()


@contextlib.contextmanager
def _served(backend: LLM) -> Iterator[str]:
    """Serve `backend` with fncall's LLM app on a free port of 127.0.0.1 in a thread; yields the base URL."""
    from fncall.server.llm_api import create_llm_app
    from fncall.server.threaded import serve_in_thread

    app = create_llm_app(backend, model_name=SERVED_MODEL_NAME)
    with serve_in_thread(app, startup_timeout_s=_STARTUP_TIMEOUT_S) as url:
        yield url


async def _close(llm: LLM) -> None:
    close = getattr(llm, "aclose", None)
    if close is not None:
        await close()
