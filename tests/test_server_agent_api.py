"""The agent HTTP API over real uvicorn on 127.0.0.1, a real SQLite file, and a scripted LLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fncall.agents.assistants import EXCHANGE_SYSTEM_PROMPT
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.memory.recorder import CANCELLED_ERROR
from fncall.server.app import create_app
from fncall.server.commands import agent_run, memory_show
from fncall.types import ToolCall

USD_TO_CAD = ToolCall(
    id="call_usd_cad",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)
WHERE_AM_I = ToolCall(id="call_where", name="get_location", arguments={})

APPROVAL_AGENT = {
    "name": "careful-exchange",
    "system_prompt": "Convert currencies, with approval.",
    "llm": {"spec": "scripted:"},
    "tools": [{"type": "builtin", "name": "convert_currency", "requires_approval": True}],
}
CLIENT_TOOL_AGENT = {
    "name": "locator",
    "llm": {"spec": "scripted:"},
    "tools": [
        {
            "type": "client",
            "name": "get_location",
            "description": "Where the user is, as a city name.",
            "parameters": {"type": "object", "properties": {}},
        }
    ],
}


async def respond(request: ScriptedRequest) -> ScriptItem:
    """The scripted model: a call for questions that need one, an answer built from the last tool result."""
    last = request.messages[-1]
    if last.role == "tool":
        if last.is_error:
            return f"No answer: {last.content}"
        if last.name == "get_location":
            return f"You are in {last.content}."
        amount = json.loads(last.content)["converted_amount"]
        return f"42 US dollars is {amount} Canadian dollars."
    text = last.text
    if text.startswith("convert"):
        return USD_TO_CAD
    if text == "where am I":
        return WHERE_AM_I
    if text == "slow":
        await asyncio.sleep(120)
    if text == "what did I say first?":
        first = next(m for m in request.messages if m.role == "user")
        return f"You said: {first.text}"
    return "Hello there."


def make_app(db_path: Path, llm: Scripted, **settings: Any) -> Any:
    return create_app(
        "scripted:",
        llm=llm,
        llm_factory=lambda spec: llm,
        database_url=f"sqlite:///{db_path}",
        api_keys=[],
        **settings,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "fncall.db"


@pytest.fixture
def llm() -> Scripted:
    return Scripted(respond)


@pytest.fixture
def service(
    serve_app: Any, db_path: Path, llm: Scripted
) -> Callable[..., contextlib.AbstractContextManager[httpx.Client]]:
    """`with service() as client:` runs the app on the test database; call it again to restart it."""

    @contextlib.contextmanager
    def start(**settings: Any) -> Iterator[httpx.Client]:
        with (
            serve_app(make_app(db_path, llm, **settings)) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as client,
        ):
            yield client

    return start


@pytest.fixture
def client(service: Callable[..., contextlib.AbstractContextManager[httpx.Client]]) -> Iterator[httpx.Client]:
    with service() as running:
        yield running


def sse_events(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each SSE block; the closing `[DONE]` becomes (None, "[DONE]")."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return events


def wait_for_status(client: httpx.Client, run_id: str, status: str) -> dict[str, Any]:
    for _ in range(500):
        run = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] == status:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {status}: {run}")


# ------------------------------------------------------------------------------------------- agents


def test_builtin_agents_are_registered_with_stable_ids(client: httpx.Client) -> None:
    listed = client.get("/v1/agents").json()
    assert listed["object"] == "list"
    by_id = {agent["agent_id"]: agent for agent in listed["data"]}
    assert set(by_id) == {"exchange", "stock"}
    exchange = client.get("/v1/agents/exchange").json()
    assert exchange["builtin"] is True
    assert exchange["spec"]["system_prompt"] == EXCHANGE_SYSTEM_PROMPT
    assert exchange["spec"]["tools"] == [{"type": "builtin", "name": "convert_currency"}]
    assert exchange["spec"]["llm"] == {"spec": "scripted:"}
    assert [tool["name"] for tool in by_id["stock"]["spec"]["tools"]] == [
        "get_current_stock_price",
        "get_company_news",
    ]


def test_register_get_replace_delete(client: httpx.Client) -> None:
    created = client.post("/v1/agents", json=APPROVAL_AGENT)
    assert created.status_code == 200
    agent = created.json()
    agent_id = agent["agent_id"]
    assert agent["id"] == agent_id
    assert agent["name"] == "careful-exchange"
    assert agent["builtin"] is False
    assert agent["spec"]["tools"] == [
        {"type": "builtin", "name": "convert_currency", "requires_approval": True}
    ]
    assert client.get(f"/v1/agents/{agent_id}").json()["spec"] == agent["spec"]

    replaced = client.put(f"/v1/agents/{agent_id}", json={**APPROVAL_AGENT, "name": "renamed"})
    assert replaced.status_code == 200
    assert client.get(f"/v1/agents/{agent_id}").json()["name"] == "renamed"
    assert agent_id in [item["agent_id"] for item in client.get("/v1/agents").json()["data"]]

    deleted = client.delete(f"/v1/agents/{agent_id}")
    assert deleted.json() == {"id": agent_id, "object": "agent.deleted", "deleted": True}
    missing = client.get(f"/v1/agents/{agent_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_invalid_specs_are_refused_with_the_field_named(client: httpx.Client) -> None:
    unknown_tool = client.post(
        "/v1/agents",
        json={"name": "x", "llm": {"spec": "scripted:"}, "tools": [{"type": "builtin", "name": "nope"}]},
    )
    assert unknown_tool.status_code == 400
    error = unknown_tool.json()["error"]
    assert error["param"] == "tools[0].name"
    assert error["code"] == "invalid_agent_spec"
    assert "unknown builtin tool 'nope'" in error["message"]

    # a client tool before the faulty entry: the index is still the one the client sent
    shifted = client.post(
        "/v1/agents",
        json={
            **CLIENT_TOOL_AGENT,
            "tools": [*CLIENT_TOOL_AGENT["tools"], {"type": "builtin", "name": "nope"}],
        },
    )
    assert shifted.json()["error"]["param"] == "tools[1].name"

    no_llm = client.post("/v1/agents", json={"name": "x"}).json()["error"]
    assert no_llm["param"] == "llm"
    assert [problem["param"] for problem in no_llm["problems"]] == ["llm"]

    bad_flag = client.post(
        "/v1/agents",
        json={
            **APPROVAL_AGENT,
            "tools": [{"type": "builtin", "name": "convert_currency", "requires_approval": 1}],
        },
    )
    assert bad_flag.json()["error"]["param"] == "tools[0].requires_approval"

    not_json = client.post("/v1/agents", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]


def test_builtin_agents_cannot_be_replaced_or_deleted(client: httpx.Client) -> None:
    assert client.put("/v1/agents/exchange", json=APPROVAL_AGENT).status_code == 409
    refused = client.delete("/v1/agents/stock")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"


# --------------------------------------------------------------------------------------------- runs


def test_run_answers_and_records_the_interaction_and_its_traces(client: httpx.Client) -> None:
    response = client.post(
        "/v1/agents/exchange/runs", json={"input": "convert 42 USD to CAD", "verbose": True}
    )
    assert response.status_code == 200
    run = response.json()
    assert run["object"] == "agent.run"
    assert run["status"] == "completed"
    assert run["outcome"] == "answered"
    assert run["final_answer"] == "42 US dollars is 131.95 Canadian dollars."
    assert run["agent_id"] == "exchange"
    assert run["id"] == run["interaction_id"]
    assert run["pending"] == []
    assert (
        run["usage"]["total_tokens"] == run["usage"]["prompt_tokens"] + run["usage"]["completion_tokens"] > 0
    )
    assert [(step["kind"], step["index"]) for step in run["steps"]] == [("llm", 1), ("tool", 1), ("llm", 2)]
    assert run["steps"][1]["result"]["content"] == (
        '{"from_currency":"USD","to_currency":"CAD","converted_amount":131.95}'
    )

    traces = client.get(f"/v1/interactions/{run['id']}/traces").json()["data"]
    assert [(trace["trace_number"], trace["origin"]) for trace in traces] == [
        (1, "llm"),
        (2, "convert_currency"),
        (3, "llm"),
    ]
    assert json.loads(traces[1]["input"]) == USD_TO_CAD.arguments
    interactions = client.get(f"/v1/memory/{run['memory_id']}/interactions").json()["data"]
    assert [(item["id"], item["status"], item["response"]) for item in interactions] == [
        (run["id"], "completed", run["final_answer"])
    ]
    polled = client.get(f"/v1/runs/{run['id']}").json()
    assert polled["status"] == "completed"
    assert "steps" not in polled


def test_memory_continues_a_conversation(client: httpx.Client, llm: Scripted) -> None:
    first = client.post("/v1/agents/exchange/runs", json={"input": "hello"}).json()
    second = client.post(
        "/v1/agents/exchange/runs", json={"input": "what did I say first?", "memory_id": first["memory_id"]}
    ).json()
    assert second["memory_id"] == first["memory_id"]
    assert second["final_answer"] == "You said: hello"
    sent = llm.requests[-1].messages
    assert [(message.role, message.content) for message in sent[1:]] == [
        ("user", "hello"),
        ("assistant", "Hello there."),
        ("user", "what did I say first?"),
    ]
    turns = client.get(f"/v1/memory/{first['memory_id']}/interactions").json()["data"]
    assert [turn["input"] for turn in turns] == ["hello", "what did I say first?"]


def test_streamed_run_sends_one_typed_event_per_agent_event(client: httpx.Client) -> None:
    with client.stream(
        "POST", "/v1/agents/exchange/runs", json={"input": "convert it", "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names == [
        "run_started",
        "step_started",
        "llm_response",
        "tool_call",
        "tool_result",
        "step_started",
        "agent_text_delta",
        "llm_response",
        "final_answer",
        "run_finished",
        None,
    ]
    assert all(data["type"] == name for name, data in events[:-1])
    assert events[-1][1] == "[DONE]"
    started, finished = events[0][1]["run"], events[-2][1]["run"]
    assert started["status"] == "running"
    assert finished["id"] == started["id"]
    assert finished["status"] == "completed"
    assert finished["final_answer"] == "42 US dollars is 131.95 Canadian dollars."
    assert events[3][1]["call"]["arguments"] == USD_TO_CAD.arguments


def test_background_run_is_polled_to_completion(client: httpx.Client) -> None:
    accepted = client.post("/v1/agents/exchange/runs", json={"input": "convert", "background": True})
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "running"
    done = wait_for_status(client, accepted.json()["id"], "completed")
    assert done["final_answer"] == "42 US dollars is 131.95 Canadian dollars."


def test_cancelled_background_run_is_marked_interrupted(client: httpx.Client) -> None:
    run = client.post("/v1/agents/exchange/runs", json={"input": "slow", "background": True}).json()
    assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "running"
    assert client.get("/health").json()["runs_in_progress"] == 1
    cancelled = client.post(f"/v1/runs/{run['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "interrupted"
    assert cancelled.json()["error"] == CANCELLED_ERROR
    again = client.post(f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert client.get("/health").json()["runs_in_progress"] == 0


def test_a_client_that_leaves_a_stream_cancels_its_run(client: httpx.Client) -> None:
    with client.stream(
        "POST", "/v1/agents/exchange/runs", json={"input": "slow", "stream": True}
    ) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: run_started"
        run = json.loads(next(lines).removeprefix("data: "))["run"]
    interrupted = wait_for_status(client, run["id"], "interrupted")
    assert interrupted["error"] == CANCELLED_ERROR


def test_request_bodies_over_the_limit_are_refused(service: Any) -> None:
    with service(max_request_bytes=2000) as client:
        too_big = client.post("/v1/agents/exchange/runs", json={"input": "x" * 5000})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "request_too_large"
        assert client.post("/v1/agents/exchange/runs", json={"input": "hello"}).status_code == 200


def test_per_run_overrides(client: httpx.Client, llm: Scripted) -> None:
    capped = client.post("/v1/agents/exchange/runs", json={"input": "convert", "max_steps": 1}).json()
    assert capped["outcome"] == "max_steps"
    assert capped["status"] == "completed"
    assert capped["final_answer"].startswith("Agent reached maximum iterations (1)")

    no_tools = client.post(
        "/v1/agents/stock/runs", json={"input": "hello", "selected_tools": ["get_company_news"]}
    )
    assert no_tools.json()["final_answer"] == "Hello there."
    assert [spec.name for spec in llm.requests[-1].tools] == ["get_company_news"]

    unknown = client.post("/v1/agents/stock/runs", json={"input": "hello", "selected_tools": ["nope"]})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "selected_tools"


def test_invalid_run_requests(client: httpx.Client) -> None:
    missing_input = client.post("/v1/agents/exchange/runs", json={})
    assert missing_input.status_code == 400
    assert missing_input.json()["error"]["param"] == "input"
    unknown_field = client.post("/v1/agents/exchange/runs", json={"input": "x", "temperature": 3})
    assert unknown_field.status_code == 400
    assert unknown_field.json()["error"]["param"] == "temperature"
    both = client.post("/v1/agents/exchange/runs", json={"input": "x", "stream": True, "background": True})
    assert both.status_code == 400
    assert "not both" in both.json()["error"]["message"]
    no_agent = client.post("/v1/agents/nope/runs", json={"input": "x"})
    assert no_agent.status_code == 404
    assert "nope" in no_agent.json()["error"]["message"]
    no_memory = client.post("/v1/agents/exchange/runs", json={"input": "x", "memory_id": "missing"})
    assert no_memory.status_code == 404
    assert client.get("/v1/runs/missing").status_code == 404
    assert client.post("/v1/runs/missing/approvals", json={"approvals": {}}).status_code == 404


# ------------------------------------------------------------------------------ approvals, client tools


def test_approval_survives_a_restart(service: Any, llm: Scripted) -> None:
    with service() as client:
        agent_id = client.post("/v1/agents", json=APPROVAL_AGENT).json()["agent_id"]
        paused = client.post(f"/v1/agents/{agent_id}/runs", json={"input": "convert 42"}).json()
        assert paused["status"] == "paused"
        assert paused["outcome"] == "paused"
        assert paused["final_answer"] is None
        assert paused["pending"] == [{"call": USD_TO_CAD.model_dump(mode="json"), "reason": "approval"}]
    with service() as client:  # a new process would see exactly this: the state is in the database
        run_id = paused["id"]
        assert client.get(f"/v1/runs/{run_id}").json()["pending"] == paused["pending"]
        missing = client.post(f"/v1/runs/{run_id}/approvals", json={"approvals": {}})
        assert missing.status_code == 400
        assert missing.json()["error"]["param"] == "approvals"
        unknown = client.post(f"/v1/runs/{run_id}/approvals", json={"approvals": {"call_other": True}})
        assert unknown.status_code == 400
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "paused"

        resumed = client.post(f"/v1/runs/{run_id}/approvals", json={"approvals": {"call_usd_cad": True}})
        assert resumed.status_code == 200
        run = resumed.json()
        assert run["status"] == "completed"
        assert run["final_answer"] == "42 US dollars is 131.95 Canadian dollars."
        assert run["pending"] == []
        origins = [
            trace["origin"] for trace in client.get(f"/v1/interactions/{run_id}/traces").json()["data"]
        ]
        assert origins == ["llm", "convert_currency", "llm"]

        not_paused = client.post(f"/v1/runs/{run_id}/approvals", json={"approvals": {"call_usd_cad": True}})
        assert not_paused.status_code == 409


def test_rejected_call_is_reported_to_the_model(client: httpx.Client) -> None:
    agent_id = client.post("/v1/agents", json=APPROVAL_AGENT).json()["agent_id"]
    paused = client.post(f"/v1/agents/{agent_id}/runs", json={"input": "convert 42"}).json()
    decision = {"call_usd_cad": {"approved": False, "reason": "too expensive"}}
    run = client.post(f"/v1/runs/{paused['id']}/approvals", json={"approvals": decision}).json()
    assert run["final_answer"] == "No answer: The user rejected this call: too expensive"


def test_client_side_tool_result_across_a_restart_streamed(service: Any) -> None:
    with service() as client:
        agent_id = client.post("/v1/agents", json=CLIENT_TOOL_AGENT).json()["agent_id"]
        with client.stream(
            "POST", f"/v1/agents/{agent_id}/runs", json={"input": "where am I", "stream": True}
        ) as response:
            events = sse_events(response)
        assert [name for name, _ in events][-3:] == ["paused", "run_finished", None]
        paused_event = events[-3][1]
        assert paused_event["pending"] == [
            {"call": WHERE_AM_I.model_dump(mode="json"), "reason": "client_side"}
        ]
        run_id = events[-2][1]["run"]["id"]
        assert events[-2][1]["run"]["status"] == "paused"
    with service() as client:
        wrong_place = client.post(f"/v1/runs/{run_id}/approvals", json={"approvals": {"call_where": True}})
        assert wrong_place.status_code == 400
        assert wrong_place.json()["error"]["param"] == "approvals"
        run = client.post(
            f"/v1/runs/{run_id}/tool_results", json={"tool_results": {"call_where": "Paris"}}
        ).json()
        assert run["status"] == "completed"
        assert run["final_answer"] == "You are in Paris."
        traces = client.get(f"/v1/interactions/{run_id}/traces").json()["data"]
        assert [(trace["origin"], trace["output"]) for trace in traces][1] == ("get_location", "Paris")


def test_client_side_error_result_and_cancel_of_a_paused_run(client: httpx.Client) -> None:
    agent_id = client.post("/v1/agents", json=CLIENT_TOOL_AGENT).json()["agent_id"]
    first = client.post(f"/v1/agents/{agent_id}/runs", json={"input": "where am I"}).json()
    failed = {"call_where": {"content": {"reason": "no GPS"}, "is_error": True}}
    run = client.post(f"/v1/runs/{first['id']}/tool_results", json={"tool_results": failed}).json()
    assert run["final_answer"] == 'No answer: {"reason": "no GPS"}'

    second = client.post(f"/v1/agents/{agent_id}/runs", json={"input": "where am I"}).json()
    cancelled = client.post(f"/v1/runs/{second['id']}/cancel").json()
    assert cancelled["status"] == "interrupted"
    assert cancelled["pending"] == []
    assert client.post(f"/v1/runs/{second['id']}/tool_results", json={}).status_code == 409


# ------------------------------------------------------------------------------------------- memory


def test_memory_routes(client: httpx.Client) -> None:
    run = client.post("/v1/agents/exchange/runs", json={"input": "hello"}).json()
    memory_id = run["memory_id"]
    listed = client.get("/v1/memory", params={"agent_id": "exchange"}).json()
    assert [item["memory_id"] for item in listed["data"]] == [memory_id]
    assert listed["next_cursor"] is None
    conversation = client.get(f"/v1/memory/{memory_id}").json()
    assert (conversation["object"], conversation["name"], conversation["agent_id"]) == (
        "memory",
        "hello",
        "exchange",
    )
    interaction = client.get(f"/v1/interactions/{run['id']}").json()
    assert (interaction["status"], interaction["response"]) == ("completed", "Hello there.")
    deleted = client.delete(f"/v1/memory/{memory_id}")
    assert deleted.json() == {"memory_id": memory_id, "object": "memory.deleted", "deleted": True}
    assert client.get(f"/v1/memory/{memory_id}").status_code == 404
    assert client.get(f"/v1/interactions/{run['id']}/traces").status_code == 404


def test_flow_agent_runs_and_records_its_steps(client: httpx.Client) -> None:
    flow = {
        "name": "fixed-rate",
        "type": "flow",
        "tools": [{"type": "builtin", "name": "convert_currency"}],
        "flow": {
            "steps": [
                {
                    "tool": "convert_currency",
                    "arguments": {"amount": 2, "from_currency": "USD", "to_currency": "CAD"},
                }
            ]
        },
    }
    agent_id = client.post("/v1/agents", json=flow).json()["agent_id"]
    run = client.post(f"/v1/agents/{agent_id}/runs", json={"input": "go"}).json()
    assert (run["status"], run["outcome"]) == ("completed", "answered")
    traces = client.get(f"/v1/interactions/{run['id']}/traces").json()["data"]
    assert [(trace["origin"], trace["is_error"]) for trace in traces] == [("convert_currency", False)]


def test_metrics_count_runs_steps_and_tool_calls(client: httpx.Client) -> None:
    client.post("/v1/agents/exchange/runs", json={"input": "convert"})
    client.get("/v1/agents/nope")
    text = client.get("/metrics").text
    assert 'fncall_agent_runs_total{agent="exchange-assistant",outcome="answered"} 1.0' in text
    assert 'fncall_agent_steps_total{kind="llm"} 2.0' in text
    assert 'fncall_agent_tool_calls_total{status="ok",tool="convert_currency"} 1.0' in text
    assert 'fncall_agent_errors_total{kind="http_404"} 1.0' in text
    assert "fncall_agent_run_duration_seconds_bucket" in text


def test_openapi_documents_the_agent_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/agents", "/v1/agents/{agent_id}/runs", "/v1/runs/{run_id}/approvals", "/exchange"):
        assert path in paths
    body = paths["/v1/agents/{agent_id}/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "input" in body["properties"]


def test_embedded_llm_api_is_served_on_the_same_app(service: Any) -> None:
    with service(serve_llm_api=True) as client:
        sdk = openai.OpenAI(base_url=f"{str(client.base_url).rstrip('/')}/v1", api_key="unused")
        reply = sdk.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello there."
        text = client.get("/metrics").text
        assert "fncall_llm_requests_total" in text
        assert "fncall_agent_http_requests_total" in text


# ----------------------------------------------------------------------------------------- commands


async def test_agent_run_command_and_memory_show(
    tmp_path: Path, llm: Scripted, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "exchange.yaml"
    spec_file.write_text(
        "name: exchange\nllm: {spec: 'scripted:'}\ntools:\n  - {type: builtin, name: convert_currency}\n"
    )
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code = await agent_run(spec_file, "convert 42", database_url=url, llm_factory=lambda spec: llm)
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "42 US dollars is 131.95 Canadian dollars."
    memory_id = captured.err.split("memory_id: ")[1].split()[0]

    assert await memory_show(memory_id, database_url=url) == 0
    shown = capsys.readouterr().out
    assert "user: convert 42" in shown
    assert "assistant: 42 US dollars is 131.95 Canadian dollars." in shown
    assert "2. convert_currency" in shown

    assert await memory_show("missing", database_url=url) == 1
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text('{"name": "x"}')
    assert await agent_run(bad_spec, "q", database_url=url, llm_factory=lambda spec: llm) == 1
    assert "llm" in capsys.readouterr().err
