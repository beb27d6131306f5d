"""The `fncall` command line, against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fncall.cli import app
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.llm_api import create_llm_app
from fncall.types import ToolCall

runner = CliRunner()


def _exchange_model(request: ScriptedRequest) -> ScriptItem:
    """Calls convert_currency first, then answers from the tool message it is sent back."""
    tool_messages = [m for m in request.messages if m.role == "tool"]
    if not tool_messages:
        return ToolCall(
            name="convert_currency", arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42}
        )
    amount = json.loads(tool_messages[-1].content or "{}")["converted_amount"]
    return f"42 US dollars is {amount} Canadian dollars."


def test_ask_prints_the_answer_from_an_openai_compatible_server(serve_app) -> None:
    backend = Scripted(_exchange_model)
    with serve_app(create_llm_app(backend, model_name="scripted")) as base_url:
        result = runner.invoke(
            app,
            [
                "ask",
                "I want to exchange 42 US dollars to Canadian dollars",
                "--llm",
                f"openai:{base_url}/v1#scripted",
                "--agent",
                "exchange",
            ],
        )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "42 US dollars is 131.95 Canadian dollars."
    # The server received the tool definition and, on the second request, the tool result.
    assert [t.name for t in backend.requests[0].tools] == ["convert_currency"]
    assert backend.requests[1].messages[-1].role == "tool"


def test_ask_trace_shows_calls_results_and_timings(serve_app) -> None:
    with serve_app(create_llm_app(Scripted(_exchange_model), model_name="scripted")) as base_url:
        result = runner.invoke(
            app, ["ask", "42 USD to CAD?", "--llm", f"openai:{base_url}/v1#scripted", "--trace"]
        )
    assert result.exit_code == 0, result.output
    trace = result.stderr
    assert "step 1" in trace and "step 2" in trace
    assert 'convert_currency({"from_currency": "USD", "to_currency": "CAD", "amount": 42})' in trace
    assert '"converted_amount":131.95' in trace
    assert "ms:" in trace


def test_ask_with_an_unreachable_server_fails_clearly() -> None:
    result = runner.invoke(
        app, ["ask", "hello", "--llm", "openai:http://127.0.0.1:9/v1#m", "--max-steps", "1"]
    )
    assert result.exit_code != 0
    assert "127.0.0.1:9" in result.output


def test_ask_rejects_an_unknown_backend_scheme() -> None:
    result = runner.invoke(app, ["ask", "hello", "--llm", "nosuch:thing"])
    assert result.exit_code == 1
    assert "nosuch" in result.stderr


def test_tools_list_shows_the_builtin_tools() -> None:
    result = runner.invoke(app, ["tools", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("convert_currency", "get_current_stock_price", "get_company_news"):
        assert name in result.stdout
    assert "amount: number" in result.stdout
