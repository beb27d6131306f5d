"""Shared test fixtures: keep this small and generic."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from fncall.server.threaded import serve_in_thread
from postgres import fresh_postgres_url, postgres_server, postgres_url  # noqa: F401  (tests/postgres.py)

ServeApp = Callable[[Any], contextlib.AbstractContextManager[str]]


@pytest.fixture(scope="session")
def serve_app() -> ServeApp:
    """`with serve_app(app) as base_url:` runs `app` on 127.0.0.1 for the block."""
    return serve_in_thread


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
