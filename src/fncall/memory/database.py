"""Database engines for fncall's stores: the asyncio driver for a URL, SQLite set up for many writers, and
the transaction runners that execute a store's work on them.

A store's work is a plain function of a synchronous `Connection`, run as one transaction. Where it runs is
the runner's business: `AsyncEngineTransactions` (PostgreSQL, in-memory SQLite) runs it through the asyncio
driver; `SQLiteFileTransactions` runs it on threads of its own over the stdlib driver, because a SQLite file
gains nothing from an asyncio driver and pays for every statement with thread hops (measured: 2.3x the CPU
of the same transactions run whole on a thread). Its writes go through one thread that commits all the
writes waiting at that moment together (group commit): each still returns only after its data is on disk,
but one fsync serves many of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import URL, Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from fncall.errors import ConfigError
from fncall.memory.errors import MemoryStoreError

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
    _configure_sqlite(engine.sync_engine, busy_timeout_s, wal=not in_memory)
    return engine, in_memory


def is_sqlite_file(url: URL) -> bool:
    """Whether `url` names a SQLite database in a file (not in memory)."""
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def _configure_sqlite(engine: Engine, busy_timeout_s: float, *, wal: bool) -> None:
    """WAL journal, foreign keys (for ON DELETE CASCADE), a busy timeout, and BEGIN IMMEDIATE for writes.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's BEGIN is the one emitted.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            if wal:
                _switch_to_wal(cursor, busy_timeout_s)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Put the file in WAL mode (it stays so). The switch takes an exclusive lock, and SQLite answers
    "database is locked" at once instead of waiting when another connection opening the same new file holds
    it: so look first, and retry within the busy timeout."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# -------------------------------------------------------------------------------- transaction runners

T = TypeVar("T")
Work = Callable[[Connection], T]
"""A store's unit of work: runs inside one transaction on the connection it is given."""

_READER_THREADS = 2
_MAX_GROUP = 64  # writes committed together at most: bounds how long the first of them waits for the last


class Transactions(Protocol):
    """Runs a store's work, each call in a transaction of its own that is committed when the call returns."""

    async def write(self, work: Work[T]) -> T: ...

    async def read(self, work: Work[T]) -> T: ...

    async def close(self) -> None: ...


class AsyncEngineTransactions:
    """One transaction per call on an asyncio engine, the work run through `run_sync`.

    `one_connection`: the engine has a single shared connection (in-memory SQLite), so calls take turns.
    """

    def __init__(self, engine: AsyncEngine, *, one_connection: bool = False) -> None:
        self._engine = engine
        self._turn = asyncio.Lock() if one_connection else None

    async def write(self, work: Work[T]) -> T:
        async with self._turn_taking(), self._engine.begin() as connection:
            return await connection.run_sync(work)

    async def read(self, work: Work[T]) -> T:
        async with self._turn_taking(), self._engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY_OPTION: True})
            async with connection.begin():
                return await connection.run_sync(work)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to whoever made it."""

    def _turn_taking(self) -> AbstractAsyncContextManager[object]:
        return self._turn if self._turn is not None else nullcontext()


@dataclass
class _WriteJob:
    work: Work[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[_WriteJob, Any, BaseException | None]
"""A write's job, its result, and the exception it raised instead (None when it did not)."""

_STOP = object()


class SQLiteFileTransactions:
    """A SQLite file's transactions on threads: reads on a small pool, writes on one thread, group committed.

    A write that raises is undone alone and its caller gets the exception; a commit that fails fails every
    write of its group. Other processes and stores on the same file take turns with this one through
    SQLite's busy timeout, as before.
    """

    def __init__(self, url: URL, busy_timeout_s: float) -> None:
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        sync_url = url.set(drivername="sqlite+pysqlite")
        self._engine = create_sync_engine(
            sync_url,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            pool_size=_READER_THREADS + 1,
            max_overflow=0,
        )
        _configure_sqlite(self._engine, busy_timeout_s, wal=True)
        self._readers = ThreadPoolExecutor(_READER_THREADS, thread_name_prefix="fncall-sqlite-read")
        self._jobs: queue.SimpleQueue[_WriteJob | object] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="fncall-sqlite-write", daemon=True)
        self._writer.start()
        self._closed = False

    async def write(self, work: Work[T]) -> T:
        self._refuse_if_closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_WriteJob(work, future, loop))
        return await future

    async def read(self, work: Work[T]) -> T:
        self._refuse_if_closed()
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_now, work)

    async def close(self) -> None:
        """Finish the writes already queued, then stop the threads and close the connections."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        self._readers.shutdown(wait=True)
        self._engine.dispose()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise MemoryStoreError("The memory store is closed: open it again to use it.")

    def _read_now(self, work: Work[T]) -> T:
        with self._engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY_OPTION: True})
            with connection.begin():
                return work(connection)

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                return
            group = [first]
            stopping = False
            while len(group) < _MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                group.append(job)
            self._commit_group([job for job in group if isinstance(job, _WriteJob)])
            if stopping:
                return

    def _commit_group(self, group: list[_WriteJob]) -> None:
        """Runs the group's writes in one transaction. Should one raise, the transaction is rolled back and
        the group runs again with a savepoint around each write (savepoints cost a third of this thread's
        time when taken on every write, and writes rarely fail)."""
        outcomes: list[_Outcome]
        try:
            with self._engine.connect() as connection, connection.begin():
                outcomes = [(job, job.work(connection), None) for job in group]
        except Exception as error:
            outcomes = [(group[0], None, error)] if len(group) == 1 else self._commit_isolated(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            # RuntimeError: the caller's event loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)

    def _commit_isolated(self, group: list[_WriteJob]) -> list[_Outcome]:
        """The group again, each write in a savepoint: one that raises is undone alone."""
        outcomes: list[_Outcome] = []
        try:
            with self._engine.connect() as connection, connection.begin():
                for job in group:
                    try:
                        with connection.begin_nested():
                            outcomes.append((job, job.work(connection), None))
                    except Exception as error:
                        outcomes.append((job, None, error))
        except Exception as error:  # BEGIN or COMMIT failed: nothing of the group was stored
            outcomes = [(job, None, error) for job in group]
        return outcomes


def _settle(outcomes: list[_Outcome]) -> None:
    for job, value, error in outcomes:
        if job.future.done():  # its caller was cancelled
            continue
        if error is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(error)


def open_transactions(url: URL, busy_timeout_s: float) -> tuple[AsyncEngine, Transactions]:
    """The asyncio engine for `url` and the runner a store's work should use on it."""
    engine, one_connection = create_engine(url, busy_timeout_s)
    if is_sqlite_file(url):
        return engine, SQLiteFileTransactions(url, busy_timeout_s)
    return engine, AsyncEngineTransactions(engine, one_connection=one_connection)
