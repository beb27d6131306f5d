"""One ASGI middleware timing every HTTP request to its last byte, for the services' Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext

from prometheus_client import Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RequestObserver = Callable[[str, int, float], None]
"""Called once per request with the route's path (or "unmatched"), the status sent and the seconds taken."""


class HttpMetricsMiddleware:
    """Reports each HTTP request to `observe`; counts requests in flight in `in_progress` when given."""

    def __init__(self, app: ASGIApp, observe: RequestObserver, in_progress: Gauge | None = None) -> None:
        self.app = app
        self.observe = observe
        self.in_progress = in_progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracking = self.in_progress.track_inprogress() if self.in_progress is not None else nullcontext()
        try:
            with tracking:
                await self.app(scope, receive, send_and_observe)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.observe(endpoint, status, time.perf_counter() - started)
