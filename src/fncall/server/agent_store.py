"""Registered agents and the agent service's run records, durable in the memory database.

Two small tables beside the memory store's own, on the same database URL, created if missing: `agents` (the
spec of every registered agent, built-in ones included) and `agent_runs` (which agent and which exact spec a
run used, and the calls a paused run waits for), so a paused run can be resumed after a restart even when its
agent was changed or deleted in between.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import jsonschema
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import JSON, Boolean, DateTime, Dialect, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from fncall.agents.spec import AgentSpec, AgentSpecError, load_agent_spec
from fncall.errors import FncallError
from fncall.memory.database import async_url, create_engine
from fncall.memory.schema_version import lock_schema_setup

_BUSY_TIMEOUT_S = 30.0


class NotFoundError(FncallError, LookupError):
    """An agent or run id this service does not know (HTTP 404)."""

    def __init__(self, kind: str, id: str, hint: str = "") -> None:
        message = f"No {kind} with id {id!r} exists."
        super().__init__(f"{message} {hint}".strip())
        self.kind = kind
        self.id = id


class ConflictError(FncallError):
    """A request that the current state of an agent or run does not allow (HTTP 409)."""


# -------------------------------------------------------------------------------------- definitions


class ClientToolConfig(BaseModel):
    """A tool the API client runs itself: the model calls it, the run pauses, the client posts the result."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["client"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
        if value.get("type") != "object":
            raise ValueError("the parameters schema must have type 'object'")
        return value


class AgentDefinition(BaseModel):
    """What the service registers: an AgentSpec, plus the two things an AgentSpec cannot say yet and the
    service needs for human-in-the-loop runs: which tools wait for approval (`"requires_approval": true` on a
    tool entry) and client-side tools (`{"type": "client", ...}` entries). On the wire it is one spec-shaped
    JSON object; `from_request` splits it and `to_json` joins it back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: AgentSpec
    approval_tools: list[str] = Field(default_factory=list)
    client_tools: list[ClientToolConfig] = Field(default_factory=list)

    @classmethod
    def from_request(cls, data: Any) -> AgentDefinition:
        """A definition from a spec-shaped JSON object; AgentSpecError names every problem by its field."""
        if not isinstance(data, Mapping):
            raise AgentSpecError([("", f"an agent spec must be a JSON object, not {type(data).__name__}")])
        tools = data.get("tools", [])
        if not isinstance(tools, list):
            return cls(spec=load_agent_spec(dict(data)))
        spec_tools: list[Any] = []
        positions: list[int] = []
        approval_tools: list[str] = []
        client_tools: list[ClientToolConfig] = []
        problems: list[tuple[str, str]] = []
        for index, entry in enumerate(tools):
            if isinstance(entry, Mapping) and entry.get("type") == "client":
                try:
                    client_tools.append(ClientToolConfig.model_validate(entry))
                except ValidationError as error:
                    problems.extend(_problems(error, f"tools[{index}]"))
                continue
            if isinstance(entry, Mapping) and "requires_approval" in entry:
                entry = dict(entry)
                flag = entry.pop("requires_approval")
                if not isinstance(flag, bool):
                    problems.append((f"tools[{index}].requires_approval", "must be true or false"))
                elif flag and isinstance(entry.get("name"), str):
                    approval_tools.append(entry["name"])
            spec_tools.append(entry)
            positions.append(index)
        try:
            spec = load_agent_spec({**data, "tools": spec_tools})
        except AgentSpecError as error:
            problems.extend(
                (_renumbered(location, positions), message) for location, message in error.problems
            )
            raise AgentSpecError(problems) from None
        names = [config.name for config in spec.tools]
        for index, client in enumerate(client_tools):
            if client.name in names:
                problems.append(("tools", f"a tool named {client.name!r} is already listed"))
            names.append(client.name)
            if spec.type == "flow":
                problems.append((f"tools[{index}]", "flow agents cannot have client-side tools"))
        if approval_tools and spec.type == "flow":
            problems.append(("tools", "flow agents cannot have tools that wait for approval"))
        if problems:
            raise AgentSpecError(problems)
        return cls(spec=spec, approval_tools=approval_tools, client_tools=client_tools)

    def to_json(self) -> dict[str, Any]:
        """The definition as one spec-shaped JSON object (what GET /v1/agents/{id} returns)."""
        data = self.spec.model_dump(mode="json", exclude_defaults=True)
        tools = [dict(tool) for tool in data.get("tools", [])]
        for tool in tools:
            if tool.get("name") in self.approval_tools:
                tool["requires_approval"] = True
        tools.extend(client.model_dump(mode="json") for client in self.client_tools)
        if tools:
            data["tools"] = tools
        return data

    def tool_names(self) -> list[str]:
        return [config.name for config in self.spec.tools] + [client.name for client in self.client_tools]


def _problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    return [
        (
            prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]),
            item["msg"].removeprefix("Value error, "),
        )
        for item in error.errors()
    ]


def _renumbered(location: str, positions: list[int]) -> str:
    """`tools[i]` of the spec without client tools, as the index the client sent."""
    match = re.match(r"^tools\[(\d+)\]", location)
    if match is None or int(match.group(1)) >= len(positions):
        return location
    return f"tools[{positions[int(match.group(1))]}]" + location[match.end() :]


# ------------------------------------------------------------------------------------------- values


class StoredAgent(BaseModel):
    """A registered agent: its id, its definition, and whether the server registers it itself at startup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: str
    definition: AgentDefinition
    builtin: bool = False
    created_at: datetime
    updated_at: datetime


class RunRecord(BaseModel):
    """What the agent service keeps about a run beside its memory interaction (run id = interaction id).

    `definition` is the exact definition the run was built from (per-run overrides applied), `pending` the
    calls a paused run waits for (PendingCall JSON), empty otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str
    agent_id: str | None
    memory_id: str
    definition: AgentDefinition
    pending: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime


# ------------------------------------------------------------------------------------------- tables


class _UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on SQLite too (it hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(DeclarativeBase):
    type_annotation_map = {datetime: _UTCDateTime, dict[str, Any]: JSON}


class _AgentRow(_Base):
    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class _RunRow(_Base):
    __tablename__ = "agent_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    memory_id: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    pending: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column()


# -------------------------------------------------------------------------------------------- store


class AgentStore:
    """Registered agents and run records. Create one with `await AgentStore.open(url)`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> AgentStore:
        """Open the database at `url` (an asyncio driver is chosen for sqlite/postgresql URLs) and create the
        two tables if they are missing."""
        engine, _ = create_engine(async_url(url), _BUSY_TIMEOUT_S)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(lock_schema_setup)
                await connection.run_sync(_Base.metadata.create_all)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    # ---------------------------------------------------------------------------------------- agents

    async def create_agent(self, definition: AgentDefinition) -> StoredAgent:
        """Register `definition` under a fresh id."""
        now = datetime.now(UTC)
        row = _AgentRow(
            agent_id=uuid.uuid4().hex,
            name=definition.spec.name,
            spec=definition.to_json(),
            builtin=False,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return _stored_agent(row)

    async def put_builtin(self, agent_id: str, definition: AgentDefinition) -> StoredAgent:
        """Register or refresh a built-in agent under its stable id (the server does this at each start)."""
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            row = await session.get(_AgentRow, agent_id)
            if row is None:
                row = _AgentRow(agent_id=agent_id, created_at=now)
                session.add(row)
            row.name, row.spec = definition.spec.name, definition.to_json()
            row.builtin, row.updated_at = True, now
        return _stored_agent(row)

    async def get_agent(self, agent_id: str) -> StoredAgent:
        async with self._sessions() as session:
            row = await session.get(_AgentRow, agent_id)
        if row is None:
            raise NotFoundError("agent", agent_id, "List the registered agents with GET /v1/agents.")
        return _stored_agent(row)

    async def list_agents(self) -> list[StoredAgent]:
        """Every registered agent, oldest first (built-in ones are registered first)."""
        async with self._sessions() as session:
            rows = await session.scalars(select(_AgentRow).order_by(_AgentRow.created_at, _AgentRow.agent_id))
            return [_stored_agent(row) for row in rows]

    async def replace_agent(self, agent_id: str, definition: AgentDefinition) -> StoredAgent:
        """Replace a registered agent's definition; built-in agents cannot be replaced."""
        async with self._sessions() as session, session.begin():
            row = await self._user_agent_row(session, agent_id, "replaced")
            row.name, row.spec, row.updated_at = definition.spec.name, definition.to_json(), datetime.now(UTC)
        return _stored_agent(row)

    async def delete_agent(self, agent_id: str) -> None:
        """Forget a registered agent (its conversations and paused runs stay); built-ins cannot be deleted."""
        async with self._sessions() as session, session.begin():
            await self._user_agent_row(session, agent_id, "deleted")
            await session.execute(delete(_AgentRow).where(_AgentRow.agent_id == agent_id))

    async def _user_agent_row(self, session: Any, agent_id: str, action: str) -> _AgentRow:
        row = await session.get(_AgentRow, agent_id)
        if row is None:
            raise NotFoundError("agent", agent_id, "List the registered agents with GET /v1/agents.")
        if row.builtin:
            raise ConflictError(
                f"The agent {agent_id!r} is built into the server and cannot be {action}; register a new "
                "agent with POST /v1/agents instead."
            )
        return row

    # ------------------------------------------------------------------------------------------ runs

    async def save_run(self, record: RunRecord) -> None:
        row = _RunRow(
            run_id=record.run_id,
            agent_id=record.agent_id,
            memory_id=record.memory_id,
            spec=record.definition.to_json(),
            pending=list(record.pending),
            created_at=record.created_at,
        )
        async with self._sessions() as session, session.begin():
            await session.merge(row)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None for an interaction the agent service did not start."""
        async with self._sessions() as session:
            row = await session.get(_RunRow, run_id)
        if row is None:
            return None
        return RunRecord(
            run_id=row.run_id,
            agent_id=row.agent_id,
            memory_id=row.memory_id,
            definition=AgentDefinition.from_request(row.spec),
            pending=list(row.pending or []),
            created_at=row.created_at,
        )

    async def set_pending(self, run_id: str, pending: list[dict[str, Any]]) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(_RunRow, run_id)
            if row is not None:
                row.pending = list(pending)


def _stored_agent(row: _AgentRow) -> StoredAgent:
    return StoredAgent(
        agent_id=row.agent_id,
        definition=AgentDefinition.from_request(row.spec),
        builtin=bool(row.builtin),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
