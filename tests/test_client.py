"""`fncall client` end to end: the stock assistant against a fake Triton server and against fncall's own
OpenAI-compatible LLM server, both on 127.0.0.1."""

from __future__ import annotations

import json
import socket

import typer
from typer.testing import CliRunner

from fake_triton import FakeTriton
from fncall.client import client_command
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.llm_api import create_llm_app
from fncall.types import ToolCall

NEWS_CALL = '<tool_call>\n{"arguments": {"symbol": "RIVN"}, "name": "get_company_news"}\n</tool_call>'
PRICE_CALL = '<tool_call>\n{"arguments": {"symbol": "RIVN"}, "name": "get_current_stock_price"}\n</tool_call>'
ANSWER = "Rivian (RIVN) trades at 13.42 USD. News: Rivian beats delivery estimates for the fourth quarter."
PROMPT = "Give me Rivian (RIVN) news and stock price"

app = typer.Typer()
app.command()(client_command)
runner = CliRunner()


def _stock_script() -> FakeTriton:
    return FakeTriton([NEWS_CALL + "<|im_end|>", PRICE_CALL + "<|im_end|>", ANSWER + "<|im_end|>"])


def _assert_stock_run(stdout: str, stderr: str) -> None:
    assert stdout == f"RESPONSE: {ANSWER}\n"
    assert 'Executing function: get_company_news({"symbol": "RIVN"})' in stderr
    assert "Rivian beats delivery estimates for the fourth quarter" in stderr
    assert 'Executing function: get_current_stock_price({"symbol": "RIVN"})' in stderr
    assert 'Function response: {"symbol":"RIVN","price":13.42,"currency":"USD"' in stderr
    assert stderr.index("get_company_news(") < stderr.index("get_current_stock_price(")


def test_client_runs_the_stock_tools_on_triton(serve_app) -> None:
    fake = _stock_script()
    with serve_app(fake.app()) as url:
        result = runner.invoke(app, ["--prompt", PROMPT, "--url", url, "--output-len", "1000"])

    assert result.exit_code == 0, result.output
    _assert_stock_run(result.stdout, result.stderr)
    assert fake.paths == ["/v2/models/ensemble/generate"] * 3
    assert [body["max_tokens"] for body in fake.requests] == [1000, 1000, 1000]
    assert all(body["stream"] is False for body in fake.requests)
    # Each result went back to the model as a Hermes tool turn.
    assert '<|im_start|>tool\n<tool_response>\n{"name": "get_company_news", "content": {' in fake.prompts[1]
    assert '{"name": "get_current_stock_price", "content": {"symbol":"RIVN","price":13.42,' in fake.prompts[2]


def test_client_streams_with_the_seed_flags(serve_app) -> None:
    fake = _stock_script()
    with serve_app(fake.app()) as url:
        result = runner.invoke(app, ["-p", PROMPT, "-S", "-o", "1000", "-u", url])

    assert result.exit_code == 0, result.output
    _assert_stock_run(result.stdout, result.stderr)
    assert fake.paths == ["/v2/models/ensemble/generate_stream"] * 3
    assert ANSWER in result.stderr  # the answer was shown as it streamed, before the RESPONSE line


def test_output_len_defaults_to_the_seeds_100_and_temperature_is_sent(serve_app) -> None:
    fake = FakeTriton([ANSWER])
    with serve_app(fake.app()) as url:
        result = runner.invoke(app, ["-p", "Hello", "-u", url, "--temperature", "0.3"])
    assert result.exit_code == 0, result.output
    assert (fake.requests[0]["max_tokens"], fake.requests[0]["temperature"]) == (100, 0.3)


def test_verbose_prints_the_prompts_and_raw_outputs(serve_app) -> None:
    fake = _stock_script()
    with serve_app(fake.app()) as url:
        result = runner.invoke(app, ["-p", PROMPT, "-u", url, "-v"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("--- prompt ---") == 3
    assert f"<|im_start|>user\n{PROMPT}<|im_end|>" in result.stderr
    assert f"--- raw output ---\n{NEWS_CALL}\n--- end of raw output ---" in result.stderr
    assert result.stdout == f"RESPONSE: {ANSWER}\n"


def test_a_model_name_triton_does_not_serve_ends_with_its_error(serve_app) -> None:
    with serve_app(FakeTriton([ANSWER]).app()) as url:
        result = runner.invoke(app, ["-p", PROMPT, "-u", url, "--model-name", "tensorrt_llm_bls"])
    assert result.exit_code == 2
    assert "[ERROR]" in result.stderr
    assert "Request for unknown model: 'tensorrt_llm_bls' is not found" in result.stderr


def test_a_triton_server_that_is_down_is_named_in_the_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = runner.invoke(app, ["-p", PROMPT, "--llm", f"triton:{url}?retries=0#ensemble"])
    assert result.exit_code == 2
    assert f"Could not reach the Triton server at {url}" in result.stderr


def test_url_and_llm_together_are_refused() -> None:
    result = runner.invoke(app, ["-p", PROMPT, "-u", "http://127.0.0.1:1", "--llm", "local:"])
    assert result.exit_code == 1
    assert "not both" in result.stderr


def _stock_model(request: ScriptedRequest) -> ScriptItem:
    """Calls get_company_news, then get_current_stock_price, then answers from the price it was sent."""
    results = [message for message in request.messages if message.role == "tool"]
    if not results:
        return ToolCall(name="get_company_news", arguments={"symbol": "RIVN"})
    if len(results) == 1:
        return ToolCall(name="get_current_stock_price", arguments={"symbol": "RIVN"})
    price = json.loads(results[-1].content or "{}")["price"]
    return (
        f"Rivian (RIVN) trades at {price} USD. News: Rivian beats delivery estimates for the fourth quarter."
    )


def test_client_runs_on_any_backend_spec(serve_app) -> None:
    backend = Scripted(_stock_model)
    with serve_app(create_llm_app(backend, model_name="scripted")) as base_url:
        spec = f"openai:{base_url}/v1#scripted"
        plain = runner.invoke(app, ["-p", PROMPT, "--llm", spec])
        streamed = runner.invoke(app, ["-p", PROMPT, "--llm", spec, "--streaming", "-o", "1000", "-v"])

    for result in (plain, streamed):
        assert result.exit_code == 0, result.output
        _assert_stock_run(result.stdout, result.stderr)
    assert [tool.name for tool in backend.requests[0].tools] == [
        "get_current_stock_price",
        "get_company_news",
    ]
    assert backend.requests[0].params.max_tokens == 100
    assert backend.requests[-1].params.max_tokens == 1000
    assert "--- request: 2 messages, tools: get_current_stock_price, get_company_news ---" in streamed.stderr
    assert f"[user] {PROMPT}" in streamed.stderr


def test_the_models_words_with_a_call_and_a_failing_tool_are_shown(serve_app) -> None:
    call = '<tool_call>\n{"arguments": {"symbol": "XYZ"}, "name": "get_company_news"}\n</tool_call>'
    fake = FakeTriton([f"I will look it up.\n{call}", "XYZ is not a symbol I know."])
    with serve_app(fake.app()) as url:
        result = runner.invoke(app, ["-p", "News for XYZ?", "-u", url])
    assert result.exit_code == 0, result.output
    assert "I will look it up.\nllm " in result.stderr
    assert (
        "Function response: Error: get_company_news raised ValueError: Unknown stock symbol 'XYZ'"
        in result.stderr
    )
    assert '"content": "Error: get_company_news raised ValueError' in fake.prompts[1]
    assert result.stdout == "RESPONSE: XYZ is not a symbol I know.\n"
