"""The agent HTTP API: register agents, run them (whole, streamed or in the background), answer paused runs,
and read conversation memory.

    POST /v1/agents                      register (an agent spec as JSON) -> agent_id
    GET  /v1/agents, GET|PUT|DELETE /v1/agents/{agent_id}
    POST /v1/agents/{agent_id}/runs      {"input", "memory_id"?, "stream"?, "verbose"?, "background"?, ...}
    GET  /v1/runs/{run_id}, POST /v1/runs/{run_id}/cancel
    POST /v1/runs/{run_id}/approvals     {"approvals": {call_id: true | {"approved", "reason", "arguments"}}}
    POST /v1/runs/{run_id}/tool_results  {"tool_results": {call_id: "text" | {"content", "is_error"}}}
    GET  /v1/memory, GET|DELETE /v1/memory/{memory_id}, GET /v1/memory/{memory_id}/interactions
    GET  /v1/interactions/{interaction_id}, GET /v1/interactions/{interaction_id}/traces

A run's id is the id of its memory interaction. Streams are server-sent events, one typed event per agent
event (`event: tool_call`, `data: {...}`), opened by `run_started` and closed by `run_finished` and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from fncall.agents.resume import ApprovalDecision
from fncall.agents.spec import AgentSpecError
from fncall.errors import ConfigError
from fncall.memory import Conversation, Interaction, InteractionStateError, MemoryNotFoundError, Trace
from fncall.server.agent_store import AgentDefinition, ConflictError, NotFoundError, StoredAgent
from fncall.server.errors import error_body, read_json_body, reply_for_exception
from fncall.server.runs import ActiveRun, FinishedRun, PreparedRun, RunOverrides, RunService
from fncall.server.sse import SSE_DONE, sse_data, sse_response
from fncall.types import ToolResult, Usage

logger = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------- request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _JsonObject(RootModel[dict[str, Any]]):
    """Any JSON object: agent specs are validated by AgentDefinition, which names every problem."""


class RunRequest(_Body):
    """Body of `POST /v1/agents/{agent_id}/runs`."""

    input: str = Field(min_length=1, description="The user's message.")
    memory_id: str | None = Field(
        default=None, description="Continue this conversation (default: a new one)."
    )
    stream: bool = Field(default=False, description="Answer with server-sent events, one per agent event.")
    verbose: bool = Field(default=False, description="Include every step (LLM calls, tool calls) in the run.")
    background: bool = Field(default=False, description="Answer 202 at once; poll GET /v1/runs/{run_id}.")
    max_steps: int | None = Field(default=None, ge=1, description="Override the agent's LLM step budget.")
    max_tool_calls: int | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    selected_tools: list[str] | None = Field(
        default=None, description="Offer only these of the agent's tools."
    )

    @model_validator(mode="after")
    def _one_delivery(self) -> RunRequest:
        if self.stream and self.background:
            raise ValueError("a run is either streamed or started in the background, not both")
        return self

    def overrides(self) -> RunOverrides:
        return RunOverrides(
            max_steps=self.max_steps,
            max_tool_calls=self.max_tool_calls,
            timeout_s=self.timeout_s,
            selected_tools=self.selected_tools,
        )


class ApprovalBody(_Body):
    approved: bool
    reason: str | None = None
    arguments: dict[str, Any] | None = Field(
        default=None, description="Edited arguments to run the call with."
    )


class ClientResultBody(_Body):
    content: Any = Field(
        description="The tool's output: text, or any JSON value (sent to the model as JSON)."
    )
    is_error: bool = False


class ResumeRequest(_Body):
    """Body of `POST /v1/runs/{run_id}/approvals` and `.../tool_results`: an answer for every pending call."""

    approvals: dict[str, bool | ApprovalBody] = Field(default_factory=dict)
    tool_results: dict[str, str | ClientResultBody] = Field(default_factory=dict)
    stream: bool = False
    verbose: bool = False
    background: bool = False

    @model_validator(mode="after")
    def _one_delivery(self) -> ResumeRequest:
        if self.stream and self.background:
            raise ValueError("a run is either streamed or continued in the background, not both")
        return self

    def decisions(self) -> dict[str, bool | ApprovalDecision]:
        return {
            call_id: answer if isinstance(answer, bool) else ApprovalDecision(**answer.model_dump())
            for call_id, answer in self.approvals.items()
        }

    def results(self) -> dict[str, str | ToolResult]:
        submitted: dict[str, str | ToolResult] = {}
        for call_id, answer in self.tool_results.items():
            if isinstance(answer, str):
                submitted[call_id] = answer
                continue
            content = answer.content if isinstance(answer.content, str) else json.dumps(answer.content)
            # name is filled in from the pending call by the runner
            submitted[call_id] = ToolResult(
                call_id=call_id, name="client", content=content, is_error=answer.is_error
            )
        return submitted


# ------------------------------------------------------------------------------------- JSON shapes


def agent_json(stored: StoredAgent) -> dict[str, Any]:
    spec = stored.definition.spec
    return {
        "id": stored.agent_id,
        "agent_id": stored.agent_id,
        "object": "agent",
        "name": spec.name,
        "type": spec.type,
        "description": spec.description,
        "builtin": stored.builtin,
        "spec": stored.definition.to_json(),
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
    }


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def run_json(run: FinishedRun, *, verbose: bool = False) -> dict[str, Any]:
    """A run as the API returns it: status, answer, ids, usage; pending calls if paused; steps if verbose."""
    interaction = run.interaction
    body: dict[str, Any] = {
        "id": interaction.id,
        "object": "agent.run",
        "agent_id": run.record.agent_id if run.record is not None else None,
        "memory_id": interaction.memory_id,
        "interaction_id": interaction.id,
        "status": interaction.status,
        "outcome": interaction.outcome or (run.result.outcome if run.result is not None else None),
        "final_answer": interaction.response,
        "error": interaction.error,
        "usage": usage_json(interaction.usage),
        "pending": run.pending,
        "created_at": interaction.created_at.isoformat(),
        "updated_at": interaction.updated_at.isoformat(),
    }
    if verbose and run.result is not None:
        body["steps"] = [step.model_dump(mode="json") for step in run.result.steps]
    return body


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {"object": "memory", **conversation.model_dump(mode="json")}


def interaction_json(interaction: Interaction) -> dict[str, Any]:
    body = interaction.model_dump(mode="json")
    body["usage"] = usage_json(interaction.usage)
    return {"object": "interaction", **body}


def trace_json(trace: Trace) -> dict[str, Any]:
    return {"object": "trace", **trace.model_dump(mode="json")}


# ------------------------------------------------------------------------------------------ routes


def _service(request: Request) -> RunService:
    return request.app.state.run_service


def agent_router() -> APIRouter:
    """The routes of the agent API; they use the RunService the app keeps in `app.state.run_service`."""
    router = APIRouter()

    # ---------------------------------------------------------------------------------------- agents

    @router.post("/v1/agents", tags=["agents"], summary="Register an agent from its spec")
    async def register_agent(request: Request) -> dict[str, Any]:
        service = _service(request)
        definition = await _definition(request, service)
        return agent_json(await service.agents.create_agent(definition))

    @router.get("/v1/agents", tags=["agents"], summary="List the registered agents")
    async def list_agents(request: Request) -> dict[str, Any]:
        agents = await _service(request).agents.list_agents()
        return {"object": "list", "data": [agent_json(stored) for stored in agents]}

    @router.get("/v1/agents/{agent_id}", tags=["agents"], summary="Get a registered agent")
    async def get_agent(agent_id: str, request: Request) -> dict[str, Any]:
        return agent_json(await _service(request).agents.get_agent(agent_id))

    @router.put("/v1/agents/{agent_id}", tags=["agents"], summary="Replace a registered agent's spec")
    async def replace_agent(agent_id: str, request: Request) -> dict[str, Any]:
        service = _service(request)
        await service.agents.get_agent(agent_id)
        definition = await _definition(request, service)
        return agent_json(await service.agents.replace_agent(agent_id, definition))

    @router.delete("/v1/agents/{agent_id}", tags=["agents"], summary="Delete a registered agent")
    async def delete_agent(agent_id: str, request: Request) -> dict[str, Any]:
        await _service(request).agents.delete_agent(agent_id)
        return {"id": agent_id, "object": "agent.deleted", "deleted": True}

    # ------------------------------------------------------------------------------------------ runs

    @router.post(
        "/v1/agents/{agent_id}/runs",
        tags=["runs"],
        summary="Run an agent",
        openapi_extra={"requestBody": _body_schema(RunRequest)},
    )
    async def create_run(agent_id: str, request: Request) -> Response:
        service = _service(request)
        body = await read_json_body(request, RunRequest)
        prepared = await service.prepare(
            agent_id, body.input, memory_id=body.memory_id, overrides=body.overrides()
        )
        return await _deliver(
            service, prepared, stream=body.stream, background=body.background, verbose=body.verbose
        )

    @router.get("/v1/runs/{run_id}", tags=["runs"], summary="Get a run (poll a background run)")
    async def get_run(run_id: str, request: Request) -> dict[str, Any]:
        return run_json(await _service(request).get(run_id))

    @router.post("/v1/runs/{run_id}/cancel", tags=["runs"], summary="Cancel a running or paused run")
    async def cancel_run(run_id: str, request: Request) -> dict[str, Any]:
        return run_json(await _service(request).cancel(run_id))

    async def resume(run_id: str, request: Request) -> Response:
        service = _service(request)
        body = await read_json_body(request, ResumeRequest)
        prepared = await service.prepare_resume(run_id, body.decisions(), body.results())
        return await _deliver(
            service, prepared, stream=body.stream, background=body.background, verbose=body.verbose
        )

    router.add_api_route(
        "/v1/runs/{run_id}/approvals",
        resume,
        methods=["POST"],
        tags=["runs"],
        summary="Approve or reject the calls a paused run waits for, and continue it",
        openapi_extra={"requestBody": _body_schema(ResumeRequest)},
    )
    router.add_api_route(
        "/v1/runs/{run_id}/tool_results",
        resume,
        methods=["POST"],
        tags=["runs"],
        summary="Submit the results of client-side tool calls, and continue the run",
        openapi_extra={"requestBody": _body_schema(ResumeRequest)},
    )

    # ---------------------------------------------------------------------------------------- memory

    @router.get("/v1/memory", tags=["memory"], summary="List conversations, newest first")
    async def list_memory(
        request: Request,
        limit: int = Query(default=20, ge=1, le=1000),
        cursor: str | None = None,
        agent_id: str | None = None,
    ) -> dict[str, Any]:
        page = await _service(request).memory.list_conversations(
            limit=limit, cursor=cursor, agent_id=agent_id
        )
        return {
            "object": "list",
            "data": [conversation_json(c) for c in page.items],
            "next_cursor": page.next_cursor,
        }

    @router.get("/v1/memory/{memory_id}", tags=["memory"], summary="Get a conversation")
    async def get_memory(memory_id: str, request: Request) -> dict[str, Any]:
        return conversation_json(await _service(request).memory.get_conversation(memory_id))

    @router.delete("/v1/memory/{memory_id}", tags=["memory"], summary="Delete a conversation and its turns")
    async def delete_memory(memory_id: str, request: Request) -> dict[str, Any]:
        await _service(request).memory.delete_conversation(memory_id)
        return {"memory_id": memory_id, "object": "memory.deleted", "deleted": True}

    @router.get(
        "/v1/memory/{memory_id}/interactions", tags=["memory"], summary="A conversation's turns, oldest first"
    )
    async def list_interactions(
        memory_id: str,
        request: Request,
        limit: int = Query(default=100, ge=1, le=1000),
        cursor: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        page = await _service(request).memory.list_interactions(
            memory_id, limit=limit, cursor=cursor, status=status
        )
        return {
            "object": "list",
            "data": [interaction_json(i) for i in page.items],
            "next_cursor": page.next_cursor,
        }

    @router.get("/v1/interactions/{interaction_id}", tags=["memory"], summary="Get one turn")
    async def get_interaction(interaction_id: str, request: Request) -> dict[str, Any]:
        return interaction_json(await _service(request).memory.get_interaction(interaction_id))

    @router.get(
        "/v1/interactions/{interaction_id}/traces", tags=["memory"], summary="A turn's steps, in order"
    )
    async def list_traces(interaction_id: str, request: Request) -> dict[str, Any]:
        traces = await _service(request).memory.list_traces(interaction_id)
        return {"object": "list", "data": [trace_json(trace) for trace in traces]}

    return router


async def _definition(request: Request, service: RunService) -> AgentDefinition:
    """The request's agent spec, validated and built once so that a spec that cannot run is refused now."""
    body = await read_json_body(request, _JsonObject)
    definition = AgentDefinition.from_request(body.root)
    service.build(definition)
    return definition


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI request body for routes that read their body themselves (to answer errors our way)."""
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


# ---------------------------------------------------------------------------------------- delivery


async def _deliver(
    service: RunService, prepared: PreparedRun, *, stream: bool, background: bool, verbose: bool
) -> Response:
    """Answers with the finished run, a stream of its events, or (background) 202 and the running run."""
    if background:
        service.launch(prepared)
        started = FinishedRun(interaction=prepared.interaction, record=prepared.record)
        return JSONResponse(run_json(started), status_code=202)
    if stream:
        active = service.launch(prepared, listen=True)
        return sse_response(_run_events(service, prepared, active, verbose))
    return JSONResponse(run_json(await service.run_to_end(prepared), verbose=verbose))


async def _run_events(
    service: RunService, prepared: PreparedRun, active: ActiveRun, verbose: bool
) -> AsyncIterator[str]:
    """The SSE blocks of a run. A client that goes away cancels the run (it is marked interrupted)."""
    try:
        started = FinishedRun(interaction=prepared.interaction, record=prepared.record)
        yield sse_data({"type": "run_started", "run": run_json(started)}, event="run_started")
        async for event in active.events():
            yield sse_data(event.model_dump(mode="json"), event=event.type)
        await asyncio.gather(active.task, return_exceptions=True)
        if active.task.cancelled():
            finished = await service.get(active.run_id)
            message = finished.interaction.error or "The run was cancelled."
            yield sse_data({"type": "error", "kind": "cancelled", "message": message}, event="error")
        elif (failure := active.task.exception()) is not None:
            reply = reply_for_exception(failure)
            yield sse_data({"type": "error", "kind": "request", **reply.body}, event="error")
            finished = await service.get(active.run_id)
        else:
            finished = active.task.result()
        yield sse_data(
            {"type": "run_finished", "run": run_json(finished, verbose=verbose)}, event="run_finished"
        )
        yield SSE_DONE
    finally:
        if not active.task.done():
            active.task.cancel()
            with anyio.move_on_after(10, shield=True):
                await asyncio.gather(active.task, return_exceptions=True)


# ------------------------------------------------------------------------------------------ errors


def install_agent_error_handlers(app: FastAPI) -> None:
    """404 for unknown agents, runs and memory ids, 409 for state conflicts, 400 naming the field of an
    invalid spec; on top of `install_error_handlers`, which answers everything else OpenAI-shaped."""
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(MemoryNotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(InteractionStateError, _conflict)
    app.add_exception_handler(AgentSpecError, _invalid_spec)
    app.add_exception_handler(ConfigError, _invalid_config)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(str(exc), "invalid_request_error", None, "not_found"), status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(str(exc), "invalid_request_error", None, "conflict"), status_code=409)


async def _invalid_spec(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentSpecError)
    param = next((location for location, _ in exc.problems if location), None)
    body = error_body(str(exc), "invalid_request_error", param, "invalid_agent_spec")
    body["error"]["problems"] = [
        {"param": location, "message": message} for location, message in exc.problems
    ]
    return JSONResponse(body, status_code=400)


async def _invalid_config(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body(str(exc), "invalid_request_error", None, "invalid_config"), status_code=400
    )


__all__ = [
    "ApprovalBody",
    "ClientResultBody",
    "ResumeRequest",
    "RunRequest",
    "agent_json",
    "agent_router",
    "install_agent_error_handlers",
    "run_json",
]
