"""Server-sent events as OpenAI-style APIs stream them: `data: {json}` blocks and a `data: [DONE]` end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

SSE_DONE = "data: [DONE]\n\n"

# Proxies (nginx) buffer responses by default, which would hold back every token until the end.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_data(payload: Any, *, event: str | None = None) -> str:
    """One SSE block carrying `payload` as compact JSON, with an optional `event:` name."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n"


def sse_response(blocks: AsyncIterator[str]) -> StreamingResponse:
    """A streaming response of SSE blocks with the headers that keep proxies from buffering it."""
    return StreamingResponse(blocks, media_type="text/event-stream", headers=SSE_HEADERS)
