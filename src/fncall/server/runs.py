"""Runs of registered agents, as the agent service executes them: durable, observable and cancellable.

A run is a memory interaction (written "running" before the run starts; run id = interaction id), a trace per
step as it finishes, and the final answer, a failure, or a pause written at the end. Every run, foreground or
background, executes as an asyncio task in the `RunService`'s registry, so any of them can be cancelled
(the interaction then reads "interrupted") and a streamed run's events are read from the task's queue. A
paused run keeps its runner state in the database, so it can be resumed by another process after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fncall.agents import Agent, BuiltAgent, FlowRunner, RunResult, RunState, Step, build_agent
from fncall.agents.events import RunEvent
from fncall.agents.result import PendingCall
from fncall.agents.resume import ApprovalDecision, resolve_pending
from fncall.agents.spec import MemoryConfig
from fncall.errors import InvalidRequestError
from fncall.llms.base import LLM
from fncall.memory import Interaction, InteractionStateError, MemoryStore, MemoryStoreError, TraceRecorder
from fncall.memory.recorder import CANCELLED_ERROR
from fncall.server.agent_store import (
    AgentDefinition,
    AgentStore,
    ConflictError,
    RunRecord,
)
from fncall.tools import Tool, ToolRegistry
from fncall.types import Message, ToolResult

logger = logging.getLogger(__name__)

LLMFactory = Callable[[str], LLM]
Approvals = Mapping[str, bool | ApprovalDecision]
SubmittedResults = Mapping[str, str | ToolResult]

RUNNER_STATE_KEY = "runner_state"
_TASK_PREFIX = "fncall-run-"
_TITLE_CHARS = 100


@dataclass(frozen=True)
class RunOverrides:
    """Per-run changes to an agent's spec: budgets, and the subset of its tools this run may use."""

    max_steps: int | None = None
    max_tool_calls: int | None = None
    timeout_s: float | None = None
    selected_tools: Sequence[str] | None = None

    def is_empty(self) -> bool:
        return all(
            value is None
            for value in (self.max_steps, self.max_tool_calls, self.timeout_s, self.selected_tools)
        )


@dataclass(frozen=True)
class _Resume:
    saved: dict[str, Any]
    approvals: Approvals
    tool_results: SubmittedResults


@dataclass
class PreparedRun:
    """A run whose interaction is written "running" and whose agent is built, ready to launch."""

    record: RunRecord
    interaction: Interaction
    built: BuiltAgent
    history: list[Message]
    resume: _Resume | None = None

    @property
    def run_id(self) -> str:
        return self.interaction.id


@dataclass(frozen=True)
class FinishedRun:
    """Where a run stands: its interaction (status, answer, usage), its record, and the RunResult when this
    process just ran it (for `verbose` steps)."""

    interaction: Interaction
    record: RunRecord | None
    result: RunResult | None = None

    @property
    def pending(self) -> list[dict[str, Any]]:
        if self.interaction.status != "paused" or self.record is None:
            return []
        return list(self.record.pending)


class _End:
    """Marks the end of a run's event queue."""


_END = _End()


@dataclass
class ActiveRun:
    """A run executing in this process: its task and, for a streamed run, the queue of its events."""

    run_id: str
    task: asyncio.Task[FinishedRun]
    queue: asyncio.Queue[RunEvent | _End] | None = None

    async def events(self) -> AsyncIterator[RunEvent]:
        """The run's events as they happen, until it ends (only for runs launched with `listen=True`)."""
        if self.queue is None:
            raise RuntimeError("this run was launched without an event queue")
        while True:
            item = await self.queue.get()
            if isinstance(item, _End):
                return
            yield item


# ------------------------------------------------------------------------------------------ metrics


class RunMetrics:
    """Prometheus metrics of agent runs, in their own registry so several apps in a process stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "fncall_agent_runs",
            "Agent runs that ended, by outcome",
            ["agent", "outcome"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "fncall_agent_run_duration_seconds",
            "Wall-clock time of one run (or one resumed part of it)",
            ["agent"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.in_progress = Gauge("fncall_agent_runs_in_progress", "Runs executing", registry=self.registry)
        self.steps = Counter("fncall_agent_steps", "Steps taken, by kind", ["kind"], registry=self.registry)
        self.llm_duration = Histogram(
            "fncall_agent_llm_step_duration_seconds",
            "Time of one LLM step",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "fncall_agent_tool_calls",
            "Tool calls, by tool and status",
            ["tool", "status"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "fncall_agent_tool_duration_seconds",
            "Time of one tool call",
            ["tool"],
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
            registry=self.registry,
        )
        self.errors = Counter(
            "fncall_agent_errors",
            "Errors: failed LLM steps, tool errors, failed or cancelled runs, HTTP error replies",
            ["kind"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "fncall_agent_http_requests",
            "HTTP requests served",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "fncall_agent_http_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["endpoint"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.http_requests.labels(endpoint=endpoint, status=str(status)).inc()
        if status >= 400:
            self.errors.labels(kind=f"http_{status}").inc()
        self.http_latency.labels(endpoint=endpoint).observe(seconds)

    def observe_step(self, step: Step) -> None:
        self.steps.labels(kind=step.kind).inc()
        if step.kind == "llm":
            self.llm_duration.observe(step.duration_s)
            if step.error is not None:
                self.errors.labels(kind="llm_step").inc()
            return
        name = step.call.name if step.call is not None else "unknown"
        failed = step.result is None or step.result.is_error
        self.tool_calls.labels(tool=name, status="error" if failed else "ok").inc()
        self.tool_duration.labels(tool=name).observe(step.duration_s)
        if failed:
            self.errors.labels(kind="tool_call").inc()


# -------------------------------------------------------------------------------------- the service


class RunService:
    """Prepares, launches, resumes and cancels runs of registered agents."""

    def __init__(
        self,
        memory: MemoryStore,
        agents: AgentStore,
        llm_factory: LLMFactory,
        metrics: RunMetrics,
        *,
        default_llm_spec: str = "local:",
    ) -> None:
        self.memory = memory
        self.agents = agents
        self.llm_factory = llm_factory
        self.metrics = metrics
        self.default_llm_spec = default_llm_spec
        self._active: dict[str, ActiveRun] = {}

    # ------------------------------------------------------------------------------------- building

    def build(self, definition: AgentDefinition) -> BuiltAgent:
        """The runnable agent of a definition: its spec built, approval flags and client-side tools added."""
        built = build_agent(definition.spec, llm_factory=self.llm_factory)
        if not definition.approval_tools and not definition.client_tools:
            return built
        assert isinstance(built.agent, Agent)  # definitions refuse both for flow agents
        tools = [
            _needing_approval(item) if item.name in definition.approval_tools else item
            for item in built.agent.tools
        ]
        tools.extend(
            Tool.from_schema(client.name, client.description, client.parameters, None, client_side=True)
            for client in definition.client_tools
        )
        agent = built.agent.model_copy(update={"tools": ToolRegistry(tools)})
        return BuiltAgent(spec=built.spec, agent=agent, runner=built.runner)

    # ------------------------------------------------------------------------------------ preparing

    async def prepare(
        self,
        agent_id: str,
        input: str,
        *,
        memory_id: str | None = None,
        overrides: RunOverrides | None = None,
    ) -> PreparedRun:
        """Build the agent and write the interaction as "running" (in a new conversation unless `memory_id`
        continues one); nothing runs yet."""
        stored = await self.agents.get_agent(agent_id)
        return await self.prepare_definition(
            stored.definition, input, agent_id=agent_id, memory_id=memory_id, overrides=overrides
        )

    async def prepare_definition(
        self,
        definition: AgentDefinition,
        input: str,
        *,
        agent_id: str | None = None,
        memory_id: str | None = None,
        overrides: RunOverrides | None = None,
    ) -> PreparedRun:
        """`prepare` for an agent that is not registered (the CLI's spec files)."""
        definition = with_overrides(definition, overrides or RunOverrides())
        built = self.build(definition)
        if memory_id is None:
            # A new conversation has no history to read: it and its first turn are written in one commit.
            conversation, interaction = await self.memory.start_conversation(
                input, _title(input), agent_id=agent_id
            )
            memory_id, history = conversation.memory_id, []
        else:
            history = await self._history(memory_id, definition.spec.memory)
            interaction = await self.memory.start_interaction(memory_id, input)
        record = RunRecord(
            run_id=interaction.id,
            agent_id=agent_id,
            memory_id=memory_id,
            definition=definition,
            created_at=interaction.created_at,
        )
        await self.agents.save_run(record)
        return PreparedRun(record=record, interaction=interaction, built=built, history=history)

    async def prepare_resume(
        self, run_id: str, approvals: Approvals, tool_results: SubmittedResults
    ) -> PreparedRun:
        """Check the answers to a paused run's pending calls, then claim the run ("running" again). A bad
        answer raises InvalidRequestError before anything changes; a run that is not paused, ConflictError."""
        interaction = await self.memory.get_interaction(run_id)
        record = await self.agents.get_run(run_id)
        if record is None:
            raise ConflictError(
                f"The interaction {run_id!r} was not started by the agent service, so it cannot be resumed "
                "here."
            )
        if interaction.status != "paused":
            raise ConflictError(
                f"The run {run_id!r} is {interaction.status}, not paused: only a paused run takes approvals "
                "or tool results."
            )
        built = self.build(record.definition)
        assert isinstance(built.agent, Agent)  # only function-calling and ReAct agents pause
        pending = [PendingCall.model_validate(item) for item in record.pending]
        resolve_pending(pending, built.agent.tools, approvals, tool_results)
        try:
            saved = await self.memory.resume_interaction(run_id)
        except InteractionStateError as error:
            raise ConflictError(str(error)) from None
        interaction = await self.memory.get_interaction(run_id)
        resume = _Resume(saved=saved, approvals=approvals, tool_results=tool_results)
        return PreparedRun(record=record, interaction=interaction, built=built, history=[], resume=resume)

    async def _history(self, memory_id: str, config: MemoryConfig) -> list[Message]:
        if config.type == "none" or config.message_history_limit == 0:
            await self.memory.get_conversation(memory_id)  # an unknown memory_id is still a 404
            return []
        return await self.memory.history(memory_id, limit=config.message_history_limit)

    # ------------------------------------------------------------------------------------- running

    def launch(self, prepared: PreparedRun, *, listen: bool = False) -> ActiveRun:
        """Start the run as a task of this process; `listen` queues its events for `ActiveRun.events()`."""
        queue: asyncio.Queue[RunEvent | _End] | None = asyncio.Queue() if listen else None
        task = asyncio.create_task(self._execute(prepared, queue), name=_TASK_PREFIX + prepared.run_id)
        active = ActiveRun(run_id=prepared.run_id, task=task, queue=queue)
        self._active[prepared.run_id] = active
        task.add_done_callback(self._forget)
        return active

    def _forget(self, task: asyncio.Task[FinishedRun]) -> None:
        run_id = task.get_name().removeprefix(_TASK_PREFIX)
        self._active.pop(run_id, None)
        if (
            not task.cancelled() and task.exception() is not None
        ):  # also marks it retrieved: no asyncio warning
            logger.info("run %s ended with %s", run_id, type(task.exception()).__name__)

    async def run_to_end(self, prepared: PreparedRun) -> FinishedRun:
        """Launch the run and wait for it. The run is shielded from the caller's cancellation (a client that
        goes away); cancel it with `cancel(run_id)`."""
        active = self.launch(prepared)
        return await asyncio.shield(active.task)

    async def get(self, run_id: str) -> FinishedRun:
        interaction = await self.memory.get_interaction(run_id)
        return FinishedRun(interaction=interaction, record=await self.agents.get_run(run_id))

    def active(self, run_id: str) -> ActiveRun | None:
        return self._active.get(run_id)

    def active_count(self) -> int:
        return len(self._active)

    async def cancel(self, run_id: str) -> FinishedRun:
        """Stop a run executing in this process, or discard a paused one; either way it reads
        "interrupted". A run that already ended, or runs in another process, raises ConflictError."""
        interaction = await self.memory.get_interaction(run_id)
        active = self._active.get(run_id)
        if active is not None:
            active.task.cancel()
            await asyncio.gather(active.task, return_exceptions=True)
        elif interaction.status == "paused":
            try:
                await self.memory.resume_interaction(run_id)
            except InteractionStateError as error:
                raise ConflictError(str(error)) from None
            await self.memory.interrupt_interaction(run_id, CANCELLED_ERROR)
            await self.agents.set_pending(run_id, [])
            self.metrics.errors.labels(kind="run_cancelled").inc()
        elif interaction.status == "running":
            raise ConflictError(
                f"The run {run_id!r} is running in another process of this service; cancel it there."
            )
        else:
            raise ConflictError(
                f"The run {run_id!r} already ended ({interaction.status}); only a running or paused run can "
                "be cancelled."
            )
        return await self.get(run_id)

    async def shutdown(self) -> None:
        """Cancel every run still executing (each is marked interrupted) and wait for them."""
        tasks = [active.task for active in self._active.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(
        self, prepared: PreparedRun, queue: asyncio.Queue[RunEvent | _End] | None
    ) -> FinishedRun:
        run_id = prepared.run_id
        recorder = TraceRecorder.for_interaction(self.memory, prepared.interaction)
        steps_recorded = 0

        async def on_step(state: RunState, step: Step) -> None:
            nonlocal steps_recorded
            steps_recorded += 1
            self.metrics.observe_step(step)
            await recorder.on_step_finished(state, step)

        agent_name = prepared.built.spec.name
        started = time.perf_counter()
        self.metrics.in_progress.inc()
        try:
            result = await self._drive(prepared, on_step, queue)
            if isinstance(prepared.built.runner, FlowRunner):
                for step in result.steps:  # the flow runner takes no step callback: record its steps now
                    self.metrics.observe_step(step)
                    await recorder.record_step(step)
            interaction = await self._conclude(prepared, recorder, result)
        except asyncio.CancelledError:
            self.metrics.errors.labels(kind="run_cancelled").inc()
            await _shielded(self._interrupt(run_id))
            raise
        except Exception as exc:
            if isinstance(exc, InvalidRequestError) and prepared.resume is not None and not steps_recorded:
                # The runner refused the answers before taking a step: the run waits for them again.
                await self.memory.pause_interaction(run_id, prepared.resume.saved)
                raise
            logger.exception("run %s of agent %s failed", run_id, agent_name)
            self.metrics.errors.labels(kind="run_failed").inc()
            interaction = await recorder.fail(f"The run failed: {type(exc).__name__}: {exc}")
            result = None
        finally:
            self.metrics.in_progress.dec()
            self.metrics.run_duration.labels(agent=agent_name).observe(time.perf_counter() - started)
            if queue is not None:
                queue.put_nowait(_END)
        outcome = result.outcome if result is not None else "failed"
        self.metrics.runs.labels(agent=agent_name, outcome=outcome).inc()
        record = prepared.record.model_copy(update={"pending": _pending_json(result)})
        return FinishedRun(interaction=interaction, record=record, result=result)

    async def _drive(
        self,
        prepared: PreparedRun,
        on_step: Callable[[RunState, Step], Awaitable[None]],
        queue: asyncio.Queue[RunEvent | _End] | None,
    ) -> RunResult:
        """Runs (or resumes) the agent with the runner its type needs, feeding `queue` when there is one."""
        built, input = prepared.built, prepared.interaction.input
        agent, runner = built.agent, built.runner
        if isinstance(runner, FlowRunner):
            assert not isinstance(agent, Agent)
            flow_stream = runner.stream(agent, input, history=prepared.history)
            async for event in flow_stream:
                if queue is not None:
                    queue.put_nowait(event)
            return flow_stream.result
        assert isinstance(agent, Agent)
        resume = prepared.resume
        if queue is None:
            if resume is None:
                return await runner.run(agent, input, history=prepared.history, on_step=on_step)
            return await runner.resume(
                agent,
                resume.saved[RUNNER_STATE_KEY],
                approvals=resume.approvals,
                tool_results=resume.tool_results,
                on_step=on_step,
            )
        if resume is None:
            stream = runner.stream(agent, input, history=prepared.history, on_step=on_step)
        else:
            stream = runner.resume_stream(
                agent,
                resume.saved[RUNNER_STATE_KEY],
                approvals=resume.approvals,
                tool_results=resume.tool_results,
                on_step=on_step,
            )
        async for event in stream:
            queue.put_nowait(event)
        return stream.result

    async def _conclude(
        self, prepared: PreparedRun, recorder: TraceRecorder, result: RunResult
    ) -> Interaction:
        """Writes how the run ended: paused (state saved, pending calls listed) or finished."""
        run_id = prepared.run_id
        if result.outcome == "paused":
            await self.agents.set_pending(run_id, _pending_json(result))
            return await self.memory.pause_interaction(run_id, {RUNNER_STATE_KEY: result.state or {}})
        if prepared.record.pending:
            await self.agents.set_pending(run_id, [])
        return await recorder.finish(result)

    async def _interrupt(self, run_id: str) -> None:
        with contextlib.suppress(MemoryStoreError):
            await self.memory.interrupt_interaction(run_id, CANCELLED_ERROR)


def with_overrides(definition: AgentDefinition, overrides: RunOverrides) -> AgentDefinition:
    """The definition a run uses: budgets replaced and tools narrowed to `selected_tools`."""
    if overrides.is_empty():
        return definition
    data = definition.to_json()
    if overrides.selected_tools is not None:
        known = definition.tool_names()
        unknown = [name for name in overrides.selected_tools if name not in known]
        if unknown:
            raise InvalidRequestError(
                f"selected_tools names tools the agent does not have: {', '.join(unknown)}; its tools are: "
                f"{', '.join(known) or 'none'}.",
                param="selected_tools",
            )
        data["tools"] = [
            entry for entry in data.get("tools", []) if entry["name"] in overrides.selected_tools
        ]
    parameters = dict(data.get("parameters", {}))
    for key in ("max_steps", "max_tool_calls", "timeout_s"):
        value = getattr(overrides, key)
        if value is not None:
            parameters[key] = value
    data["parameters"] = parameters
    return AgentDefinition.from_request(data)


def _needing_approval(item: Tool) -> Tool:
    """A copy of a (possibly shared, built-in) tool that waits for a human's approval before it runs."""
    return Tool(
        item.spec,
        item.fn,
        timeout_s=item.timeout_s,
        requires_approval=True,
        client_side=item.client_side,
        function_schema=item.function_schema,
    )


def _pending_json(result: RunResult | None) -> list[dict[str, Any]]:
    if result is None or result.outcome != "paused":
        return []
    return [item.model_dump(mode="json") for item in result.pending]


def _title(input: str) -> str:
    line = " ".join(input.split())
    return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 3] + "..."


async def _shielded(work: Awaitable[None]) -> None:
    # Runs while the task is being cancelled: the database must still hear about it.
    with anyio.move_on_after(10, shield=True):
        await work


__all__ = [
    "RUNNER_STATE_KEY",
    "ActiveRun",
    "FinishedRun",
    "LLMFactory",
    "PreparedRun",
    "RunMetrics",
    "RunOverrides",
    "RunService",
    "with_overrides",
]
