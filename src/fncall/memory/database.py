"""Database engines for fncall's stores: the asyncio driver for a URL, SQLite set up for many writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from fncall.errors import ConfigError

READ_ONLY_OPTION = "fncall_read_only"
"""Execution option: a transaction that only reads (SQLite then takes no write lock up front)."""

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> URL:
    """The URL with an asyncio driver: `sqlite://` and `postgresql://` get aiosqlite and asyncpg."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def create_engine(url: URL, busy_timeout_s: float) -> tuple[AsyncEngine, bool]:
    """The engine, and whether it is an in-memory SQLite database (one shared connection)."""
    try:
        if url.get_backend_name() != "sqlite":
            return create_async_engine(url, pool_pre_ping=True), False
        in_memory = url.database in (None, "", ":memory:")
        connect_args = {"timeout": busy_timeout_s}
        if in_memory:
            engine = create_async_engine(url, poolclass=StaticPool, connect_args=connect_args)
        else:
            Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args=connect_args)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"The database driver for {url.drivername} is not installed ({exc.name}): install it with pip, "
            "e.g. `pip install asyncpg` for PostgreSQL."
        ) from exc
    _configure_sqlite(engine, busy_timeout_s, wal=not in_memory)
    return engine, in_memory


def _configure_sqlite(engine: AsyncEngine, busy_timeout_s: float, *, wal: bool) -> None:
    """WAL journal, foreign keys (for ON DELETE CASCADE), a busy timeout, and BEGIN IMMEDIATE for writes.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's BEGIN is the one emitted.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
