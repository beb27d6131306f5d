"""Declarative agent specs: loading JSON and YAML, every validation error named by its field, each kind of
tool (builtin, plugin through a real entry point, HTTP against a real server on 127.0.0.1, agent as a tool),
memory, and run_spec / stream_spec for each agent type."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from fncall.agents.flow import FlowAgent
from fncall.agents.http_tool import HostNotAllowedError, check_url_allowed, host_is_allowed, http_tool
from fncall.agents.react import ReactRunner
from fncall.agents.spec import (
    AgentSpec,
    AgentSpecError,
    MemoryConfig,
    build_agent,
    load_agent_spec,
    run_spec,
    stream_spec,
    trim_history,
)
from fncall.llms.scripted import Scripted
from fncall.types import FinalAnswerEvent, Message, ToolCall

EXCHANGE_JSON = {
    "name": "exchange",
    "type": "function_calling",
    "description": "Converts currencies.",
    "llm": {"spec": "local:", "parameters": {"temperature": 0, "max_tokens": 64}},
    "system_prompt": "You convert currencies.",
    "memory": {"type": "conversation", "message_history_limit": 2},
    "tools": [{"type": "builtin", "name": "convert_currency"}],
    "parameters": {"max_steps": 4, "tool_timeout_s": 5},
}

EXCHANGE_YAML = """
name: exchange
type: function_calling
description: Converts currencies.
llm:
  spec: "local:"
  parameters: {temperature: 0, max_tokens: 64}
system_prompt: You convert currencies.
memory: {type: conversation, message_history_limit: 2}
tools:
  - {type: builtin, name: convert_currency}
parameters:
  max_steps: 4
  tool_timeout_s: 5
"""

CONVERT = ToolCall(
    id="call_1",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)


def factory_for(llm: Scripted, seen: list[str] | None = None) -> Any:
    def make(spec: str) -> Scripted:
        if seen is not None:
            seen.append(spec)
        return llm

    return make


def problems_of(source: Any) -> list[tuple[str, str]]:
    with pytest.raises(AgentSpecError) as caught:
        load_agent_spec(source)
    return caught.value.problems


def with_changes(**changes: Any) -> dict[str, Any]:
    return {**EXCHANGE_JSON, **changes}


# ------------------------------------------------------------------------------------------ loading


def test_json_and_yaml_give_the_same_spec(tmp_path: Path) -> None:
    from_json = AgentSpec.from_json(json.dumps(EXCHANGE_JSON))
    from_yaml = AgentSpec.from_yaml(EXCHANGE_YAML)
    assert from_json == from_yaml
    assert from_json.llm is not None and from_json.llm.parameters.temperature == 0
    assert from_json.parameters.max_steps == 4
    (tmp_path / "agent.json").write_text(json.dumps(EXCHANGE_JSON))
    (tmp_path / "agent.yaml").write_text(EXCHANGE_YAML)
    assert load_agent_spec(tmp_path / "agent.json") == from_json
    assert load_agent_spec(tmp_path / "agent.yaml") == from_json
    assert load_agent_spec(EXCHANGE_YAML) == load_agent_spec(json.dumps(EXCHANGE_JSON)) == from_json


def test_defaults() -> None:
    spec = load_agent_spec({"name": "minimal", "llm": {"spec": "local:"}})
    assert (spec.type, spec.memory.type, spec.memory.message_history_limit) == (
        "function_calling",
        "conversation",
        10,
    )
    assert (spec.parameters.max_steps, spec.parameters.tool_choice, spec.tools) == (10, "auto", [])


INVALID: list[tuple[str, Any, str, str]] = [
    ("empty name", with_changes(name=""), "name", "at least 1 character"),
    ("unknown type", with_changes(type="planner"), "type", "'function_calling', 'react' or 'flow'"),
    ("unknown field", with_changes(tool=[]), "tool", "Extra inputs are not permitted"),
    (
        "unknown builtin",
        with_changes(tools=[{"type": "builtin", "name": "teleport"}]),
        "tools[0].name",
        "unknown builtin tool 'teleport'; builtin tools: convert_currency, get_current_stock_price",
    ),
    ("unknown tool type", with_changes(tools=[{"type": "magic", "name": "x"}]), "tools[0]", "'magic'"),
    (
        "tool name",
        with_changes(tools=[{"type": "plugin", "name": "has space"}]),
        "tools[0].name",
        "should match pattern",
    ),
    (
        "duplicate tools",
        with_changes(tools=[{"type": "builtin", "name": "convert_currency"}] * 2),
        "tools",
        "tools[1].name: a tool named 'convert_currency' is already listed",
    ),
    (
        "http host not allowed",
        with_changes(tools=[{"type": "http", "name": "x", "url": "http://169.254.169.254/latest"}]),
        "tools[0].url",
        "The host '169.254.169.254' of 'http://169.254.169.254/latest' is not allowed; allowed hosts: "
        "127.0.0.1, localhost, ::1.",
    ),
    (
        "http not a URL",
        with_changes(tools=[{"type": "http", "name": "x", "url": "file:///etc/passwd"}]),
        "tools[0].url",
        "is not an http:// or https:// URL with a host",
    ),
    (
        "http schema",
        with_changes(
            tools=[{"type": "http", "name": "x", "url": "http://127.0.0.1/", "parameters": {"type": "array"}}]
        ),
        "tools[0].parameters",
        "the parameters schema must have type 'object'",
    ),
    (
        "http method",
        with_changes(tools=[{"type": "http", "name": "x", "url": "http://127.0.0.1/", "method": "TRACE"}]),
        "tools[0].method",
        "Input should be",
    ),
    ("react without llm", {"name": "r", "type": "react"}, "llm", "a react agent needs an llm"),
    ("flow without steps", {"name": "f", "type": "flow"}, "flow", "a flow agent needs flow.steps"),
    (
        "flow on another type",
        with_changes(flow={"steps": [{"tool": "convert_currency"}]}),
        "flow",
        "only flow agents have a flow; this agent's type is 'function_calling'",
    ),
    (
        "flow step reads a later step",
        {
            "name": "f",
            "type": "flow",
            "tools": [{"type": "builtin", "name": "get_current_stock_price"}],
            "flow": {
                "steps": [
                    {
                        "tool": "get_current_stock_price",
                        "name": "a",
                        "arguments": {"symbol": "{{ steps.b.output }}"},
                    },
                    {"tool": "get_current_stock_price", "name": "b", "arguments": {"symbol": "AAPL"}},
                ]
            },
        },
        "flow",
        "steps[0].arguments.symbol: refers to step 'b', which runs later",
    ),
    (
        "flow step with a tool the agent lacks",
        {"name": "f", "type": "flow", "flow": {"steps": [{"tool": "convert_currency"}]}},
        "flow",
        "steps[0].tool: unknown tool 'convert_currency'; the agent's tools are: none.",
    ),
    (
        "flow step field",
        {"name": "f", "type": "flow", "flow": {"steps": [{"tool": "x", "on_error": "retry"}]}},
        "flow.steps[0].on_error",
        "Input should be 'stop' or 'continue'",
    ),
    (
        "answer prompt without llm",
        {
            "name": "f",
            "type": "flow",
            "tools": [{"type": "builtin", "name": "convert_currency"}],
            "flow": {"steps": [{"tool": "convert_currency"}], "answer_prompt": "{{ input }}"},
        },
        "llm",
        "the flow's answer_prompt needs an llm",
    ),
    (
        "budget",
        with_changes(parameters={"max_steps": 0}),
        "parameters.max_steps",
        "greater than or equal to 1",
    ),
    ("timeout", with_changes(parameters={"timeout_s": -1}), "parameters.timeout_s", "greater than 0"),
    (
        "tool_choice names an unknown tool",
        with_changes(parameters={"tool_choice": {"name": "teleport"}}),
        "parameters",
        "tool_choice names 'teleport', which is not one of the agent's tools",
    ),
    ("memory type", with_changes(memory={"type": "vector"}), "memory.type", "'conversation' or 'none'"),
    (
        "history limit",
        with_changes(memory={"message_history_limit": -1}),
        "memory.message_history_limit",
        "greater than or equal to 0",
    ),
    (
        "temperature",
        with_changes(llm={"spec": "local:", "parameters": {"temperature": 5}}),
        "llm.parameters.temperature",
        "less than or equal to 2",
    ),
    ("empty llm spec", with_changes(llm={"spec": ""}), "llm.spec", "at least 1 character"),
    (
        "inline sub-agent",
        with_changes(tools=[{"type": "agent", "name": "helper", "agent": {"name": "sub", "type": "react"}}]),
        "tools[0].agent.llm",
        "a react agent needs an llm",
    ),
    ("not JSON", '{"name": ', "", "not valid JSON"),
    ("not YAML", "name: [unclosed", "", "not valid YAML"),
    ("not a mapping", "- a\n- b\n", "", "an agent spec must be a mapping of fields, not list"),
]


@pytest.mark.parametrize(
    ("source", "location", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_every_validation_error_names_its_field(source: Any, location: str, message: str) -> None:
    problems = problems_of(source)
    assert any(where == location and message in text for where, text in problems), problems


def test_the_error_message_lists_every_problem() -> None:
    source = with_changes(name="", parameters={"max_steps": 0})
    with pytest.raises(AgentSpecError) as caught:
        load_agent_spec(source)
    text = str(caught.value)
    assert text.startswith("Invalid agent spec (2 problems):\n- name: ")
    assert "\n- parameters.max_steps: Input should be greater than or equal to 1" in text


def test_allowed_hosts_can_be_widened() -> None:
    tools = [
        {
            "type": "http",
            "name": "meta",
            "url": "https://api.example.com/v1/{item}",
            "allowed_hosts": ["*.example.com"],
        }
    ]
    spec = load_agent_spec(with_changes(tools=tools))
    assert spec.tools[0].name == "meta"


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("LOCALHOST", ["localhost"], True),
        ("api.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("evilexample.com", ["*.example.com"], False),
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("11.1.2.3", ["10.0.0.0/8"], False),
        ("anything.org", ["*"], True),
        ("::1", ["::1"], True),
    ],
)
def test_host_allow_list_patterns(host: str, allowed: list[str], expected: bool) -> None:
    assert host_is_allowed(host, allowed) is expected


def test_check_url_defaults_to_loopback() -> None:
    assert check_url_allowed("http://LocalHost:8000/x").hostname == "localhost"
    assert check_url_allowed("http://[::1]:8000/x").hostname == "::1"
    with pytest.raises(HostNotAllowedError, match=r"'example\.com'"):
        check_url_allowed("https://example.com/")


# ------------------------------------------------------------------------------------------- running


async def test_run_spec_function_calling_with_a_builtin_tool() -> None:
    llm = Scripted([CONVERT, "42 US dollars is 131.95 Canadian dollars."])
    seen: list[str] = []
    result = await run_spec(EXCHANGE_JSON, "42 USD to CAD?", llm_factory=factory_for(llm, seen))
    assert seen == ["local:"]
    assert (result.outcome, result.agent_name) == ("answered", "exchange")
    assert result.tool_results()[0].data == {
        "from_currency": "USD",
        "to_currency": "CAD",
        "converted_amount": 131.95,
    }
    first = llm.requests[0]
    assert [tool.name for tool in first.tools] == ["convert_currency"]
    assert (first.params.temperature, first.params.max_tokens) == (0, 64)
    assert first.messages[0] == Message.system("You convert currencies.")


async def test_run_spec_react() -> None:
    spec = with_changes(type="react")
    llm = Scripted(
        [
            "Action: convert_currency\n"
            'Action Input: {"from_currency": "USD", "to_currency": "CAD", "amount": 42}',
            "Final Answer: 131.95 CAD",
        ]
    )
    built = build_agent(spec, llm_factory=factory_for(llm))
    assert isinstance(built.runner, ReactRunner)
    result = await built.run("42 USD to CAD?")
    assert (result.outcome, result.final_answer) == ("answered", "131.95 CAD")
    assert llm.requests[0].tools == []
    signature = "- convert_currency(from_currency: string, to_currency: string, amount: number) - Convert"
    assert signature in llm.requests[0].messages[0].text


FLOW_SPEC = {
    "name": "quote",
    "type": "flow",
    "tools": [
        {"type": "builtin", "name": "get_current_stock_price"},
        {"type": "builtin", "name": "convert_currency"},
    ],
    "flow": {
        "parameters": {"currency": "EUR"},
        "steps": [
            {"tool": "get_current_stock_price", "name": "price", "arguments": {"symbol": "{{ input }}"}},
            {
                "tool": "convert_currency",
                "arguments": {
                    "amount": "{{ steps.price.data.price }}",
                    "from_currency": "USD",
                    "to_currency": "{{ parameters.currency }}",
                },
            },
        ],
    },
}


async def test_run_spec_flow_without_an_llm() -> None:
    built = build_agent(FLOW_SPEC, llm_factory=factory_for(Scripted([])))
    assert isinstance(built.agent, FlowAgent)
    result = await built.run("AAPL")
    assert result.outcome == "answered"
    price = result.tool_results()[0].data["price"]
    converted = result.tool_results()[1].data
    assert converted["to_currency"] == "EUR"
    assert converted["converted_amount"] == round(price * 0.92, 2)
    assert result.final_answer == result.tool_results()[1].content


async def test_run_spec_flow_with_an_answer_step() -> None:
    spec = json.loads(json.dumps(FLOW_SPEC))
    spec["llm"] = {"spec": "openai:http://127.0.0.1:1/v1#m"}
    spec["flow"]["answer_prompt"] = "Price in EUR: {{ steps.convert_currency.data.converted_amount }}"
    llm = Scripted(["Apple trades at about that many euros."])
    result = await run_spec(spec, "AAPL", llm_factory=factory_for(llm))
    assert result.final_answer == "Apple trades at about that many euros."
    assert llm.requests[0].messages[-1].text.startswith("Price in EUR: ")


async def test_stream_spec_yields_events_and_the_result() -> None:
    llm = Scripted([CONVERT, "Done."])
    events = stream_spec(EXCHANGE_JSON, "42 USD to CAD?", llm_factory=factory_for(llm))
    seen = [event async for event in events]
    assert isinstance(seen[-1], FinalAnswerEvent) and seen[-1].text == "Done."
    assert events.result.outcome == "answered"
    flow_events = stream_spec(FLOW_SPEC, "MSFT", llm_factory=factory_for(Scripted([])))
    kinds = [event.type async for event in flow_events]
    assert kinds[-1] == "final_answer" and flow_events.result.outcome == "answered"


async def test_the_default_llm_factory_is_the_backend_spec_parser() -> None:
    with pytest.raises(AgentSpecError) as caught:
        build_agent(with_changes(llm={"spec": "teleport:somewhere"}))
    ((where, message),) = caught.value.problems
    assert where == "llm.spec"
    assert "Unknown scheme 'teleport'" in message


# -------------------------------------------------------------------------------------------- memory


def test_trim_history_keeps_the_last_user_turns() -> None:
    history = [
        Message.system("old system"),
        Message.user("q1"),
        Message.assistant("a1"),
        Message.user("q2"),
        Message.assistant("a2"),
        Message.user("q3"),
        Message.assistant("a3"),
    ]
    kept = trim_history(history, MemoryConfig(message_history_limit=2))
    assert [m.text for m in kept] == ["old system", "q2", "a2", "q3", "a3"]
    assert trim_history(history, MemoryConfig(type="none")) == []
    assert trim_history(history, MemoryConfig(message_history_limit=0)) == []
    assert trim_history(history, MemoryConfig(message_history_limit=5)) == history


async def test_memory_decides_what_history_the_model_sees() -> None:
    history = [Message.user("q1"), Message.assistant("a1"), Message.user("q2"), Message.assistant("a2")]
    history += [Message.user("q3"), Message.assistant("a3")]
    llm = Scripted(["ok", "ok"])
    await run_spec(EXCHANGE_JSON, "now", history, llm_factory=factory_for(llm))
    assert [m.text for m in llm.requests[0].messages] == [
        "You convert currencies.",
        "q2",
        "a2",
        "q3",
        "a3",
        "now",
    ]
    await run_spec(with_changes(memory={"type": "none"}), "now", history, llm_factory=factory_for(llm))
    assert [m.text for m in llm.requests[1].messages] == ["You convert currencies.", "now"]


# ------------------------------------------------------------------------------------------- plugins

PLUGIN_MODULE = '''
from fncall.tools import tool


def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@tool(name="whisper_tool")
def whisper(text: str) -> str:
    """Lower-case a text."""
    return text.lower()


NOT_A_TOOL = 42
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A real distribution on sys.path that registers entry points in the group `fncall.tools`."""
    (tmp_path / "fncall_test_plugin.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "fncall_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fncall-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [fncall.tools]
            shout = fncall_test_plugin:shout
            whisper = fncall_test_plugin:whisper
            not_a_tool = fncall_test_plugin:NOT_A_TOOL
            broken = fncall_test_plugin_missing:thing
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield


async def test_plugin_tools_come_from_entry_points(installed_plugin: None) -> None:
    spec = with_changes(tools=[{"type": "plugin", "name": "shout"}, {"type": "plugin", "name": "whisper"}])
    llm = Scripted(
        [
            [
                ToolCall(id="call_1", name="shout", arguments={"text": "hi"}),
                ToolCall(id="call_2", name="whisper", arguments={"text": "HO"}),
            ],
            "HI ho",
        ]
    )
    result = await run_spec(spec, "go", llm_factory=factory_for(llm))
    assert [r.content for r in result.tool_results()] == ["HI", "ho"]
    # a plugin Tool takes the entry point's name, the one the spec uses
    assert [tool.name for tool in llm.requests[0].tools] == ["shout", "whisper"]
    assert llm.requests[0].tools[0].description == "Upper-case a text."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "no plugin tool 'missing' is installed in the entry-point group 'fncall.tools' ("),
        (
            "broken",
            "the plugin 'broken' (fncall_test_plugin_missing:thing) failed to load: ModuleNotFoundError",
        ),
        (
            "not_a_tool",
            "the plugin 'not_a_tool' (fncall_test_plugin:NOT_A_TOOL) is neither a Tool nor a function",
        ),
    ],
)
def test_plugin_problems_name_the_field(installed_plugin: None, name: str, message: str) -> None:
    spec = with_changes(
        tools=[{"type": "builtin", "name": "convert_currency"}, {"type": "plugin", "name": name}]
    )
    with pytest.raises(AgentSpecError) as caught:
        build_agent(spec, llm_factory=factory_for(Scripted([])))
    ((where, text),) = caught.value.problems
    assert where == "tools[1].name"
    assert message in text
    if name == "missing":
        assert "broken, not_a_tool, shout, whisper" in text


# ---------------------------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def http_server(serve_app: Any) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that logs every request it gets."""
    log: list[str] = []
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        raw_path = request.scope["raw_path"].decode()
        log.append(f"{request.method} {raw_path}?{request.url.query}")
        return await call_next(request)

    @app.post("/orders")
    async def create_order(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"created": body, "token": request.headers.get("x-token")}

    @app.get("/search")
    async def search(q: str, limit: int = 1) -> dict[str, Any]:
        return {"q": q, "limit": limit}

    @app.get("/items/{item_id:path}")
    async def item(item_id: str) -> PlainTextResponse:
        return PlainTextResponse(f"item {item_id}")

    @app.get("/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"detail": "database down"}, status_code=503)

    with serve_app(app) as base_url:
        yield base_url, log


def http_spec(base_url: str, **tool: Any) -> dict[str, Any]:
    config = {"type": "http", "name": "remote", "description": "A remote endpoint.", **tool}
    config["url"] = base_url + config["url"]
    return with_changes(tools=[config])


async def run_one_call(spec: dict[str, Any], arguments: dict[str, Any]) -> Any:
    llm = Scripted([ToolCall(id="call_1", name="remote", arguments=arguments), "done"])
    result = await run_spec(spec, "go", llm_factory=factory_for(llm))
    return result.tool_results()[0], llm


async def test_http_post_sends_json_and_headers(http_server: tuple[str, list[str]]) -> None:
    base_url, _ = http_server
    schema = {"type": "object", "properties": {"item": {"type": "string"}, "qty": {"type": "integer"}}}
    spec = http_spec(base_url, url="/orders", parameters=schema, headers={"X-Token": "secret"})
    result, llm = await run_one_call(spec, {"item": "pen", "qty": 2})
    assert not result.is_error
    assert result.data == {"created": {"item": "pen", "qty": 2}, "token": "secret"}
    assert llm.requests[0].tools[0].parameters == schema


async def test_http_get_sends_a_query_and_fills_url_placeholders(http_server: tuple[str, list[str]]) -> None:
    base_url, log = http_server
    search, _ = await run_one_call(http_spec(base_url, url="/search", method="GET"), {"q": "a b", "limit": 3})
    assert search.data == {"q": "a b", "limit": 3}
    item, _ = await run_one_call(
        http_spec(base_url, url="/items/{item_id}", method="GET"), {"item_id": "x/../y"}
    )
    assert item.content == "item x/../y"
    assert "GET /items/x%2F..%2Fy?" in log


async def test_http_errors_become_tool_errors(http_server: tuple[str, list[str]]) -> None:
    base_url, _ = http_server
    result, _ = await run_one_call(http_spec(base_url, url="/broken", method="GET"), {})
    assert result.is_error
    assert result.content == (
        f'Error: GET {base_url}/broken answered HTTP 503 Service Unavailable: {{"detail":"database down"}}'
    )
    missing, _ = await run_one_call(http_spec(base_url, url="/nowhere", method="GET"), {})
    assert missing.is_error and "answered HTTP 404 Not Found" in missing.content


async def test_an_unreachable_server_is_a_tool_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result, _ = await run_one_call(http_spec(f"http://127.0.0.1:{port}", url="/x"), {})
    assert result.is_error
    assert result.content.startswith(f"Error: Could not reach http://127.0.0.1:{port}/x: ConnectError")


async def test_a_disallowed_host_is_refused_before_any_request(http_server: tuple[str, list[str]]) -> None:
    base_url, log = http_server
    before = list(log)
    port = base_url.rsplit(":", 1)[1]
    spec = http_spec("", url=f"http://127.0.0.1:{port}/orders", allowed_hosts=["api.example.com"])
    with pytest.raises(AgentSpecError) as caught:
        await run_spec(spec, "go", llm_factory=factory_for(Scripted([])))
    assert caught.value.problems[0][0] == "tools[0].url"
    assert "The host '127.0.0.1'" in caught.value.problems[0][1]
    with pytest.raises(HostNotAllowedError):
        http_tool("remote", f"http://127.0.0.1:{port}/orders", allowed_hosts=[])
    assert log == before


# -------------------------------------------------------------------------------------- agent as tool

SHOUTER = {
    "name": "shouter",
    "type": "flow",
    "description": "Shouts the stock news.",
    "tools": [{"type": "builtin", "name": "get_company_news"}],
    "flow": {"steps": [{"tool": "get_company_news", "arguments": {"symbol": "{{ input }}"}}]},
}


async def test_an_inline_agent_is_a_tool_taking_input() -> None:
    spec = with_changes(tools=[{"type": "agent", "name": "news", "agent": SHOUTER}])
    llm = Scripted([ToolCall(id="call_1", name="news", arguments={"input": "AAPL"}), "Here is the news."])
    result = await run_spec(spec, "News on AAPL?", llm_factory=factory_for(llm))
    offered = llm.requests[0].tools[0]
    assert (offered.name, offered.description) == ("news", "Shouts the stock news.")
    assert offered.parameters["required"] == ["input"]
    sub_result = result.tool_results()[0]
    assert not sub_result.is_error
    assert json.loads(sub_result.content)["symbol"] == "AAPL"


async def test_an_agent_tool_by_reference_and_its_failure() -> None:
    failing = {**SHOUTER, "name": "failing"}
    spec = with_changes(
        tools=[
            {"type": "agent", "name": "news", "description": "News.", "agent": "shouter"},
            {"type": "agent", "name": "bad", "agent": "failing"},
        ]
    )
    llm = Scripted(
        [
            [
                ToolCall(id="call_1", name="news", arguments={"input": "MSFT"}),
                ToolCall(id="call_2", name="bad", arguments={"input": "NOPE"}),
            ],
            "ok",
        ]
    )
    result = await run_spec(
        spec, "go", llm_factory=factory_for(llm), agents={"shouter": SHOUTER, "failing": failing}
    )
    news, bad = result.tool_results()
    assert not news.is_error and llm.requests[0].tools[0].description == "News."
    assert bad.is_error
    assert bad.content.startswith(
        "Error: The agent failing did not complete the task: The flow failing stopped"
    )


def test_agent_references_must_resolve_and_must_not_loop() -> None:
    spec = with_changes(tools=[{"type": "agent", "name": "helper", "agent": "ghost"}])
    with pytest.raises(AgentSpecError) as caught:
        build_agent(spec, llm_factory=factory_for(Scripted([])))
    assert caught.value.problems == [
        ("tools[0].agent", "no agent spec named 'ghost' was given (known: none)")
    ]

    looping = {**EXCHANGE_JSON, "tools": [{"type": "agent", "name": "again", "agent": "exchange"}]}
    with pytest.raises(
        AgentSpecError, match=r"agent 'exchange' uses itself as a tool \(exchange -> exchange\)"
    ):
        build_agent(looping, llm_factory=factory_for(Scripted([])), agents={"exchange": looping})
