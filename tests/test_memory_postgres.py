"""The memory store on a real PostgreSQL server (the session's own, started by tests/postgres.py), and two
processes sharing one database: replicas that continue the same conversation, as Runners and as agent
services over HTTP.

Skipped, with the Debian package to install, where the PostgreSQL binaries are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from fncall.memory import (
    CURRENT_SCHEMA_VERSION,
    INTERRUPTED_ERROR,
    InteractionStateError,
    MemoryNotFoundError,
    MemoryStore,
    MemoryStoreError,
    Page,
    SchemaVersionError,
)
from fncall.memory.owner import current_owner
from fncall.types import Message, Usage

pytestmark = pytest.mark.postgres

_CHILD_TIMEOUT_S = 60

FIRST_QUESTION = "Convert 42 US dollars to Canadian dollars."
FIRST_ANSWER = "42 US dollars is 131.95 Canadian dollars."
SECOND_QUESTION = "What did I ask you before?"
SECOND_ANSWER = f"You asked: {FIRST_QUESTION} I answered: {FIRST_ANSWER}"

# The scripted model of both child programs: it calls convert_currency for a fresh question, answers from
# the tool's result, and, when the conversation has an earlier turn, answers from that turn, so the answer
# proves the history reached the model. It asserts that the history is a whole user/assistant pair.
_SCRIPTED_MODEL = textwrap.dedent(
    """
    import json
    from fncall.types import ToolCall

    def respond(request):
        messages = [m for m in request.messages if m.role != "system"]
        last = messages[-1]
        if last.role == "tool":
            amount = json.loads(last.content)["converted_amount"]
            return f"42 US dollars is {amount} Canadian dollars."
        if len(messages) > 1:
            earlier_question, earlier_answer = messages[0], messages[1]
            assert (earlier_question.role, earlier_answer.role) == ("user", "assistant"), messages
            return f"You asked: {earlier_question.text} I answered: {earlier_answer.text}"
        arguments = {"from_currency": "USD", "to_currency": "CAD", "amount": 42}
        return ToolCall(id="call_usd_cad", name="convert_currency", arguments=arguments)
    """
)

# One turn of a conversation in its own process: a Runner over the scripted model, history loaded from the
# store, every step recorded by a TraceRecorder through the runner's on_step hook.
_TURN_PROCESS = _SCRIPTED_MODEL + textwrap.dedent(
    """
    import asyncio, sys
    from fncall.agents import Agent, Runner
    from fncall.llms.scripted import Scripted
    from fncall.memory import MemoryStore, TraceRecorder
    from fncall.tools import ToolRegistry
    from fncall.tools.builtin import convert_currency

    async def main(url, memory_id, question):
        store = await MemoryStore.open(url)
        try:
            llm = Scripted(respond)
            agent = Agent(
                name="exchange", instructions="You convert currencies.", llm=llm,
                tools=ToolRegistry([convert_currency]),
            )
            history = await store.history(memory_id)
            async with TraceRecorder(store, memory_id, question) as recorder:
                result = await Runner().run(
                    agent, question, history=history, on_step=recorder.on_step_finished
                )
                await recorder.finish(result)
        finally:
            await store.close()
        seen = [[m.role, m.text] for m in llm.requests[0].messages]
        print(json.dumps({"interaction_id": recorder.interaction_id, "first_request": seen}), flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)

# An agent service replica: the real app on uvicorn, on 127.0.0.1, with the scripted model behind its agents.
_SERVICE_PROCESS = _SCRIPTED_MODEL + textwrap.dedent(
    """
    import socket, sys
    import uvicorn
    from fncall.llms.scripted import Scripted
    from fncall.server.app import create_app

    llm = Scripted(respond)
    app = create_app(
        "scripted:", llm=llm, llm_factory=lambda spec: llm, database_url=sys.argv[1], api_keys=[]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    """
)

# A process that starts a turn, records two traces, and then hangs until it is killed.
_HANGING_RUN_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from fncall.memory import MemoryStore

    async def main(url, memory_id):
        store = await MemoryStore.open(url)
        running = await store.start_interaction(memory_id, "killed mid-run")
        await store.add_trace(running.id, "llm", "asked", "a tool call")
        await store.add_trace(running.id, "convert_currency", '{"amount": 42}', "131.95")
        print(running.id, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.fixture
async def store(fresh_postgres_url: str) -> AsyncIterator[MemoryStore]:
    opened = await MemoryStore.open(fresh_postgres_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _sql(url: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one statement on its own asyncpg connection (outside the store) and return the rows."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(row) for row in await connection.fetch(statement, *args)]
    finally:
        await connection.close()


async def _completed_turn(store: MemoryStore, memory_id: str, question: str, answer: str) -> str:
    interaction = await store.start_interaction(memory_id, question)
    await store.finish_interaction(interaction.id, answer)
    return interaction.id


@contextlib.asynccontextmanager
async def _child(code: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A Python child process running `code`; killed on the way out if it is still running."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield child
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def _first_line(child: asyncio.subprocess.Process) -> str:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=_CHILD_TIMEOUT_S)
    assert line, f"the child process exited ({await child.wait()}) before it printed anything"
    return line.decode().strip()


# ------------------------------------------------------------------------------------- schema


async def test_open_creates_the_schema_with_postgresql_types(fresh_postgres_url: str) -> None:
    for _ in range(2):  # the second open finds the schema and leaves it as it is
        store = await MemoryStore.open(fresh_postgres_url)
        assert store.url == fresh_postgres_url
        await store.close()

    tables = await _sql(
        fresh_postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    )
    assert tables == [("conversations",), ("interactions",), ("schema_version",), ("traces",)]
    columns = dict(
        await _sql(
            fresh_postgres_url,
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'",
        )
    )
    assert columns["interactions.created_at"] == "timestamp with time zone"
    assert columns["conversations.metadata"] == "json"
    assert columns["interactions.run_state"] == "json"
    assert columns["traces.is_error"] == "boolean"
    assert columns["traces.duration_s"] == "double precision"
    assert await _sql(fresh_postgres_url, "SELECT id, version FROM schema_version") == [
        (1, CURRENT_SCHEMA_VERSION)
    ]


async def test_replicas_opening_a_fresh_database_at_once_all_succeed(
    fresh_postgres_url: str,
) -> None:
    stores = await asyncio.gather(*(MemoryStore.open(fresh_postgres_url) for _ in range(4)))
    try:
        conversations = await asyncio.gather(*(s.create_conversation(f"c{i}") for i, s in enumerate(stores)))
        assert len({c.memory_id for c in conversations}) == 4
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await _sql(fresh_postgres_url, "SELECT version FROM schema_version") == [(CURRENT_SCHEMA_VERSION,)]


async def test_a_newer_schema_is_refused_and_left_untouched(fresh_postgres_url: str) -> None:
    store = await MemoryStore.open(fresh_postgres_url)
    conversation = await store.create_conversation("kept")
    await store.close()
    await _sql(fresh_postgres_url, "UPDATE schema_version SET version = $1", CURRENT_SCHEMA_VERSION + 1)

    with pytest.raises(SchemaVersionError, match=f"schema version {CURRENT_SCHEMA_VERSION + 1}"):
        await MemoryStore.open(fresh_postgres_url)
    assert await _sql(fresh_postgres_url, "SELECT memory_id, name FROM conversations") == [
        (conversation.memory_id, "kept")
    ]
    assert await _sql(fresh_postgres_url, "SELECT version FROM schema_version") == [
        (CURRENT_SCHEMA_VERSION + 1,)
    ]


# ------------------------------------------------------------------------------ conversations


async def test_conversation_crud(store: MemoryStore, fresh_postgres_url: str) -> None:
    metadata = {"user": "Zoë", "tags": ["fx", "ünïcode ✓"], "nested": {"depth": 2, "ok": True, "none": None}}
    created = await store.create_conversation("Wechselkurse 💱", agent_id="exchange", metadata=metadata)
    assert (created.name, created.agent_id, created.metadata) == ("Wechselkurse 💱", "exchange", metadata)
    assert await store.get_conversation(created.memory_id) == created

    renamed = await store.rename_conversation(created.memory_id, "FX")
    assert renamed.name == "FX"
    assert renamed.updated_at >= created.updated_at
    assert (await store.get_conversation(created.memory_id)).name == "FX"

    chosen = await store.create_conversation("chosen", memory_id="memory-42")
    assert chosen.memory_id == "memory-42"
    with pytest.raises(MemoryStoreError, match=r"'memory-42' already exists"):
        await store.create_conversation("again", memory_id="memory-42")

    turn = await store.start_interaction(created.memory_id, "q")
    await store.add_trace(turn.id, "llm", "in", "out")
    await store.delete_conversation(created.memory_id)
    with pytest.raises(MemoryNotFoundError):
        await store.get_conversation(created.memory_id)
    with pytest.raises(MemoryNotFoundError):
        await store.get_interaction(turn.id)
    assert await _sql(fresh_postgres_url, "SELECT count(*) FROM traces") == [(0,)]
    with pytest.raises(MemoryNotFoundError):
        await store.delete_conversation(created.memory_id)
    assert [c.memory_id for c in (await store.list_conversations()).items] == ["memory-42"]


async def test_conversations_page_newest_first_by_cursor_and_offset(store: MemoryStore) -> None:
    created = [
        await store.create_conversation(f"c{i}", agent_id="even" if i % 2 == 0 else "odd") for i in range(5)
    ]
    newest_first = [c.memory_id for c in reversed(created)]

    first = await store.list_conversations(limit=2)
    second = await store.list_conversations(limit=2, cursor=first.next_cursor)
    third = await store.list_conversations(limit=2, cursor=second.next_cursor)
    assert [c.memory_id for page in (first, second, third) for c in page.items] == newest_first
    assert third.next_cursor is None
    assert [c.memory_id for c in (await store.list_conversations(limit=2, offset=3)).items] == newest_first[
        3:
    ]
    evens = await store.list_conversations(agent_id="even")
    assert [c.name for c in evens.items] == ["c4", "c2", "c0"]


# ------------------------------------------------------------------------------- interactions


async def test_interaction_lifecycle_listing_and_state_errors(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    memory_id = conversation.memory_id
    done = await store.start_interaction(memory_id, "first")
    assert (done.status, done.trace_count) == ("running", 0)
    finished = await store.finish_interaction(
        done.id, "answer", Usage(prompt_tokens=12, completion_tokens=3), outcome="answered"
    )
    assert (finished.status, finished.response, finished.outcome) == ("completed", "answer", "answered")
    assert finished.usage == Usage(prompt_tokens=12, completion_tokens=3)

    failed = await store.start_interaction(memory_id, "second")
    await store.fail_interaction(failed.id, "The LLM service is down.")
    running = await store.start_interaction(memory_id, "third")
    child = await store.start_interaction(memory_id, "sub-task", parent_id=running.id)

    everything = await store.list_interactions(memory_id)
    assert [(i.input, i.status) for i in everything.items] == [
        ("first", "completed"),
        ("second", "failed"),
        ("third", "running"),
        ("sub-task", "running"),
    ]
    page = await store.list_interactions(memory_id, limit=3)
    rest = await store.list_interactions(memory_id, limit=3, cursor=page.next_cursor)
    assert [i.input for i in rest.items] == ["sub-task"]
    assert rest.next_cursor is None
    assert [i.input for i in (await store.list_interactions(memory_id, status="running")).items] == [
        "third",
        "sub-task",
    ]
    assert [i.id for i in await store.list_child_interactions(running.id)] == [child.id]
    assert (await store.get_interaction(failed.id)).error == "The LLM service is down."

    with pytest.raises(InteractionStateError, match="is completed, so it cannot be finished"):
        await store.finish_interaction(done.id, "again")
    with pytest.raises(MemoryNotFoundError):
        await store.start_interaction("no-such-memory", "q")
    with pytest.raises(MemoryNotFoundError):
        await store.add_trace("no-such-interaction", "llm", "in", "out")


async def test_traces_keep_their_fields_and_utc_timestamps(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    turn = await store.start_interaction(conversation.memory_id, "q")
    started = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    await store.add_trace(turn.id, "llm", [{"role": "user", "content": "q"}], {"content": "ünï"}, step=1)
    await store.add_trace(
        turn.id,
        "convert_currency",
        "{}",
        "rate missing",
        is_error=True,
        started_at=started,
        duration_s=0.25,
        step=1,
    )

    first, second = await store.list_traces(turn.id)
    assert (first.trace_number, first.origin, first.step, first.is_error) == (1, "llm", 1, False)
    assert json.loads(first.input) == [{"role": "user", "content": "q"}]
    assert json.loads(first.output) == {"content": "ünï"}
    assert (second.trace_number, second.origin, second.is_error, second.duration_s) == (
        2,
        "convert_currency",
        True,
        0.25,
    )
    assert second.started_at == started
    assert second.started_at.tzinfo == UTC
    assert second.started_at.microsecond == 678901
    assert [t.trace_number for t in await store.list_traces(turn.id, after=1)] == [2]
    assert (await store.get_interaction(turn.id)).trace_count == 2


async def test_two_stores_number_traces_without_gaps_under_concurrent_writers(
    fresh_postgres_url: str,
) -> None:
    first, second = await asyncio.gather(
        MemoryStore.open(fresh_postgres_url), MemoryStore.open(fresh_postgres_url)
    )
    try:
        conversation = await first.create_conversation("shared")
        turn = await first.start_interaction(conversation.memory_id, "q")
        writes = [
            (first if i % 2 else second).add_trace(turn.id, "llm", f"in {i}", f"out {i}") for i in range(60)
        ]
        creations = [(first if i % 2 else second).create_conversation(f"c{i}") for i in range(20)]
        written, _ = await asyncio.gather(asyncio.gather(*writes), asyncio.gather(*creations))

        assert sorted(trace.trace_number for trace in written) == list(range(1, 61))
        for store in (first, second):
            traces = await store.list_traces(turn.id)
            assert [t.trace_number for t in traces] == list(range(1, 61))
            assert sorted(t.input for t in traces) == sorted(f"in {i}" for i in range(60))
            assert (await store.get_interaction(turn.id)).trace_count == 60
            assert len((await store.list_conversations(limit=100)).items) == 21
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_history_is_the_last_completed_turns_oldest_first(store: MemoryStore) -> None:
    conversation = await store.create_conversation("c")
    memory_id = conversation.memory_id
    for i in range(4):
        await _completed_turn(store, memory_id, f"q{i}", f"a{i}")
    failed = await store.start_interaction(memory_id, "failed turn")
    await store.fail_interaction(failed.id, "boom")
    await store.start_interaction(memory_id, "running turn")

    assert await store.history(memory_id, limit=3) == [
        Message.user("q1"),
        Message.assistant("a1"),
        Message.user("q2"),
        Message.assistant("a2"),
        Message.user("q3"),
        Message.assistant("a3"),
    ]
    assert len(await store.history(memory_id)) == 8
    assert await store.history(memory_id, limit=0) == []
    with pytest.raises(MemoryNotFoundError):
        await store.history("no-such-memory")


async def test_pause_in_one_store_and_exactly_one_of_two_replicas_resumes(
    fresh_postgres_url: str,
) -> None:
    pausing = await MemoryStore.open(fresh_postgres_url)
    conversation = await pausing.create_conversation("c")
    turn = await pausing.start_interaction(conversation.memory_id, "needs approval")
    state = {"pending": [{"call_id": "call_1", "name": "transfer"}], "messages": ["ünï", 1, None]}
    paused = await pausing.pause_interaction(turn.id, state)
    assert paused.status == "paused"
    await pausing.close()

    replicas = await asyncio.gather(
        MemoryStore.open(fresh_postgres_url), MemoryStore.open(fresh_postgres_url)
    )
    try:
        assert (await replicas[0].get_interaction(turn.id)).status == "paused"  # not "recovered" by opening
        outcomes = await asyncio.gather(
            *(replica.resume_interaction(turn.id) for replica in replicas), return_exceptions=True
        )
        resumed = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert resumed == [state]
        assert len(refused) == 1 and isinstance(refused[0], InteractionStateError)
        assert (await replicas[1].get_interaction(turn.id)).status == "running"
        assert await _sql(fresh_postgres_url, "SELECT owner FROM interactions") == [(current_owner(),)]
        done = await replicas[1].finish_interaction(turn.id, "approved and done")
        assert (done.status, done.response) == ("completed", "approved and done")
        assert await replicas[0].list_interactions(conversation.memory_id, status="paused") == Page(items=[])
    finally:
        await asyncio.gather(*(replica.close() for replica in replicas))


# ---------------------------------------------------------------------------------- recovery


async def test_recover_interrupts_only_the_runs_of_dead_processes(fresh_postgres_url: str) -> None:
    store = await MemoryStore.open(fresh_postgres_url)
    try:
        conversation = await store.create_conversation("c")
        live = await store.start_interaction(conversation.memory_id, "live in this process")
        async with _child(_HANGING_RUN_PROCESS, fresh_postgres_url, conversation.memory_id) as child:
            hanging_id = await _first_line(child)
            while_alive = await MemoryStore.open(fresh_postgres_url)
            try:
                assert (await while_alive.get_interaction(hanging_id)).status == "running"
                assert await while_alive.recover_interrupted() == 0
            finally:
                await while_alive.close()
            os.kill(child.pid, signal.SIGKILL)
            assert await child.wait() == -signal.SIGKILL

        after_kill = await MemoryStore.open(fresh_postgres_url)  # recovers on open
        try:
            killed = await after_kill.get_interaction(hanging_id)
            assert (killed.status, killed.error) == ("interrupted", INTERRUPTED_ERROR)
            assert killed.interrupted_at is not None
            assert [(t.trace_number, t.origin) for t in await after_kill.list_traces(hanging_id)] == [
                (1, "llm"),
                (2, "convert_currency"),
            ]
            assert (await after_kill.get_interaction(live.id)).status == "running"
            assert await after_kill.recover_interrupted(all_owners=True) == 1
            assert (await store.get_interaction(live.id)).status == "interrupted"
        finally:
            await after_kill.close()
    finally:
        await store.close()


# ---------------------------------------------------------------- two processes, one conversation


async def test_two_runner_processes_continue_one_conversation(fresh_postgres_url: str) -> None:
    setup = await MemoryStore.open(fresh_postgres_url)
    memory_id = (await setup.create_conversation("exchange")).memory_id
    await setup.close()

    turns: list[dict[str, Any]] = []
    for question in (FIRST_QUESTION, SECOND_QUESTION):  # process A, then process B
        async with _child(_TURN_PROCESS, fresh_postgres_url, memory_id, question) as child:
            turns.append(json.loads(await _first_line(child)))
            assert await asyncio.wait_for(child.wait(), timeout=_CHILD_TIMEOUT_S) == 0
    first, second = turns
    assert first["first_request"] == [["system", "You convert currencies."], ["user", FIRST_QUESTION]]
    assert second["first_request"] == [
        ["system", "You convert currencies."],
        ["user", FIRST_QUESTION],
        ["assistant", FIRST_ANSWER],
        ["user", SECOND_QUESTION],
    ]

    reader = await MemoryStore.open(fresh_postgres_url)
    try:
        interactions = (await reader.list_interactions(memory_id)).items
        assert [(i.id, i.input, i.response, i.status, i.outcome) for i in interactions] == [
            (first["interaction_id"], FIRST_QUESTION, FIRST_ANSWER, "completed", "answered"),
            (second["interaction_id"], SECOND_QUESTION, SECOND_ANSWER, "completed", "answered"),
        ]
        first_traces = await reader.list_traces(first["interaction_id"])
        assert [(t.trace_number, t.origin, t.step, t.is_error) for t in first_traces] == [
            (1, "llm", 1, False),
            (2, "convert_currency", 1, False),
            (3, "llm", 2, False),
        ]
        assert json.loads(first_traces[1].input) == {
            "from_currency": "USD",
            "to_currency": "CAD",
            "amount": 42,
        }
        assert json.loads(first_traces[1].output)["converted_amount"] == 131.95
        assert json.loads(first_traces[2].output)["content"] == FIRST_ANSWER
        second_traces = await reader.list_traces(second["interaction_id"])
        assert [(t.trace_number, t.origin, t.step) for t in second_traces] == [(1, "llm", 1)]
        assert json.loads(second_traces[0].input) == [{"role": "user", "content": SECOND_QUESTION}]
        assert json.loads(second_traces[0].output)["content"] == SECOND_ANSWER
        assert await reader.history(memory_id) == [
            Message.user(FIRST_QUESTION),
            Message.assistant(FIRST_ANSWER),
            Message.user(SECOND_QUESTION),
            Message.assistant(SECOND_ANSWER),
        ]
    finally:
        await reader.close()


async def _start_service(url: str, stack: contextlib.AsyncExitStack) -> httpx.AsyncClient:
    """A service replica in its own process; returns a client for it once it answers /health."""
    child = await stack.enter_async_context(_child(_SERVICE_PROCESS, url))
    port = int(await _first_line(child))
    client = await stack.enter_async_context(
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    )
    for _ in range(_CHILD_TIMEOUT_S * 10):
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/health")).status_code == 200:
                return client
        assert child.returncode is None, "the service process exited during startup"
        await asyncio.sleep(0.1)
    raise AssertionError("the service process did not answer /health in time")


async def test_two_service_processes_continue_one_conversation_over_http(
    fresh_postgres_url: str,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        # One after the other: the first replica creates the service's tables and built-in agents.
        replica_a = await _start_service(fresh_postgres_url, stack)
        replica_b = await _start_service(fresh_postgres_url, stack)

        first = await replica_a.post("/v1/agents/exchange/runs", json={"input": FIRST_QUESTION})
        assert first.status_code == 200, first.text
        memory_id = first.json()["memory_id"]
        assert (first.json()["status"], first.json()["final_answer"]) == ("completed", FIRST_ANSWER)

        second = await replica_b.post(
            "/v1/agents/exchange/runs", json={"input": SECOND_QUESTION, "memory_id": memory_id}
        )
        assert second.status_code == 200, second.text
        assert (second.json()["memory_id"], second.json()["final_answer"]) == (memory_id, SECOND_ANSWER)

        # Each replica reads what the other wrote.
        listed = (await replica_a.get(f"/v1/memory/{memory_id}/interactions")).json()["data"]
        assert [(turn["input"], turn["response"]) for turn in listed] == [
            (FIRST_QUESTION, FIRST_ANSWER),
            (SECOND_QUESTION, SECOND_ANSWER),
        ]
        traces = (await replica_b.get(f"/v1/interactions/{first.json()['id']}/traces")).json()["data"]
        assert [trace["origin"] for trace in traces] == ["llm", "convert_currency", "llm"]

    reader = await MemoryStore.open(fresh_postgres_url)
    try:
        interactions = (await reader.list_interactions(memory_id)).items
        assert [(i.id, i.status, i.response) for i in interactions] == [
            (first.json()["id"], "completed", FIRST_ANSWER),
            (second.json()["id"], "completed", SECOND_ANSWER),
        ]
        assert [t.origin for t in await reader.list_traces(second.json()["id"])] == ["llm"]
    finally:
        await reader.close()
