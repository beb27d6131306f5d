"""An ASGI app that can be mounted before it exists.

`@bentoml.asgi_app` takes its app when the service class is defined, in every process that imports the
module, but fncall's apps must be built inside the service's own worker (building the LLM app loads the
model). So the class mounts a `DeferredApp`, and the service instance binds the real app to it.

It is a Starlette app whose routes are the bound app's routes: BentoML's mount then passes on every path the
bound app does not serve (its own index page, docs and probes keep working when the mount is at `/`).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from fncall.server.errors import error_body


class DeferredApp(Starlette):
    """Forwards requests to the app given to `bind`; runs that app's lifespan between `start` and `stop`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._bound: Starlette | None = None
        self._lifespan: AsyncExitStack | None = None

    @property
    def bound(self) -> Starlette | None:
        return self._bound

    def bind(self, app: Starlette) -> None:
        self._bound = app

    @property
    def routes(self) -> list[BaseRoute]:
        return list(self._bound.routes) if self._bound is not None else []

    async def start(self) -> None:
        """Run the bound app's startup (its lifespan), as a server would for a top-level app."""
        if self._bound is None:
            raise RuntimeError(f"{self.name}: bind an app before starting it")
        if self._lifespan is not None:
            return
        stack = AsyncExitStack()
        await stack.enter_async_context(self._bound.router.lifespan_context(self._bound))
        self._lifespan = stack

    async def stop(self) -> None:
        """Run the bound app's shutdown; a no-op when it was not started."""
        stack, self._lifespan = self._lifespan, None
        if stack is not None:
            await stack.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the bound app's lifespan runs through start/stop instead
            await super().__call__(scope, receive, send)
            return
        if self._bound is None:
            body = error_body(
                f"The {self.name} is still starting; retry shortly.", "server_error", None, None
            )
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        await self._bound(scope, receive, send)


__all__ = ["DeferredApp"]
