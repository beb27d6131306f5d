"""The seed-compatible routes (BentoML's /exchange, ml-commons' register/execute/traces) over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fncall.agents.assistants import EXCHANGE_DEFAULT_QUERY, EXCHANGE_SYSTEM_PROMPT
from fncall.agents.spec import AgentSpecError
from fncall.errors import LLMError
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.app import create_app
from fncall.server.compat import translate_ml_commons_agent
from fncall.types import ToolCall

SEED_CALL = ToolCall(
    id="call_seed",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)
SEED_RESULT = '{"from_currency":"USD","to_currency":"CAD","converted_amount":131.95}'
SEED_ANSWER = "The converted amount of 42 US dollars to Canadian dollars is 131.95 CAD."

ML_AGENT = {
    "name": "Exchange agent",
    "type": "conversational",
    "description": "Converts currencies",
    "llm": {
        "model_id": "scripted:",
        "parameters": {"max_iteration": 10, "system_prompt": "You convert money."},
    },
    "memory": {"type": "conversation_index"},
    "parameters": {"_llm_interface": "openai/v1/chat/completions"},
    "tools": [{"type": "convert_currency", "description": "ignored: the built-in tool keeps its own"}],
}


def respond(request: ScriptedRequest) -> ScriptItem:
    last = request.messages[-1]
    if last.role == "tool":
        amount = json.loads(last.content)["converted_amount"]
        return f"The converted amount of 42 US dollars to Canadian dollars is {amount} CAD."
    if last.text == "break":
        raise LLMError("the scripted model is down")
    if last.text == "and before?":
        return f"Before, you asked: {request.messages[-3].text}"
    return SEED_CALL


@pytest.fixture
def llm() -> Scripted:
    return Scripted(respond)


@pytest.fixture
def client(serve_app: Any, tmp_path: Path, llm: Scripted) -> Iterator[httpx.Client]:
    app = create_app(
        "scripted:",
        llm=llm,
        llm_factory=lambda spec: llm,
        database_url=f"sqlite:///{tmp_path / 'fncall.db'}",
        api_keys=[],
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as running:
        yield running


# ---------------------------------------------------------------------------------------- /exchange


def test_exchange_answers_plain_text_like_the_seed(client: httpx.Client, llm: Scripted) -> None:
    response = client.post(
        "/exchange", json={"query": "I want to exchange 42 US dollars to Canadian dollars"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == SEED_ANSWER
    first = llm.requests[0]
    assert first.messages[0].content == EXCHANGE_SYSTEM_PROMPT
    assert [tool.name for tool in first.tools] == ["convert_currency"]
    assert llm.requests[1].messages[-1].content == SEED_RESULT


def test_exchange_uses_the_seed_default_query(client: httpx.Client, llm: Scripted) -> None:
    assert client.post("/exchange", json={}).text == SEED_ANSWER
    assert llm.requests[0].messages[-1].content == EXCHANGE_DEFAULT_QUERY


def test_exchange_records_each_query_as_a_conversation(client: httpx.Client) -> None:
    client.post("/exchange", json={"query": "42 USD in CAD"})
    conversations = client.get("/v1/memory", params={"agent_id": "exchange"}).json()["data"]
    assert [conversation["name"] for conversation in conversations] == ["42 USD in CAD"]
    turns = client.get(f"/v1/memory/{conversations[0]['memory_id']}/interactions").json()["data"]
    assert [(turn["status"], turn["response"]) for turn in turns] == [("completed", SEED_ANSWER)]


def test_exchange_errors(client: httpx.Client) -> None:
    empty = client.post("/exchange", json={"query": ""})
    assert empty.status_code == 400
    assert empty.json()["error"]["param"] == "query"
    not_json = client.post("/exchange", content=b"query=42", headers={"content-type": "text/plain"})
    assert not_json.status_code == 400
    failed = client.post("/exchange", json={"query": "break"})
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "run_failed"
    assert "the scripted model is down" in failed.json()["error"]["message"]


# ---------------------------------------------------------------------------------------- ml-commons


def test_register_and_execute_in_ml_commons_shapes(client: httpx.Client) -> None:
    registered = client.post("/_plugins/_ml/agents/_register", json=ML_AGENT)
    assert registered.status_code == 200
    assert list(registered.json()) == ["agent_id"]
    agent_id = registered.json()["agent_id"]
    agent = client.get(f"/v1/agents/{agent_id}").json()
    assert (agent["name"], agent["type"]) == ("Exchange agent", "function_calling")
    assert agent["spec"]["parameters"] == {"max_steps": 5}

    executed = client.post(
        f"/_plugins/_ml/agents/{agent_id}/_execute", json={"parameters": {"question": "42 USD to CAD?"}}
    )
    assert executed.status_code == 200
    output = executed.json()["inference_results"][0]["output"]
    assert [item["name"] for item in output] == ["memory_id", "parent_interaction_id", "response"]
    memory_id, interaction_id = output[0]["result"], output[1]["result"]
    assert output[2]["dataAsMap"] == {
        "response": SEED_ANSWER,
        "additional_info": {"convert_currency.output": [SEED_RESULT]},
    }
    turn = client.get(f"/v1/interactions/{interaction_id}").json()
    assert (turn["memory_id"], turn["input"]) == (memory_id, "42 USD to CAD?")


def test_execute_verbose_lists_every_step_then_the_answer(client: httpx.Client) -> None:
    body = {"parameters": {"question": "convert", "verbose": True}}
    output = client.post("/_plugins/_ml/agents/exchange/_execute", json=body).json()["inference_results"][0][
        "output"
    ]
    assert [item["name"] for item in output] == ["memory_id", "parent_interaction_id"] + ["response"] * 4
    llm_step = json.loads(output[2]["result"])
    assert llm_step["tool_calls"] == [
        {"id": "call_seed", "name": "convert_currency", "arguments": SEED_CALL.arguments}
    ]
    assert output[3]["result"] == SEED_RESULT
    assert json.loads(output[4]["result"])["content"] == SEED_ANSWER
    assert output[5] == {"name": "response", "result": SEED_ANSWER}


def test_execute_continues_a_memory(client: httpx.Client) -> None:
    first = client.post(
        "/_plugins/_ml/agents/exchange/_execute", json={"parameters": {"question": "convert"}}
    ).json()
    memory_id = first["inference_results"][0]["output"][0]["result"]
    second = client.post(
        "/_plugins/_ml/agents/exchange/_execute",
        json={"parameters": {"question": "and before?", "memory_id": memory_id}},
    ).json()
    output = second["inference_results"][0]["output"]
    assert output[0]["result"] == memory_id
    assert output[2]["dataAsMap"]["response"] == "Before, you asked: convert"
    messages = client.get(f"/_plugins/_ml/memory/{memory_id}/messages").json()["messages"]
    assert [message["input"] for message in messages] == ["convert", "and before?"]
    assert messages[0]["response"] == SEED_ANSWER


def test_traces_route_uses_ml_commons_field_names(client: httpx.Client) -> None:
    output = client.post(
        "/_plugins/_ml/agents/exchange/_execute", json={"parameters": {"question": "convert"}}
    ).json()
    memory_id = output["inference_results"][0]["output"][0]["result"]
    interaction_id = output["inference_results"][0]["output"][1]["result"]
    body = client.get(f"/_plugins/_ml/memory/message/{interaction_id}/traces").json()
    assert body["next_token"] is None
    traces = body["traces"]
    assert [(t["trace_number"], t["origin"]) for t in traces] == [
        (1, "llm"),
        (2, "convert_currency"),
        (3, "llm"),
    ]
    tool_trace = traces[1]
    assert tool_trace["memory_id"] == memory_id
    assert tool_trace["parent_message_id"] == interaction_id
    assert json.loads(tool_trace["input"]) == SEED_CALL.arguments
    assert tool_trace["response"] == SEED_RESULT
    assert set(tool_trace) >= {"message_id", "create_time", "additional_info"}


def test_ml_commons_errors(client: httpx.Client) -> None:
    missing_question = client.post("/_plugins/_ml/agents/exchange/_execute", json={"parameters": {}})
    assert missing_question.status_code == 400
    assert missing_question.json()["error"]["param"] == "parameters.question"
    unknown_agent = client.post("/_plugins/_ml/agents/nope/_execute", json={"parameters": {"question": "q"}})
    assert unknown_agent.status_code == 404
    bad_type = client.post("/_plugins/_ml/agents/_register", json={**ML_AGENT, "type": "plan_and_guess"})
    assert bad_type.status_code == 400
    assert bad_type.json()["error"]["param"] == "type"
    unknown_tool = client.post(
        "/_plugins/_ml/agents/_register", json={**ML_AGENT, "tools": [{"type": "SearchIndexTool"}]}
    )
    assert unknown_tool.status_code == 400
    assert unknown_tool.json()["error"]["param"] == "tools[0].name"
    asynchronous = client.post(
        "/_plugins/_ml/agents/exchange/_execute",
        params={"async": "true"},
        json={"parameters": {"question": "q"}},
    )
    assert asynchronous.status_code == 400
    assert asynchronous.json()["error"]["param"] == "async"
    assert client.get("/_plugins/_ml/memory/message/missing/traces").status_code == 404


# --------------------------------------------------------------------------------------- translation


def test_translation_of_ml_commons_agent_types() -> None:
    react = translate_ml_commons_agent({**ML_AGENT, "parameters": {}})
    assert react["type"] == "react"
    assert react["llm"] == {"spec": "scripted:"}
    assert react["system_prompt"] == "You convert money."
    assert react["memory"] == {"type": "conversation"}
    assert react["tools"] == [{"type": "builtin", "name": "convert_currency"}]

    remote_model = translate_ml_commons_agent(
        {"name": "a", "type": "conversational_v2", "llm": {"model_id": "tbPvX5gBc62yu84LsNzh"}},
        default_llm_spec="openai:http://10.0.0.5:8000/v1#qwen",
    )
    assert remote_model["type"] == "function_calling"
    assert remote_model["llm"] == {"spec": "openai:http://10.0.0.5:8000/v1#qwen"}
    assert remote_model["memory"] == {"type": "none"}

    flow = translate_ml_commons_agent(
        {"name": "f", "type": "flow", "tools": [{"type": "convert_currency", "parameters": {"amount": 1}}]}
    )
    assert "llm" not in flow
    assert flow["flow"] == {"steps": [{"tool": "convert_currency", "arguments": {"amount": 1}}]}


def test_translation_names_ml_commons_fields_in_errors() -> None:
    with pytest.raises(AgentSpecError) as caught:
        translate_ml_commons_agent(
            {**ML_AGENT, "llm": {"parameters": {"max_iteration": "many"}}, "tools": [3]}
        )
    assert [location for location, _ in caught.value.problems] == ["llm.parameters.max_iteration", "tools[0]"]
