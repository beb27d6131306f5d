"""The seed systems' routes over the same run machinery as the agent API.

    POST /exchange {"query": ...}                         BentoML's Exchange Assistant: the answer as text
    POST /_plugins/_ml/agents/_register                   ml-commons: register an agent -> {"agent_id"}
    POST /_plugins/_ml/agents/{agent_id}/_execute         {"parameters": {"question", "memory_id", "verbose"}}
    GET  /_plugins/_ml/memory/message/{message_id}/traces a turn's traces, ml-commons field names
    GET  /_plugins/_ml/memory/{memory_id}/messages        a conversation's turns, ml-commons field names

ml-commons agents are registered as `{"name", "type", "description", "llm": {"model_id", "parameters"},
"memory", "parameters", "tools": [{"type", "name", "description", "parameters"}]}`;
`translate_ml_commons_agent` turns that into our spec. Its `model_id` is an LLM spec here (`local:`,
`openai:http://...#model`); a model id that is not one (no scheme) means the server's default LLM.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fncall.agents.assistants import EXCHANGE_DEFAULT_QUERY
from fncall.agents.spec import AgentSpecError
from fncall.errors import InvalidRequestError
from fncall.memory import LLM_ORIGIN, Interaction, Trace
from fncall.server.agent_store import AgentDefinition
from fncall.server.errors import error_body, read_json_body
from fncall.server.runs import RunOverrides, RunService

EXCHANGE_AGENT_ID = "exchange"
_ML_AGENT_TYPES = {
    "conversational": None,  # ReAct, or function calling when parameters._llm_interface is set
    "conversational_v2": "function_calling",
    "function_calling": "function_calling",
    "react": "react",
    "flow": "flow",
    "conversational_flow": "flow",
}
_OUR_TOOL_TYPES = {"builtin", "plugin", "http", "agent", "client"}


class ExchangeRequest(BaseModel):
    """The BentoML seed's request: one query (its default when left out)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(default=EXCHANGE_DEFAULT_QUERY, min_length=1)


class _JsonObject(BaseModel):
    model_config = ConfigDict(extra="allow")


class ExecuteParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    question: str = Field(min_length=1)
    memory_id: str | None = None
    verbose: bool = False
    selected_tools: list[str] | str | None = None
    max_iteration: int | str | None = None


class ExecuteRequest(BaseModel):
    """ml-commons' execute body: everything rides in `parameters`."""

    model_config = ConfigDict(extra="forbid")

    parameters: ExecuteParameters


def _service(request: Request) -> RunService:
    return request.app.state.run_service


def compat_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/exchange",
        tags=["seed-compatible"],
        summary="The Exchange Assistant (BentoML seed): a currency question in, the answer as plain text",
        response_class=PlainTextResponse,
    )
    async def exchange(request: Request) -> Response:
        service = _service(request)
        body = await read_json_body(request, ExchangeRequest)
        prepared = await service.prepare(EXCHANGE_AGENT_ID, body.query)
        finished = await service.run_to_end(prepared)
        interaction = finished.interaction
        if interaction.status != "completed":
            message = interaction.error or "The Exchange Assistant did not finish its answer."
            return JSONResponse(error_body(message, "server_error", None, "run_failed"), status_code=502)
        return PlainTextResponse(interaction.response or "")

    @router.post("/_plugins/_ml/agents/_register", tags=["seed-compatible"], summary="ml-commons: register")
    async def register(request: Request) -> dict[str, str]:
        service = _service(request)
        body = await read_json_body(request, _JsonObject)
        spec = translate_ml_commons_agent(body.model_dump(), default_llm_spec=service.default_llm_spec)
        definition = AgentDefinition.from_request(spec)
        service.build(definition)
        stored = await service.agents.create_agent(definition)
        return {"agent_id": stored.agent_id}

    @router.post(
        "/_plugins/_ml/agents/{agent_id}/_execute", tags=["seed-compatible"], summary="ml-commons: execute"
    )
    async def execute(agent_id: str, request: Request) -> Response:
        service = _service(request)
        if request.query_params.get("async", "").lower() == "true":
            raise InvalidRequestError(
                "async=true is not supported here; use POST /v1/agents/{id}/runs with "
                "background=true and poll GET /v1/runs/{run_id}.",
                param="async",
            )
        body = await read_json_body(request, ExecuteRequest)
        parameters = body.parameters
        prepared = await service.prepare(
            agent_id,
            parameters.question,
            memory_id=parameters.memory_id,
            overrides=RunOverrides(
                max_steps=_max_steps(parameters.max_iteration),
                selected_tools=_selected_tools(parameters.selected_tools),
            ),
        )
        finished = await service.run_to_end(prepared)
        traces = await service.memory.list_traces(finished.interaction.id)
        return JSONResponse(execute_response(finished.interaction, traces, verbose=parameters.verbose))

    @router.get(
        "/_plugins/_ml/memory/message/{message_id}/traces",
        tags=["seed-compatible"],
        summary="ml-commons: the traces of one message (interaction)",
    )
    async def traces(message_id: str, request: Request) -> dict[str, Any]:
        memory = _service(request).memory
        interaction = await memory.get_interaction(message_id)
        rows = await memory.list_traces(message_id)
        return {"traces": [ml_trace(interaction, trace) for trace in rows], "next_token": None}

    @router.get(
        "/_plugins/_ml/memory/{memory_id}/messages",
        tags=["seed-compatible"],
        summary="ml-commons: the messages (interactions) of a memory",
    )
    async def messages(memory_id: str, request: Request) -> dict[str, Any]:
        page = await _service(request).memory.list_interactions(memory_id, limit=1000)
        return {"messages": [ml_message(interaction) for interaction in page.items], "next_token": None}

    return router


# -------------------------------------------------------------------------------------- translation


def translate_ml_commons_agent(
    body: Mapping[str, Any], *, default_llm_spec: str = "local:"
) -> dict[str, Any]:
    """Our spec (as JSON) for an ml-commons register body; AgentSpecError names ml-commons' own fields.
    A `model_id` that is not an LLM spec (no scheme) means `default_llm_spec`."""
    problems: list[tuple[str, str]] = []
    ml_type = body.get("type", "conversational")
    llm = body.get("llm") if isinstance(body.get("llm"), Mapping) else {}
    llm_parameters = llm.get("parameters") if isinstance(llm.get("parameters"), Mapping) else {}
    agent_parameters = body.get("parameters") if isinstance(body.get("parameters"), Mapping) else {}
    if ml_type not in _ML_AGENT_TYPES:
        problems.append(("type", f"unknown agent type {ml_type!r}; known: {', '.join(_ML_AGENT_TYPES)}"))
        our_type = "function_calling"
    else:
        our_type = _ML_AGENT_TYPES[ml_type] or (
            "function_calling" if agent_parameters.get("_llm_interface") else "react"
        )
    spec: dict[str, Any] = {"name": body.get("name") or "agent", "type": our_type}
    if body.get("description"):
        spec["description"] = body["description"]
    system_prompt = llm_parameters.get("system_prompt") or agent_parameters.get("system_prompt")
    if system_prompt:
        spec["system_prompt"] = system_prompt
    model_id = llm.get("model_id")
    if our_type != "flow" or model_id:
        spec["llm"] = {
            "spec": model_id if isinstance(model_id, str) and ":" in model_id else default_llm_spec
        }
    spec["memory"] = {"type": "conversation" if body.get("memory") else "none"}
    max_iteration = llm_parameters.get("max_iteration") or agent_parameters.get("max_iteration")
    if max_iteration is not None:
        try:
            spec["parameters"] = {"max_steps": _max_steps(max_iteration)}
        except InvalidRequestError as error:
            problems.append(("llm.parameters.max_iteration", error.message))
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        problems.append(("tools", "must be a list of tools"))
        tools = []
    spec["tools"] = [_tool(entry, index, problems) for index, entry in enumerate(tools)]
    if our_type == "flow":
        spec["flow"] = {
            "steps": [_flow_step(ours, theirs) for ours, theirs in zip(spec["tools"], tools, strict=True)]
        }
    if problems:
        raise AgentSpecError(problems)
    return spec


def _tool(entry: Any, index: int, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """ml-commons names a tool by its factory `type`; here a type is one of our tool kinds (`builtin`,
    `http`, ...) with its fields, or the name of a built-in tool (`{"type": "convert_currency"}`)."""
    if not isinstance(entry, Mapping):
        problems.append((f"tools[{index}]", "must be an object"))
        return {}
    kind = entry.get("type")
    if kind in _OUR_TOOL_TYPES:
        return {
            key: value for key, value in entry.items() if key not in ("include_output_in_agent_response",)
        }
    if not isinstance(kind, str):
        problems.append(
            (f"tools[{index}].type", "name the tool: a built-in tool's name or one of builtin, http")
        )
        return {}
    translated: dict[str, Any] = {"type": "builtin", "name": kind}
    if entry.get("name") not in (None, kind):
        problems.append(
            (
                f"tools[{index}].name",
                f"a built-in tool keeps its own name here: leave name out or write {kind!r}",
            )
        )
    return translated


def _flow_step(tool: Mapping[str, Any], entry: Any) -> dict[str, Any]:
    """A flow runs its tools in the order listed, each with the `parameters` its ml-commons entry gives
    (entries written in our own tool kinds use `parameters` for a schema, so they get none)."""
    ml_style = isinstance(entry, Mapping) and entry.get("type") not in _OUR_TOOL_TYPES
    arguments = entry.get("parameters") if ml_style else None
    return {
        "tool": tool.get("name", ""),
        "arguments": dict(arguments) if isinstance(arguments, Mapping) else {},
    }


def _max_steps(max_iteration: int | str | None) -> int | None:
    """ml-commons counts an LLM turn and a tool turn as two iterations (10 = 5 rounds); we count LLM steps."""
    if max_iteration is None:
        return None
    try:
        value = int(max_iteration)
    except (TypeError, ValueError):
        raise InvalidRequestError(
            f"max_iteration must be a whole number, not {max_iteration!r}.", param="parameters.max_iteration"
        ) from None
    if value < 1:
        raise InvalidRequestError("max_iteration must be at least 1.", param="parameters.max_iteration")
    return max(1, math.ceil(value / 2))


def _selected_tools(value: list[str] | str | None) -> list[str] | None:
    """ml-commons passes selected_tools as a JSON list, often inside a string."""
    if value is None or isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = [name.strip() for name in value.split(",") if name.strip()]
    if not isinstance(parsed, list) or not all(isinstance(name, str) for name in parsed):
        raise InvalidRequestError(
            'selected_tools must be a list of tool names, e.g. ["convert_currency"].',
            param="parameters.selected_tools",
        )
    return parsed


# ----------------------------------------------------------------------------------------- responses


def execute_response(interaction: Interaction, traces: list[Trace], *, verbose: bool) -> dict[str, Any]:
    """ml-commons' execute response: the memory and interaction ids, then the answer; with `verbose`, one
    `response` per step (the raw LLM output or the tool output) before it."""
    output: list[dict[str, Any]] = [
        {"name": "memory_id", "result": interaction.memory_id},
        {"name": "parent_interaction_id", "result": interaction.id},
    ]
    answer = interaction.response if interaction.status == "completed" else None
    if answer is None:
        answer = interaction.error or f"The run is {interaction.status}."
    if verbose:
        output.extend({"name": "response", "result": trace.output} for trace in traces)
        output.append({"name": "response", "result": answer})
    else:
        additional: dict[str, list[str]] = {}
        for trace in traces:
            if trace.origin != LLM_ORIGIN:
                additional.setdefault(f"{trace.origin}.output", []).append(trace.output)
        output.append({"name": "response", "dataAsMap": {"response": answer, "additional_info": additional}})
    return {"inference_results": [{"output": output}]}


def ml_trace(interaction: Interaction, trace: Trace) -> dict[str, Any]:
    return {
        "memory_id": interaction.memory_id,
        "message_id": trace.id,
        "create_time": trace.started_at.isoformat(),
        "input": trace.input,
        "prompt_template": None,
        "response": trace.output,
        "origin": trace.origin,
        "additional_info": {"is_error": trace.is_error, "step": trace.step, "duration_s": trace.duration_s},
        "parent_message_id": interaction.id,
        "trace_number": trace.trace_number,
    }


def ml_message(interaction: Interaction) -> dict[str, Any]:
    return {
        "memory_id": interaction.memory_id,
        "message_id": interaction.id,
        "create_time": interaction.created_at.isoformat(),
        "updated_time": interaction.updated_at.isoformat(),
        "input": interaction.input,
        "prompt_template": None,
        "response": interaction.response or "",
        "origin": None,
        "additional_info": {
            "status": interaction.status,
            "outcome": interaction.outcome,
            "error": interaction.error,
        },
        "parent_message_id": interaction.parent_interaction_id,
        "trace_number": None,
    }


__all__ = [
    "EXCHANGE_AGENT_ID",
    "ExchangeRequest",
    "ExecuteRequest",
    "compat_router",
    "execute_response",
    "translate_ml_commons_agent",
]
