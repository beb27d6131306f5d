"""Serving an ASGI app in a background thread of this process, for evaluations and tests on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from fncall.errors import FncallError


@contextlib.contextmanager
def serve_in_thread(app: Any, *, startup_timeout_s: float = 20.0) -> Iterator[str]:
    """Run `app` with uvicorn on a free port of 127.0.0.1 in a daemon thread; yield its base URL.

    The socket is bound before the server starts, so the port cannot be taken in between, and the URL is
    yielded only once the server accepts connections. The server stops when the block ends.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise FncallError(f"The server did not start on 127.0.0.1 within {startup_timeout_s:g} s.")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
