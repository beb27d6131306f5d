"""The memory store: conversations, their interactions and each interaction's traces, in SQLite by default
and in PostgreSQL by URL, through SQLAlchemy.

Durability is the point of its shape: every call is one committed transaction, an interaction is written as
"running" before its run starts, and opening a store marks the running interactions of processes that died
as "interrupted", so no turn silently disappears. On SQLite every write transaction starts with
`BEGIN IMMEDIATE` (WAL mode, a busy timeout), so several stores and processes can share one file: writers
wait their turn instead of failing or losing updates, and readers never block.

Each call's work is a function of a synchronous connection made of SQLAlchemy Core statements (no ORM unit of
work: an agent run writes a trace per step, and those writes are the hot path of the agent service), run by
the transaction runner of `fncall.memory.database` that suits the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fncall import paths
from fncall.errors import InvalidRequestError
from fncall.memory.database import (
    AsyncEngineTransactions,
    Transactions,
    Work,
    async_url,
    open_transactions,
)
from fncall.memory.errors import InteractionStateError, MemoryNotFoundError, MemoryStoreError
from fncall.memory.models import ConversationRow, InteractionRow, TraceRow, utc_now
from fncall.memory.owner import current_owner, owner_is_alive
from fncall.memory.records import Conversation, Interaction, Page, Trace
from fncall.memory.schema_version import ensure_schema
from fncall.types import Message, Usage

DATABASE_URL_ENV = "FNCALL_DATABASE_URL"
DATABASE_FILE_NAME = "fncall.db"
DEFAULT_BUSY_TIMEOUT_S = 30.0
DEFAULT_HISTORY_LIMIT = 10

INTERRUPTED_ERROR = (
    "The process running this interaction stopped before the run finished (it was killed or crashed); "
    "run the turn again to get an answer."
)

TraceContent = str | Mapping[str, Any] | Sequence[Any]
"""A trace's input or output: text, or a JSON-serialisable value that is stored as JSON text."""

_CONVERSATIONS: Table = ConversationRow.__table__  # type: ignore[assignment]
_INTERACTIONS: Table = InteractionRow.__table__  # type: ignore[assignment]
_TRACES: Table = TraceRow.__table__  # type: ignore[assignment]

# The statements of the hot path, built once: only their parameters change from call to call.
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
_INSERT_INTERACTION = insert(_INTERACTIONS)
_INSERT_TRACE = insert(_TRACES)
_TOUCH_CONVERSATION = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.memory_id == bindparam("b_memory_id"))
    .values(updated_at=bindparam("b_now"))
)
# Incrementing the counter takes the row's write lock, so trace numbers are handed out one at a time.
_NEXT_TRACE_NUMBER = (
    update(_INTERACTIONS)
    .where(_INTERACTIONS.c.id == bindparam("b_interaction_id"))
    .values(trace_count=_INTERACTIONS.c.trace_count + 1, updated_at=bindparam("b_now"))
    .returning(_INTERACTIONS.c.trace_count)
)
_INTERACTION_EXISTS = select(_INTERACTIONS.c.id).where(_INTERACTIONS.c.id == bindparam("b_interaction_id"))


def default_database_url() -> str:
    """`$FNCALL_DATABASE_URL` when set, else the SQLite file `fncall.db` in the data directory."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        return configured
    return f"sqlite+aiosqlite:///{paths.data_dir() / DATABASE_FILE_NAME}"


class MemoryStore:
    """Conversations, interactions and traces. Create one with `await MemoryStore.open(url)`.

    Each method runs in its own transaction and commits before it returns. Unknown ids raise
    MemoryNotFoundError; a status change the interaction's status does not allow raises
    InteractionStateError.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        one_connection: bool = False,
        transactions: Transactions | None = None,
    ) -> None:
        """Wraps an engine already set up by `open`; call `open` instead of this."""
        self._engine = engine
        # An in-memory SQLite database lives on one shared connection: its calls take turns.
        self._transactions = transactions or AsyncEngineTransactions(engine, one_connection=one_connection)

    # ------------------------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        recover: bool = True,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> MemoryStore:
        """Open (creating or upgrading its schema) the database at `url`, default `default_database_url()`.

        With `recover`, interactions left "running" by processes that no longer exist are marked
        "interrupted". Raises SchemaVersionError, without touching the database, when it was written by a
        newer fncall.
        """
        database_url = async_url(url or default_database_url())
        engine, transactions = open_transactions(database_url, busy_timeout_s)
        store = cls(engine, transactions=transactions)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    ensure_schema, database=database_url.render_as_string(hide_password=True)
                )
            if recover:
                await store.recover_interrupted()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection. Everything was committed already; nothing is lost by closing."""
        await self._transactions.close()
        await self._engine.dispose()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    # -------------------------------------------------------------------------------- conversations

    async def create_conversation(
        self,
        name: str = "",
        *,
        agent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        memory_id: str | None = None,
    ) -> Conversation:
        """A new, empty conversation; `memory_id` defaults to a fresh UUID."""
        values = _conversation_values(memory_id or _new_id(), name, agent_id, metadata, utc_now())

        def work(connection: Connection) -> None:
            connection.execute(_INSERT_CONVERSATION, values)

        await self._write_conversation(work, values["memory_id"])
        return _conversation(values)

    async def start_conversation(
        self,
        input: str,
        name: str = "",
        *,
        agent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Conversation, Interaction]:
        """A new conversation with its first interaction already "running", in one transaction: what a run
        that starts a conversation needs, in one commit instead of two. Its history is empty by definition."""
        now = utc_now()
        conversation = _conversation_values(_new_id(), name, agent_id, metadata, now)
        interaction = _interaction_values(conversation["memory_id"], input, None, now)

        def work(connection: Connection) -> None:
            connection.execute(_INSERT_CONVERSATION, conversation)
            connection.execute(_INSERT_INTERACTION, interaction)

        await self._write_conversation(work, conversation["memory_id"])
        return _conversation(conversation), _interaction(interaction)

    async def get_conversation(self, memory_id: str) -> Conversation:
        def work(connection: Connection) -> Conversation:
            return _conversation(_conversation_row(connection, memory_id))

        return await self._transactions.read(work)

    async def list_conversations(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
        agent_id: str | None = None,
    ) -> Page[Conversation]:
        """Conversations, newest first, `limit` at a time: page on with `offset` or the returned cursor."""
        _check_page(limit, offset, cursor)
        table = _CONVERSATIONS
        query = select(table)
        if agent_id is not None:
            query = query.where(table.c.agent_id == agent_id)
        if cursor is not None:
            created_at, memory_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    table.c.created_at < created_at,
                    and_(table.c.created_at == created_at, table.c.memory_id < memory_id),
                )
            )
        query = query.order_by(table.c.created_at.desc(), table.c.memory_id.desc())

        def work(connection: Connection) -> list[RowMapping]:
            return _page_rows(connection, query, limit, offset)

        rows = await self._transactions.read(work)
        items = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items=items,
            next_cursor=_encode_cursor(items[-1].created_at, items[-1].memory_id) if more else None,
        )

    async def rename_conversation(self, memory_id: str, name: str) -> Conversation:
        table = _CONVERSATIONS
        statement = (
            update(table)
            .where(table.c.memory_id == memory_id)
            .values(name=name, updated_at=utc_now())
            .returning(*table.c)
        )

        def work(connection: Connection) -> Conversation:
            row = connection.execute(statement).mappings().first()
            if row is None:
                raise MemoryNotFoundError("conversation", memory_id)
            return _conversation(row)

        return await self._transactions.write(work)

    async def delete_conversation(self, memory_id: str) -> None:
        """Delete a conversation with all its interactions and their traces."""
        statement = delete(_CONVERSATIONS).where(_CONVERSATIONS.c.memory_id == memory_id)

        def work(connection: Connection) -> None:
            if _rowcount(connection.execute(statement)) == 0:
                raise MemoryNotFoundError("conversation", memory_id)

        await self._transactions.write(work)

    async def _write_conversation(self, work: Work[None], memory_id: str) -> None:
        try:
            await self._transactions.write(work)
        except IntegrityError:
            raise MemoryStoreError(
                f"A conversation with id {memory_id!r} already exists: choose another memory_id."
            ) from None

    # --------------------------------------------------------------------------------- interactions

    async def start_interaction(
        self, memory_id: str, input: str, parent_id: str | None = None
    ) -> Interaction:
        """Record a user turn as "running". Call it before the run starts, so a crash leaves a trace of it."""
        now = utc_now()
        values = _interaction_values(memory_id, input, parent_id, now)

        def work(connection: Connection) -> None:
            touched = connection.execute(_TOUCH_CONVERSATION, {"b_memory_id": memory_id, "b_now": now})
            if _rowcount(touched) == 0:
                raise MemoryNotFoundError("conversation", memory_id)
            if parent_id is not None:
                _require_interaction(connection, parent_id)
            connection.execute(_INSERT_INTERACTION, values)

        await self._transactions.write(work)
        return _interaction(values)

    async def add_trace(
        self,
        interaction_id: str,
        origin: str,
        input: TraceContent,
        output: TraceContent,
        is_error: bool = False,
        started_at: datetime | None = None,
        duration_s: float = 0.0,
        *,
        step: int | None = None,
    ) -> Trace:
        """Append a trace; its `trace_number` is the next in the interaction (1, 2, ...), even when several
        writers add traces at once."""
        now = utc_now()
        values: dict[str, Any] = {
            "id": _new_id(),
            "interaction_id": interaction_id,
            "origin": origin,
            "step": step,
            "input": _as_text(input),
            "output": _as_text(output),
            "is_error": is_error,
            "started_at": started_at or now,
            "duration_s": duration_s,
        }

        def work(connection: Connection) -> int:
            number = connection.execute(
                _NEXT_TRACE_NUMBER, {"b_interaction_id": interaction_id, "b_now": now}
            ).scalar_one_or_none()
            if number is None:
                raise MemoryNotFoundError("interaction", interaction_id)
            connection.execute(_INSERT_TRACE, {**values, "trace_number": number})
            return int(number)

        values["trace_number"] = await self._transactions.write(work)
        return _trace(values)

    async def finish_interaction(
        self, interaction_id: str, response: str, usage: Usage | None = None, *, outcome: str | None = None
    ) -> Interaction:
        """Mark a running interaction "completed" with the final response (and the tokens the run used)."""
        values: dict[str, Any] = {
            "status": "completed",
            "response": response,
            "outcome": outcome,
            "error": None,
            "run_state": None,
            **_usage_values(usage),
        }
        return _interaction(
            await self._transition(interaction_id, ("running", "interrupted"), values, "finished")
        )

    async def fail_interaction(
        self, interaction_id: str, error: str, usage: Usage | None = None, *, outcome: str | None = None
    ) -> Interaction:
        """Mark a running interaction "failed" with a sentence saying why."""
        values: dict[str, Any] = {
            "status": "failed",
            "error": error,
            "outcome": outcome,
            "run_state": None,
            **_usage_values(usage),
        }
        return _interaction(
            await self._transition(interaction_id, ("running", "interrupted"), values, "failed")
        )

    async def interrupt_interaction(
        self, interaction_id: str, reason: str = INTERRUPTED_ERROR
    ) -> Interaction:
        """Mark a running interaction "interrupted" (its run was cancelled or its process stopped)."""
        now = utc_now()
        values = {"status": "interrupted", "error": reason, "interrupted_at": now}
        return _interaction(await self._transition(interaction_id, ("running",), values, "interrupted"))

    async def pause_interaction(self, interaction_id: str, state: Mapping[str, Any]) -> Interaction:
        """Mark a running interaction "paused", saving `state` (JSON-serialisable) for `resume_interaction`,
        which may happen in another process after a restart."""
        try:
            json.dumps(state)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(
                f"A paused run's state must be JSON-serialisable: {exc}", param="state"
            ) from None
        values = {"status": "paused", "run_state": dict(state)}
        return _interaction(await self._transition(interaction_id, ("running",), values, "paused"))

    async def resume_interaction(self, interaction_id: str) -> dict[str, Any]:
        """Mark a paused interaction "running" again, owned by this process, and return its saved state.

        Only one caller can resume a paused interaction; the others get InteractionStateError.
        """
        values = {"status": "running", "owner": current_owner()}
        row = await self._transition(interaction_id, ("paused",), values, "resumed")
        return dict(row["run_state"] or {})

    async def get_interaction(self, interaction_id: str) -> Interaction:
        def work(connection: Connection) -> Interaction:
            return _interaction(_interaction_row(connection, interaction_id))

        return await self._transactions.read(work)

    async def list_interactions(
        self,
        memory_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
        status: str | None = None,
    ) -> Page[Interaction]:
        """A conversation's interactions, oldest first, optionally only those with `status`."""
        _check_page(limit, offset, cursor)
        table = _INTERACTIONS
        query = select(table).where(table.c.memory_id == memory_id)
        if status is not None:
            query = query.where(table.c.status == status)
        if cursor is not None:
            created_at, interaction_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    table.c.created_at > created_at,
                    and_(table.c.created_at == created_at, table.c.id > interaction_id),
                )
            )
        query = query.order_by(table.c.created_at, table.c.id)

        def work(connection: Connection) -> list[RowMapping]:
            _conversation_row(connection, memory_id)
            return _page_rows(connection, query, limit, offset)

        rows = await self._transactions.read(work)
        items = [_interaction(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items=items, next_cursor=_encode_cursor(items[-1].created_at, items[-1].id) if more else None
        )

    async def list_child_interactions(self, interaction_id: str) -> list[Interaction]:
        """The interactions started with `parent_id=interaction_id`, oldest first."""
        table = _INTERACTIONS
        query = (
            select(table)
            .where(table.c.parent_interaction_id == interaction_id)
            .order_by(table.c.created_at, table.c.id)
        )

        def work(connection: Connection) -> list[Interaction]:
            _require_interaction(connection, interaction_id)
            return [_interaction(row) for row in connection.execute(query).mappings()]

        return await self._transactions.read(work)

    async def list_traces(
        self, interaction_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[Trace]:
        """An interaction's traces in order; `after` skips those numbered up to it (for polling)."""
        table = _TRACES
        query = (
            select(table)
            .where(table.c.interaction_id == interaction_id, table.c.trace_number > after)
            .order_by(table.c.trace_number)
        )
        if limit is not None:
            query = query.limit(limit)

        def work(connection: Connection) -> list[Trace]:
            _require_interaction(connection, interaction_id)
            return [_trace(row) for row in connection.execute(query).mappings()]

        return await self._transactions.read(work)

    async def history(self, memory_id: str, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Message]:
        """The last `limit` completed interactions as chat history: user input and assistant response
        pairs, oldest first. Running, failed, paused and interrupted turns are left out."""
        table = _INTERACTIONS
        query = (
            select(table.c.input, table.c.response)
            .where(table.c.memory_id == memory_id, table.c.status == "completed")
            .order_by(table.c.created_at.desc(), table.c.id.desc())
            .limit(limit)
        )

        def work(connection: Connection) -> list[Any]:
            _conversation_row(connection, memory_id)
            return [] if limit <= 0 else list(connection.execute(query).all())

        rows = await self._transactions.read(work)
        messages: list[Message] = []
        for input, response in reversed(rows):
            messages.append(Message.user(input))
            messages.append(Message.assistant(response or ""))
        return messages

    async def recover_interrupted(self, *, all_owners: bool = False) -> int:
        """Mark "running" interactions whose process is gone as "interrupted"; returns how many.

        `all_owners=True` marks every running interaction, live or not: for a deployment that knows no
        other process is using the database (or whose owners run on other hosts and are gone).
        """
        now = utc_now()
        table = _INTERACTIONS

        def work(connection: Connection) -> int:
            running = connection.execute(
                select(table.c.id, table.c.owner).where(table.c.status == "running")
            ).all()
            stopped = [row.id for row in running if all_owners or not owner_is_alive(row.owner)]
            if stopped:
                connection.execute(
                    update(table)
                    .where(table.c.id.in_(stopped), table.c.status == "running")
                    .values(status="interrupted", error=INTERRUPTED_ERROR, interrupted_at=now, updated_at=now)
                )
            return len(stopped)

        return await self._transactions.write(work)

    # -------------------------------------------------------------------------------------- helpers

    async def _transition(
        self, interaction_id: str, allowed: tuple[str, ...], values: dict[str, Any], action: str
    ) -> RowMapping:
        """Moves an interaction to a new status if its current one is in `allowed`, in one statement."""
        table = _INTERACTIONS
        statement = (
            update(table)
            .where(table.c.id == interaction_id, table.c.status.in_(allowed))
            .values(**values, updated_at=utc_now())
            .returning(*table.c)
        )

        def work(connection: Connection) -> RowMapping:
            row = connection.execute(statement).mappings().first()
            if row is not None:
                return row
            current = _interaction_row(connection, interaction_id)
            raise InteractionStateError(
                f"Interaction {interaction_id!r} is {current['status']}, so it cannot be {action}: only an "
                f"interaction that is {' or '.join(allowed)} can."
            )

        return await self._transactions.write(work)


# ----------------------------------------------------------------------------------- row helpers


def _conversation_row(connection: Connection, memory_id: str) -> RowMapping:
    row = (
        connection.execute(select(_CONVERSATIONS).where(_CONVERSATIONS.c.memory_id == memory_id))
        .mappings()
        .first()
    )
    if row is None:
        raise MemoryNotFoundError("conversation", memory_id)
    return row


def _interaction_row(connection: Connection, interaction_id: str) -> RowMapping:
    row = (
        connection.execute(select(_INTERACTIONS).where(_INTERACTIONS.c.id == interaction_id))
        .mappings()
        .first()
    )
    if row is None:
        raise MemoryNotFoundError("interaction", interaction_id)
    return row


def _require_interaction(connection: Connection, interaction_id: str) -> None:
    if connection.execute(_INTERACTION_EXISTS, {"b_interaction_id": interaction_id}).first() is None:
        raise MemoryNotFoundError("interaction", interaction_id)


def _page_rows(connection: Connection, query: Select[Any], limit: int, offset: int) -> list[RowMapping]:
    """One row more than `limit`, to know whether another page follows."""
    return list(connection.execute(query.offset(offset).limit(limit + 1)).mappings())


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _conversation_values(
    memory_id: str, name: str, agent_id: str | None, metadata: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    return {
        "memory_id": memory_id,
        "name": name,
        "agent_id": agent_id,
        "metadata": dict(metadata or {}),
        "created_at": now,
        "updated_at": now,
    }


def _interaction_values(memory_id: str, input: str, parent_id: str | None, now: datetime) -> dict[str, Any]:
    return {
        "id": _new_id(),
        "memory_id": memory_id,
        "parent_interaction_id": parent_id,
        "input": input,
        "status": "running",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "trace_count": 0,
        "owner": current_owner(),
        "created_at": now,
        "updated_at": now,
    }


def _conversation(row: Mapping[str, Any]) -> Conversation:
    return Conversation(
        memory_id=row["memory_id"],
        name=row["name"],
        agent_id=row["agent_id"],
        metadata=dict(row["metadata"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _interaction(row: Mapping[str, Any]) -> Interaction:
    return Interaction(
        id=row["id"],
        memory_id=row["memory_id"],
        input=row["input"],
        response=row.get("response"),
        status=row["status"],
        outcome=row.get("outcome"),
        error=row.get("error"),
        parent_interaction_id=row["parent_interaction_id"],
        usage=Usage(prompt_tokens=row["prompt_tokens"] or 0, completion_tokens=row["completion_tokens"] or 0),
        trace_count=row["trace_count"] or 0,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        interrupted_at=row.get("interrupted_at"),
    )


def _trace(row: Mapping[str, Any]) -> Trace:
    return Trace(
        id=row["id"],
        interaction_id=row["interaction_id"],
        trace_number=row["trace_number"],
        origin=row["origin"],
        step=row["step"],
        input=row["input"],
        output=row["output"],
        is_error=row["is_error"],
        started_at=row["started_at"],
        duration_s=row["duration_s"],
    )


def _usage_values(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {}
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def _as_text(content: TraceContent) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)


def _new_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------- paging


def _check_page(limit: int, offset: int, cursor: str | None) -> None:
    if limit < 1:
        raise InvalidRequestError(f"limit must be at least 1, not {limit}.", param="limit")
    if offset < 0:
        raise InvalidRequestError(f"offset must not be negative, not {offset}.", param="offset")
    if offset and cursor is not None:
        raise InvalidRequestError("Pass either offset or cursor, not both.", param="cursor")


def _encode_cursor(created_at: datetime, id: str) -> str:
    raw = json.dumps([created_at.isoformat(), id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidRequestError(
            "The cursor is not one this store returned: pass next_cursor from the previous page unchanged.",
            param="cursor",
        ) from exc
