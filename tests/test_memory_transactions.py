"""The transaction runners under the memory store: SQLite files on threads with group commit, one commit for a
new conversation and its first turn, and the openai backend's plain-JSON request path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from fncall.memory import MemoryNotFoundError, MemoryStore
from fncall.memory.database import AsyncEngineTransactions, SQLiteFileTransactions, open_transactions


def _table(connection: Connection) -> None:
    connection.execute(text("CREATE TABLE items (name TEXT PRIMARY KEY)"))


def _insert(name: str):
    def work(connection: Connection) -> str:
        connection.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": name})
        return name

    return work


def _names(connection: Connection) -> list[str]:
    return [row[0] for row in connection.execute(text("SELECT name FROM items ORDER BY name"))]


async def _grouped(
    transactions: SQLiteFileTransactions, works: list[Callable[[Connection], str]]
) -> list[str | BaseException]:
    """Runs `works` as one group: the writer thread is held until all of them are queued behind it."""
    release = threading.Event()

    def hold(connection: Connection) -> None:
        release.wait(10)

    held = asyncio.ensure_future(transactions.write(hold))
    await asyncio.sleep(0.05)  # the writer thread is now inside `hold`
    pending = [asyncio.ensure_future(transactions.write(work)) for work in works]
    await asyncio.sleep(0)
    release.set()
    await held
    return await asyncio.gather(*pending, return_exceptions=True)


async def test_a_failing_write_in_a_group_is_undone_alone(tmp_path: Path) -> None:
    transactions = SQLiteFileTransactions(make_url(f"sqlite:///{tmp_path / 'g.db'}"), 5.0)
    try:
        await transactions.write(_table)
        outcomes = await _grouped(
            transactions, [_insert("a"), _insert("b"), _insert("a"), _insert("c")]
        )  # the second "a" breaks the primary key
        assert outcomes[:2] == ["a", "b"] and outcomes[3] == "c"
        assert "UNIQUE constraint failed" in str(outcomes[2])
        assert await transactions.read(_names) == ["a", "b", "c"]
    finally:
        await transactions.close()


async def test_a_group_without_failures_commits_every_write(tmp_path: Path) -> None:
    transactions = SQLiteFileTransactions(make_url(f"sqlite:///{tmp_path / 'g.db'}"), 5.0)
    try:
        await transactions.write(_table)
        names = [f"n{index:02d}" for index in range(20)]
        assert await _grouped(transactions, [_insert(name) for name in names]) == names
        assert await transactions.read(_names) == names
    finally:
        await transactions.close()


async def test_close_finishes_the_writes_already_queued(tmp_path: Path) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'q.db'}")
    transactions = SQLiteFileTransactions(url, 5.0)
    await transactions.write(_table)
    queued = [asyncio.ensure_future(transactions.write(_insert(f"x{index}"))) for index in range(5)]
    await asyncio.sleep(0)
    await transactions.close()
    assert [await write for write in queued] == [f"x{index}" for index in range(5)]
    again = SQLiteFileTransactions(url, 5.0)
    try:
        assert await again.read(_names) == [f"x{index}" for index in range(5)]
    finally:
        await again.close()


async def test_the_runner_suits_the_database(tmp_path: Path) -> None:
    file_engine, file_runner = open_transactions(make_url(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"), 5.0)
    memory_engine, memory_runner = open_transactions(make_url("sqlite+aiosqlite://"), 5.0)
    try:
        assert isinstance(file_runner, SQLiteFileTransactions)
        assert isinstance(memory_runner, AsyncEngineTransactions)
    finally:
        await file_runner.close()
        await file_engine.dispose()
        await memory_engine.dispose()


@pytest.mark.parametrize("in_memory", [False, True])
async def test_start_conversation_writes_the_conversation_and_its_running_turn(
    tmp_path: Path, in_memory: bool
) -> None:
    store = await MemoryStore.open("sqlite://" if in_memory else f"sqlite:///{tmp_path / 'm.db'}")
    try:
        conversation, interaction = await store.start_conversation("Hi there", "greeting", agent_id="a1")
        assert (conversation.name, conversation.agent_id) == ("greeting", "a1")
        assert (interaction.memory_id, interaction.input, interaction.status) == (
            conversation.memory_id,
            "Hi there",
            "running",
        )
        assert await store.get_conversation(conversation.memory_id) == conversation
        assert await store.get_interaction(interaction.id) == interaction
        assert await store.history(conversation.memory_id) == []
        finished = await store.finish_interaction(interaction.id, "Hello!")
        assert finished.status == "completed"
        history = await store.history(conversation.memory_id)
        assert [(message.role, message.content) for message in history] == [
            ("user", "Hi there"),
            ("assistant", "Hello!"),
        ]
    finally:
        await store.close()


async def test_concurrent_traces_with_a_bad_one_keep_numbering_dense(tmp_path: Path) -> None:
    store = await MemoryStore.open(f"sqlite:///{tmp_path / 't.db'}")
    try:
        _, interaction = await store.start_conversation("q")
        writes = [store.add_trace(interaction.id, "llm", f"in{index}", "out") for index in range(12)]
        writes.insert(5, store.add_trace("no-such-interaction", "llm", "in", "out"))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(outcomes[5], MemoryNotFoundError)
        traces = await store.list_traces(interaction.id)
        assert [trace.trace_number for trace in traces] == list(range(1, 13))
        assert sorted(trace.input for trace in traces) == sorted(f"in{index}" for index in range(12))
        assert (await store.get_interaction(interaction.id)).trace_count == 12
    finally:
        await store.close()
