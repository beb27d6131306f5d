"""The memory store on real SQLite files: conversations, interactions, traces, paging, history, status
changes and the errors a caller can act on."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from fncall.errors import ConfigError, InvalidRequestError
from fncall.memory import (
    InteractionStateError,
    MemoryNotFoundError,
    MemoryStore,
    MemoryStoreError,
    default_database_url,
)
from fncall.memory.models import Base
from fncall.types import Message, Usage


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    opened = await MemoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    try:
        yield opened
    finally:
        await opened.close()


async def _completed_turn(store: MemoryStore, memory_id: str, question: str, answer: str) -> str:
    interaction = await store.start_interaction(memory_id, question)
    await store.finish_interaction(interaction.id, answer)
    return interaction.id


# ----------------------------------------------------------------------------------- opening


def test_default_url_is_fncall_db_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FNCALL_DATABASE_URL", raising=False)
    monkeypatch.setenv("FNCALL_DATA_DIR", str(tmp_path / "data"))
    assert default_database_url() == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'fncall.db'}"
    monkeypatch.setenv("FNCALL_DATABASE_URL", "postgresql+asyncpg://u@db/fncall")
    assert default_database_url() == "postgresql+asyncpg://u@db/fncall"


async def test_open_without_url_creates_the_file_with_wal_and_foreign_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FNCALL_DATABASE_URL", raising=False)
    monkeypatch.setenv("FNCALL_DATA_DIR", str(tmp_path / "nested" / "data"))
    store = await MemoryStore.open()
    try:
        assert store.url == f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'data' / 'fncall.db'}"
        async with store._engine.connect() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        assert (journal, foreign_keys) == ("wal", 1)
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "nested" / "data" / "fncall.db")) as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"conversations", "interactions", "traces", "schema_version"} <= tables


async def test_a_plain_sqlite_url_gets_the_async_driver(tmp_path: Path) -> None:
    store = await MemoryStore.open(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        assert store.url.startswith("sqlite+aiosqlite:///")
        assert (await store.create_conversation("x")).name == "x"
    finally:
        await store.close()


async def test_in_memory_database_serves_concurrent_calls() -> None:
    store = await MemoryStore.open("sqlite+aiosqlite://")
    try:
        conversation = await store.create_conversation("mem")
        interaction = await store.start_interaction(conversation.memory_id, "q")
        await asyncio.gather(*(store.add_trace(interaction.id, "llm", "in", "out") for _ in range(10)))
        traces = await store.list_traces(interaction.id)
        assert [trace.trace_number for trace in traces] == list(range(1, 11))
    finally:
        await store.close()


def test_the_tables_compile_for_postgresql() -> None:
    ddl = "\n".join(
        str(CreateTable(table).compile(dialect=postgresql.dialect())) for table in Base.metadata.sorted_tables
    )
    assert ddl.count("TIMESTAMP WITH TIME ZONE") == 7
    assert "metadata JSON" in ddl
    assert ddl.count("ON DELETE CASCADE") == 2
    assert "ON DELETE SET NULL" in ddl


async def test_postgresql_without_its_driver_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # importing it now fails, as if it were not installed
    with pytest.raises(ConfigError, match="pip install asyncpg"):
        await MemoryStore.open("postgresql://fncall@127.0.0.1:1/fncall")


# ------------------------------------------------------------------------------ conversations


async def test_conversation_crud(store: MemoryStore) -> None:
    created = await store.create_conversation("Trip", agent_id="agent-1", metadata={"lang": "en"})
    assert created.name == "Trip"
    assert created.created_at.tzinfo is not None
    fetched = await store.get_conversation(created.memory_id)
    assert fetched == created
    assert fetched.metadata == {"lang": "en"}
    assert fetched.agent_id == "agent-1"

    renamed = await store.rename_conversation(created.memory_id, "Trip to Oslo")
    assert renamed.name == "Trip to Oslo"
    assert renamed.updated_at >= created.updated_at
    assert (await store.get_conversation(created.memory_id)).name == "Trip to Oslo"

    await store.delete_conversation(created.memory_id)
    with pytest.raises(MemoryNotFoundError, match=created.memory_id):
        await store.get_conversation(created.memory_id)
    with pytest.raises(MemoryNotFoundError):
        await store.delete_conversation(created.memory_id)
    with pytest.raises(MemoryNotFoundError):
        await store.rename_conversation(created.memory_id, "again")


async def test_a_chosen_memory_id_is_kept_and_cannot_be_taken_twice(store: MemoryStore) -> None:
    conversation = await store.create_conversation("mine", memory_id="my-memory")
    assert conversation.memory_id == "my-memory"
    with pytest.raises(MemoryStoreError, match="already exists"):
        await store.create_conversation("again", memory_id="my-memory")


async def test_conversations_list_newest_first_with_offset_and_cursor(store: MemoryStore) -> None:
    names = [f"c{i}" for i in range(7)]
    for name in names:
        await store.create_conversation(name)
    newest_first = list(reversed(names))

    first = await store.list_conversations(limit=3)
    assert [c.name for c in first.items] == newest_first[:3]
    assert first.next_cursor is not None
    second = await store.list_conversations(limit=3, cursor=first.next_cursor)
    assert [c.name for c in second.items] == newest_first[3:6]
    third = await store.list_conversations(limit=3, cursor=second.next_cursor)
    assert [c.name for c in third.items] == newest_first[6:]
    assert third.next_cursor is None

    by_offset = await store.list_conversations(limit=2, offset=5)
    assert [c.name for c in by_offset.items] == newest_first[5:7]
    assert by_offset.next_cursor is None
    exact = await store.list_conversations(limit=7)
    assert len(exact.items) == 7
    assert exact.next_cursor is None


async def test_conversations_filter_by_agent(store: MemoryStore) -> None:
    await store.create_conversation("a1", agent_id="a")
    await store.create_conversation("b1", agent_id="b")
    await store.create_conversation("a2", agent_id="a")
    page = await store.list_conversations(agent_id="a")
    assert [c.name for c in page.items] == ["a2", "a1"]


async def test_bad_paging_arguments_are_invalid_requests(store: MemoryStore) -> None:
    with pytest.raises(InvalidRequestError) as limit_error:
        await store.list_conversations(limit=0)
    assert limit_error.value.param == "limit"
    with pytest.raises(InvalidRequestError) as cursor_error:
        await store.list_conversations(cursor="not a cursor!")
    assert cursor_error.value.param == "cursor"
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(offset=1, cursor="abc")
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(offset=-1)


async def test_delete_cascades_to_interactions_and_traces(store: MemoryStore, tmp_path: Path) -> None:
    doomed = await store.create_conversation("doomed")
    kept = await store.create_conversation("kept")
    doomed_turn = await store.start_interaction(doomed.memory_id, "q1")
    await store.add_trace(doomed_turn.id, "llm", "in", "out")
    kept_turn = await store.start_interaction(kept.memory_id, "q2")
    await store.add_trace(kept_turn.id, "llm", "in", "out")

    await store.delete_conversation(doomed.memory_id)

    with pytest.raises(MemoryNotFoundError):
        await store.get_interaction(doomed_turn.id)
    with pytest.raises(MemoryNotFoundError):
        await store.list_traces(doomed_turn.id)
    assert len(await store.list_traces(kept_turn.id)) == 1
    with contextlib.closing(sqlite3.connect(tmp_path / "memory.db")) as raw:
        interactions = raw.execute("SELECT count(*) FROM interactions").fetchone()[0]
        traces = raw.execute("SELECT count(*) FROM traces").fetchone()[0]
    assert (interactions, traces) == (1, 1)


# ------------------------------------------------------------------------------- interactions


async def test_interaction_lifecycle(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    started = await store.start_interaction(conversation.memory_id, "What is 1 + 2?")
    assert started.status == "running"
    assert started.response is None
    assert (await store.get_interaction(started.id)).status == "running"
    assert (await store.get_conversation(conversation.memory_id)).updated_at == started.created_at

    finished = await store.finish_interaction(
        started.id, "3", Usage(prompt_tokens=12, completion_tokens=3), outcome="answered"
    )
    assert finished.status == "completed"
    assert finished.response == "3"
    assert finished.outcome == "answered"
    assert finished.usage == Usage(prompt_tokens=12, completion_tokens=3)
    assert await store.get_interaction(started.id) == finished

    with pytest.raises(InteractionStateError, match="completed"):
        await store.fail_interaction(started.id, "too late")
    with pytest.raises(InteractionStateError):
        await store.pause_interaction(started.id, {})


async def test_failed_interaction_keeps_its_error(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    started = await store.start_interaction(conversation.memory_id, "q")
    failed = await store.fail_interaction(started.id, "The LLM was unreachable.", Usage(prompt_tokens=5))
    assert (failed.status, failed.error, failed.response) == ("failed", "The LLM was unreachable.", None)
    assert failed.usage.prompt_tokens == 5


async def test_unknown_ids_raise_not_found(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    with pytest.raises(MemoryNotFoundError) as missing:
        await store.start_interaction("no-such-memory", "q")
    assert missing.value.kind == "conversation"
    with pytest.raises(MemoryNotFoundError):
        await store.start_interaction(conversation.memory_id, "q", parent_id="no-such-interaction")
    for call in (
        store.get_interaction("nope"),
        store.finish_interaction("nope", "a"),
        store.add_trace("nope", "llm", "i", "o"),
        store.list_traces("nope"),
        store.list_interactions("nope"),
        store.history("nope"),
        store.resume_interaction("nope"),
    ):
        with pytest.raises(MemoryNotFoundError):
            await call


async def test_interactions_list_oldest_first_with_paging_and_status(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    ids = []
    for i in range(5):
        turn = await store.start_interaction(conversation.memory_id, f"q{i}")
        ids.append(turn.id)
        if i % 2 == 0:
            await store.finish_interaction(turn.id, f"a{i}")
    first = await store.list_interactions(conversation.memory_id, limit=2)
    assert [i.id for i in first.items] == ids[:2]
    rest = await store.list_interactions(conversation.memory_id, limit=10, cursor=first.next_cursor)
    assert [i.id for i in rest.items] == ids[2:]
    assert rest.next_cursor is None
    completed = await store.list_interactions(conversation.memory_id, status="completed")
    assert [i.input for i in completed.items] == ["q0", "q2", "q4"]


async def test_parent_and_child_interactions(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    parent = await store.start_interaction(conversation.memory_id, "plan")
    first = await store.start_interaction(conversation.memory_id, "sub 1", parent_id=parent.id)
    second = await store.start_interaction(conversation.memory_id, "sub 2", parent_id=parent.id)
    assert first.parent_interaction_id == parent.id
    children = await store.list_child_interactions(parent.id)
    assert [child.id for child in children] == [first.id, second.id]
    assert await store.list_child_interactions(first.id) == []


# ------------------------------------------------------------------------------------- traces


async def test_traces_are_numbered_in_order_and_keep_their_fields(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    started_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    llm = await store.add_trace(
        turn.id, "llm", [{"role": "user", "content": "q"}], {"content": None}, False, started_at, 0.25, step=1
    )
    tool = await store.add_trace(turn.id, "add", '{"a": 1}', "Error: boom", True, started_at, 0.5, step=1)
    assert (llm.trace_number, tool.trace_number) == (1, 2)

    traces = await store.list_traces(turn.id)
    assert traces == [llm, tool]
    assert traces[0].input == '[{"role": "user", "content": "q"}]'
    assert traces[0].output == '{"content": null}'
    assert traces[0].started_at == started_at
    assert (traces[1].origin, traces[1].is_error, traces[1].duration_s, traces[1].step) == (
        "add",
        True,
        0.5,
        1,
    )
    assert [t.trace_number for t in await store.list_traces(turn.id, after=1)] == [2]
    assert [t.trace_number for t in await store.list_traces(turn.id, limit=1)] == [1]
    assert (await store.get_interaction(turn.id)).trace_count == 2


async def test_concurrent_add_trace_numbers_are_unique_and_gapless(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    first = await store.start_interaction(conversation.memory_id, "one")
    second = await store.start_interaction(conversation.memory_id, "two")
    writes = [store.add_trace(first.id, "llm", f"in {i}", f"out {i}") for i in range(40)]
    writes += [store.add_trace(second.id, "tool", f"in {i}", f"out {i}") for i in range(15)]
    written = await asyncio.gather(*writes)

    first_traces = await store.list_traces(first.id)
    assert [t.trace_number for t in first_traces] == list(range(1, 41))
    assert sorted(t.input for t in first_traces) == sorted(f"in {i}" for i in range(40))
    assert [t.trace_number for t in await store.list_traces(second.id)] == list(range(1, 16))
    assert len({t.id for t in written}) == 55


# -------------------------------------------------------------------------------------- history


async def test_history_is_the_last_completed_turns_oldest_first(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    other = await store.create_conversation("other")
    memory_id = conversation.memory_id
    await _completed_turn(store, memory_id, "q1", "a1")
    failed = await store.start_interaction(memory_id, "q-failed")
    await store.fail_interaction(failed.id, "boom")
    await _completed_turn(store, memory_id, "q2", "a2")
    await store.start_interaction(memory_id, "q-running")
    await _completed_turn(store, other.memory_id, "elsewhere", "no")
    await _completed_turn(store, memory_id, "q3", "a3")
    paused = await store.start_interaction(memory_id, "q-paused")
    await store.pause_interaction(paused.id, {"step": 1})

    assert await store.history(memory_id, limit=2) == [
        Message.user("q2"),
        Message.assistant("a2"),
        Message.user("q3"),
        Message.assistant("a3"),
    ]
    everything = await store.history(memory_id)
    assert [m.content for m in everything] == ["q1", "a1", "q2", "a2", "q3", "a3"]
    assert [m.role for m in everything] == ["user", "assistant"] * 3
    assert await store.history(memory_id, limit=0) == []


# ------------------------------------------------------------------------------- pause / resume


async def test_pause_and_resume_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pause.db'}"
    store = await MemoryStore.open(url)
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "delete the file")
    state = {"messages": [{"role": "user", "content": "delete the file"}], "pending": ["call_1"], "step": 2}
    paused = await store.pause_interaction(turn.id, state)
    assert paused.status == "paused"
    await store.close()

    reopened = await MemoryStore.open(url)
    try:
        assert (await reopened.get_interaction(turn.id)).status == "paused"  # a pause survives the sweep
        assert await reopened.resume_interaction(turn.id) == state
        assert (await reopened.get_interaction(turn.id)).status == "running"
        with pytest.raises(InteractionStateError, match="running"):
            await reopened.resume_interaction(turn.id)
        done = await reopened.finish_interaction(turn.id, "deleted")
        assert done.status == "completed"
    finally:
        await reopened.close()


async def test_only_one_of_two_concurrent_resumes_wins(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    await store.pause_interaction(turn.id, {"n": 1})
    outcomes = await asyncio.gather(
        store.resume_interaction(turn.id), store.resume_interaction(turn.id), return_exceptions=True
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["InteractionStateError", "dict"]


async def test_pause_state_must_be_json(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    with pytest.raises(InvalidRequestError, match="JSON"):
        await store.pause_interaction(turn.id, {"when": object()})
    assert (await store.get_interaction(turn.id)).status == "running"


async def test_interrupt_interaction_records_reason_and_time(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    interrupted = await store.interrupt_interaction(turn.id, "cancelled by the client")
    assert (interrupted.status, interrupted.error) == ("interrupted", "cancelled by the client")
    assert interrupted.interrupted_at is not None
    # A run that finishes after all (its owner was wrongly presumed dead) still keeps its answer.
    finished = await store.finish_interaction(turn.id, "late answer")
    assert (finished.status, finished.response, finished.error) == ("completed", "late answer", None)
