"""Shared test fixtures: keep this small and generic."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from postgres import fresh_postgres_url, postgres_server, postgres_url  # noqa: F401  (tests/postgres.py)

ServeApp = Callable[[Any], contextlib.AbstractContextManager[str]]


@contextlib.contextmanager
def serve_asgi_app(app: Any, *, startup_timeout_s: float = 20.0) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL.

    The socket is bound before the server starts, so the port cannot be taken in between, and the URL is
    yielded only once the server accepts connections.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def serve_app() -> ServeApp:
    """`with serve_app(app) as base_url:` runs `app` on 127.0.0.1 for the block."""
    return serve_asgi_app


@pytest.fixture(scope="session")
def local_qwen() -> Any:
    """The embedded default model (Qwen2.5-Coder-0.5B), loaded once per test session.

    Same settings as the engine tests' fixture, so the process-wide engine cache shares one loaded model.
    """
    from fncall.errors import ConfigError
    from fncall.llms.local import LocalLLM

    try:
        return LocalLLM.load("qwen2.5-coder-0.5b", n_ctx=4096)
    except ConfigError as error:
        pytest.skip(f"{error} (run `make model`)")
