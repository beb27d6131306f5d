"""The memory store: conversations, their interactions and each interaction's traces, in SQLite by default
and in PostgreSQL by URL, through SQLAlchemy's asyncio API.

Durability is the point of its shape: every call is one committed transaction, an interaction is written as
"running" before its run starts, and opening a store marks the running interactions of processes that died
as "interrupted", so no turn silently disappears. On SQLite every write transaction starts with
`BEGIN IMMEDIATE` (WAL mode, a busy timeout), so several stores and processes can share one file: writers
wait their turn instead of failing or losing updates, and readers never block.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Select, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fncall import paths
from fncall.errors import InvalidRequestError
from fncall.memory.database import READ_ONLY_OPTION, async_url, create_engine
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

    def __init__(self, engine: AsyncEngine, *, one_connection: bool = False) -> None:
        """Wraps an engine already set up by `open`; call `open` instead of this."""
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # An in-memory SQLite database lives on one shared connection: take turns using it.
        self._turn = asyncio.Lock() if one_connection else None

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
        engine, one_connection = create_engine(database_url, busy_timeout_s)
        store = cls(engine, one_connection=one_connection)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    ensure_schema, database=database_url.render_as_string(hide_password=True)
                )
            if recover:
                await store.recover_interrupted()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection. Everything was committed already; nothing is lost by closing."""
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
        now = utc_now()
        row = ConversationRow(
            memory_id=memory_id or _new_id(),
            name=name,
            agent_id=agent_id,
            meta=dict(metadata or {}),
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._writing() as session:
                session.add(row)
        except IntegrityError:
            raise MemoryStoreError(
                f"A conversation with id {row.memory_id!r} already exists: choose another memory_id."
            ) from None
        return _conversation(row)

    async def get_conversation(self, memory_id: str) -> Conversation:
        async with self._reading() as session:
            return _conversation(await _conversation_row(session, memory_id))

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
        query = select(ConversationRow)
        if agent_id is not None:
            query = query.where(ConversationRow.agent_id == agent_id)
        if cursor is not None:
            created_at, memory_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    ConversationRow.created_at < created_at,
                    and_(ConversationRow.created_at == created_at, ConversationRow.memory_id < memory_id),
                )
            )
        query = query.order_by(ConversationRow.created_at.desc(), ConversationRow.memory_id.desc())
        async with self._reading() as session:
            rows = await _page_rows(session, query, limit, offset)
        items = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items=items,
            next_cursor=_encode_cursor(items[-1].created_at, items[-1].memory_id) if more else None,
        )

    async def rename_conversation(self, memory_id: str, name: str) -> Conversation:
        async with self._writing() as session:
            row = await _conversation_row(session, memory_id)
            row.name = name
            row.updated_at = utc_now()
        return _conversation(row)

    async def delete_conversation(self, memory_id: str) -> None:
        """Delete a conversation with all its interactions and their traces."""
        async with self._writing() as session:
            result = await session.execute(
                delete(ConversationRow).where(ConversationRow.memory_id == memory_id),
                execution_options={"synchronize_session": False},
            )
            if _rowcount(result) == 0:
                raise MemoryNotFoundError("conversation", memory_id)

    # --------------------------------------------------------------------------------- interactions

    async def start_interaction(
        self, memory_id: str, input: str, parent_id: str | None = None
    ) -> Interaction:
        """Record a user turn as "running". Call it before the run starts, so a crash leaves a trace of it."""
        now = utc_now()
        async with self._writing() as session:
            conversation = await _conversation_row(session, memory_id)
            if parent_id is not None:
                await _interaction_row(session, parent_id)
            row = InteractionRow(
                id=_new_id(),
                memory_id=memory_id,
                parent_interaction_id=parent_id,
                input=input,
                status="running",
                prompt_tokens=0,
                completion_tokens=0,
                trace_count=0,
                owner=current_owner(),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            conversation.updated_at = now
        return _interaction(row)

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
        async with self._writing() as session:
            # Incrementing the counter takes the row's write lock, so numbers are handed out one at a time.
            number = (
                await session.execute(
                    update(InteractionRow)
                    .where(InteractionRow.id == interaction_id)
                    .values(trace_count=InteractionRow.trace_count + 1, updated_at=now)
                    .returning(InteractionRow.trace_count),
                    execution_options={"synchronize_session": False},
                )
            ).scalar_one_or_none()
            if number is None:
                raise MemoryNotFoundError("interaction", interaction_id)
            row = TraceRow(
                id=_new_id(),
                interaction_id=interaction_id,
                trace_number=number,
                origin=origin,
                step=step,
                input=_as_text(input),
                output=_as_text(output),
                is_error=is_error,
                started_at=started_at or now,
                duration_s=duration_s,
            )
            session.add(row)
        return _trace(row)

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
        row = await self._transition(interaction_id, ("running", "interrupted"), values, "finished")
        return _interaction(row)

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
        row = await self._transition(interaction_id, ("running", "interrupted"), values, "failed")
        return _interaction(row)

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
        return dict(row.run_state or {})

    async def get_interaction(self, interaction_id: str) -> Interaction:
        async with self._reading() as session:
            return _interaction(await _interaction_row(session, interaction_id))

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
        query = select(InteractionRow).where(InteractionRow.memory_id == memory_id)
        if status is not None:
            query = query.where(InteractionRow.status == status)
        if cursor is not None:
            created_at, interaction_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    InteractionRow.created_at > created_at,
                    and_(InteractionRow.created_at == created_at, InteractionRow.id > interaction_id),
                )
            )
        query = query.order_by(InteractionRow.created_at, InteractionRow.id)
        async with self._reading() as session:
            await _conversation_row(session, memory_id)
            rows = await _page_rows(session, query, limit, offset)
        items = [_interaction(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(
            items=items, next_cursor=_encode_cursor(items[-1].created_at, items[-1].id) if more else None
        )

    async def list_child_interactions(self, interaction_id: str) -> list[Interaction]:
        """The interactions started with `parent_id=interaction_id`, oldest first."""
        async with self._reading() as session:
            await _interaction_row(session, interaction_id)
            rows = await session.scalars(
                select(InteractionRow)
                .where(InteractionRow.parent_interaction_id == interaction_id)
                .order_by(InteractionRow.created_at, InteractionRow.id)
            )
            return [_interaction(row) for row in rows]

    async def list_traces(
        self, interaction_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[Trace]:
        """An interaction's traces in order; `after` skips those numbered up to it (for polling)."""
        query = (
            select(TraceRow)
            .where(TraceRow.interaction_id == interaction_id, TraceRow.trace_number > after)
            .order_by(TraceRow.trace_number)
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._reading() as session:
            await _interaction_row(session, interaction_id)
            return [_trace(row) for row in await session.scalars(query)]

    async def history(self, memory_id: str, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Message]:
        """The last `limit` completed interactions as chat history: user input and assistant response
        pairs, oldest first. Running, failed, paused and interrupted turns are left out."""
        async with self._reading() as session:
            await _conversation_row(session, memory_id)
            if limit <= 0:
                return []
            rows = list(
                await session.scalars(
                    select(InteractionRow)
                    .where(InteractionRow.memory_id == memory_id, InteractionRow.status == "completed")
                    .order_by(InteractionRow.created_at.desc(), InteractionRow.id.desc())
                    .limit(limit)
                )
            )
        messages: list[Message] = []
        for row in reversed(rows):
            messages.append(Message.user(row.input))
            messages.append(Message.assistant(row.response or ""))
        return messages

    async def recover_interrupted(self, *, all_owners: bool = False) -> int:
        """Mark "running" interactions whose process is gone as "interrupted"; returns how many.

        `all_owners=True` marks every running interaction, live or not: for a deployment that knows no
        other process is using the database (or whose owners run on other hosts and are gone).
        """
        now = utc_now()
        async with self._writing() as session:
            running = (
                await session.execute(
                    select(InteractionRow.id, InteractionRow.owner).where(InteractionRow.status == "running")
                )
            ).all()
            stopped = [row.id for row in running if all_owners or not owner_is_alive(row.owner)]
            if stopped:
                await session.execute(
                    update(InteractionRow)
                    .where(InteractionRow.id.in_(stopped), InteractionRow.status == "running")
                    .values(
                        status="interrupted", error=INTERRUPTED_ERROR, interrupted_at=now, updated_at=now
                    ),
                    execution_options={"synchronize_session": False},
                )
        return len(stopped)

    # -------------------------------------------------------------------------------------- helpers

    async def _transition(
        self, interaction_id: str, allowed: tuple[str, ...], values: dict[str, Any], action: str
    ) -> InteractionRow:
        """Moves an interaction to a new status if its current one is in `allowed`, in one statement."""
        async with self._writing() as session:
            result = await session.execute(
                update(InteractionRow)
                .where(InteractionRow.id == interaction_id, InteractionRow.status.in_(allowed))
                .values(**values, updated_at=utc_now()),
                execution_options={"synchronize_session": False},
            )
            row = await session.get(InteractionRow, interaction_id, populate_existing=True)
            if row is None:
                raise MemoryNotFoundError("interaction", interaction_id)
            if _rowcount(result) == 0:
                raise InteractionStateError(
                    f"Interaction {interaction_id!r} is {row.status}, so it cannot be {action}: only an "
                    f"interaction that is {' or '.join(allowed)} can."
                )
            return row

    def _turn_taking(self) -> AbstractAsyncContextManager[object]:
        return self._turn if self._turn is not None else nullcontext()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction only reads (a deferred BEGIN on SQLite: it never waits for writers)."""
        async with self._turn_taking(), self._sessions() as session:
            await session.connection(execution_options={READ_ONLY_OPTION: True})
            yield session

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A session committed on exit, rolled back on error; on SQLite it holds the write lock."""
        async with self._turn_taking(), self._sessions() as session, session.begin():
            yield session


# ----------------------------------------------------------------------------------- row helpers


async def _conversation_row(session: AsyncSession, memory_id: str) -> ConversationRow:
    row = await session.get(ConversationRow, memory_id)
    if row is None:
        raise MemoryNotFoundError("conversation", memory_id)
    return row


async def _interaction_row(session: AsyncSession, interaction_id: str) -> InteractionRow:
    row = await session.get(InteractionRow, interaction_id)
    if row is None:
        raise MemoryNotFoundError("interaction", interaction_id)
    return row


async def _page_rows(session: AsyncSession, query: Select[Any], limit: int, offset: int) -> list[Any]:
    """One row more than `limit`, to know whether another page follows."""
    return list(await session.scalars(query.offset(offset).limit(limit + 1)))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        memory_id=row.memory_id,
        name=row.name,
        agent_id=row.agent_id,
        metadata=dict(row.meta or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _interaction(row: InteractionRow) -> Interaction:
    return Interaction(
        id=row.id,
        memory_id=row.memory_id,
        input=row.input,
        response=row.response,
        status=row.status,  # type: ignore[arg-type]  # the CHECK constraint keeps it one of the statuses
        outcome=row.outcome,
        error=row.error,
        parent_interaction_id=row.parent_interaction_id,
        usage=Usage(prompt_tokens=row.prompt_tokens or 0, completion_tokens=row.completion_tokens or 0),
        trace_count=row.trace_count or 0,
        created_at=row.created_at,
        updated_at=row.updated_at,
        interrupted_at=row.interrupted_at,
    )


def _trace(row: TraceRow) -> Trace:
    return Trace(
        id=row.id,
        interaction_id=row.interaction_id,
        trace_number=row.trace_number,
        origin=row.origin,
        step=row.step,
        input=row.input,
        output=row.output,
        is_error=row.is_error,
        started_at=row.started_at,
        duration_s=row.duration_s,
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
