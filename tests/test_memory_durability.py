"""What survives: a process killed mid-run, two stores writing one file at once, and a database written by a
newer schema than the code knows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from fncall.memory import INTERRUPTED_ERROR, MemoryStore, SchemaVersionError
from fncall.memory import schema_version as schema_version_module

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from fncall.memory import MemoryStore

    async def main(url, memory_id):
        store = await MemoryStore.open(url)
        done = await store.start_interaction(memory_id, "finished before the kill")
        await store.add_trace(done.id, "llm", "in", "out")
        await store.finish_interaction(done.id, "the answer")
        running = await store.start_interaction(memory_id, "killed mid-run")
        await store.add_trace(running.id, "llm", "asked", "a tool call")
        await store.add_trace(running.id, "convert", '{"amount": 42}', "131.95")
        print(done.id, running.id, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _sql(path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement with the standard library's sqlite3, committed, and close the connection."""
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        return raw.execute(statement, params).fetchall()


async def test_a_killed_process_leaves_its_turn_interrupted_and_keeps_completed_ones(tmp_path: Path) -> None:
    url = _url(tmp_path / "kill.db")
    store = await MemoryStore.open(url)
    conversation = await store.create_conversation("c")
    await store.close()

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, conversation.memory_id, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
    done_id, running_id = line.decode().split()
    os.kill(child.pid, signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL

    reopened = await MemoryStore.open(url)
    try:
        done = await reopened.get_interaction(done_id)
        assert (done.status, done.response) == ("completed", "the answer")
        killed = await reopened.get_interaction(running_id)
        assert killed.status == "interrupted"
        assert killed.error == INTERRUPTED_ERROR
        assert killed.interrupted_at is not None and killed.interrupted_at >= killed.updated_at.replace(
            microsecond=0
        )
        traces = await reopened.list_traces(running_id)
        assert [(t.trace_number, t.origin, t.output) for t in traces] == [
            (1, "llm", "a tool call"),
            (2, "convert", "131.95"),
        ]
        assert [m.content for m in await reopened.history(conversation.memory_id)] == [
            "finished before the kill",
            "the answer",
        ]
    finally:
        await reopened.close()


async def test_opening_a_second_store_does_not_interrupt_live_runs(tmp_path: Path) -> None:
    url = _url(tmp_path / "live.db")
    first = await MemoryStore.open(url)
    conversation = await first.create_conversation("c")
    turn = await first.start_interaction(conversation.memory_id, "still running")
    second = await MemoryStore.open(url)
    try:
        assert (await second.get_interaction(turn.id)).status == "running"
        assert await second.recover_interrupted() == 0
        assert await second.recover_interrupted(all_owners=True) == 1
        assert (await first.get_interaction(turn.id)).status == "interrupted"
    finally:
        await second.close()
        await first.close()


async def test_an_unknown_owner_counts_as_gone(tmp_path: Path) -> None:
    url = _url(tmp_path / "owner.db")
    store = await MemoryStore.open(url)
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    await store.close()
    _sql(tmp_path / "owner.db", "UPDATE interactions SET owner = 'garbage' WHERE id = ?", turn.id)
    reopened = await MemoryStore.open(url)
    try:
        assert (await reopened.get_interaction(turn.id)).status == "interrupted"
    finally:
        await reopened.close()


async def test_two_stores_on_one_file_lose_no_writes(tmp_path: Path) -> None:
    url = _url(tmp_path / "shared.db")
    first, second = await asyncio.gather(MemoryStore.open(url), MemoryStore.open(url))
    try:
        conversation = await first.create_conversation("shared")
        turn = await first.start_interaction(conversation.memory_id, "q")
        writes = [
            (first if i % 2 else second).add_trace(turn.id, "llm", f"in {i}", f"out {i}") for i in range(60)
        ]
        creations = [(first if i % 2 else second).create_conversation(f"c{i}") for i in range(20)]
        await asyncio.gather(*writes, *creations)

        for store in (first, second):
            traces = await store.list_traces(turn.id)
            assert [t.trace_number for t in traces] == list(range(1, 61))
            assert sorted(t.input for t in traces) == sorted(f"in {i}" for i in range(60))
            page = await store.list_conversations(limit=100)
            assert len(page.items) == 21
    finally:
        await asyncio.gather(first.close(), second.close())
    assert _sql(tmp_path / "shared.db", "PRAGMA integrity_check") == [("ok",)]


# ------------------------------------------------------------------------------ schema versions


async def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    store = await MemoryStore.open(_url(path))
    conversation = await store.create_conversation("precious")
    await store.close()
    _sql(path, "UPDATE schema_version SET version = 99")
    before = path.read_bytes()

    with pytest.raises(SchemaVersionError, match=r"schema version 99.*only knows versions up to 1"):
        await MemoryStore.open(_url(path))

    assert _sql(path, "SELECT version FROM schema_version") == [(99,)]
    assert _sql(path, "SELECT name FROM conversations") == [("precious",)]
    assert path.read_bytes() == before
    assert conversation.name == "precious"


async def test_an_older_schema_is_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "older.db"
    store = await MemoryStore.open(_url(path))
    await store.create_conversation("kept")
    await store.close()

    applied: list[int] = []

    def add_notes_table(connection: Connection) -> None:
        applied.append(1)
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))

    monkeypatch.setattr(schema_version_module, "CURRENT_SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema_version_module.MIGRATIONS, 1, add_notes_table)
    upgraded = await MemoryStore.open(_url(path))
    try:
        assert [c.name for c in (await upgraded.list_conversations()).items] == ["kept"]
    finally:
        await upgraded.close()
    again = await MemoryStore.open(_url(path))
    await again.close()

    assert applied == [1]  # the second open found version 2 and ran nothing
    assert _sql(path, "SELECT version FROM schema_version") == [(2,)]
    assert _sql(path, "SELECT count(*) FROM notes") == [(0,)]


async def test_an_older_schema_without_a_migration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gap.db"
    await (await MemoryStore.open(_url(path))).close()
    monkeypatch.setattr(schema_version_module, "CURRENT_SCHEMA_VERSION", 2)
    with pytest.raises(SchemaVersionError, match="no migration from it to version 2"):
        await MemoryStore.open(_url(path))
    assert _sql(path, "SELECT version FROM schema_version") == [(1,)]
