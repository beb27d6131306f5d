"""The seed's Exchange Assistant flow through every client a user would pick, on the real embedded model.

Each client drives the tool loop itself against fncall's server on 127.0.0.1: it sends the question with the
convert_currency tool, runs the call it gets back, sends the result (with `content: null` on the assistant
message, as these clients do), and must receive a prose answer stating 131.95 exactly as the tool returned it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import openai
import pytest

from fncall.llms.local import LocalLLM
from fncall.server.llm_api import create_llm_app
from fncall.tools.builtin import convert_currency

pytestmark = pytest.mark.model

QUERY = "I want to exchange 42 US dollars to Canadian dollars"
SYSTEM = "You are a helpful assistant. Use the tools when they help, and answer from their results."
TOOL = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": convert_currency.spec.description,
        "parameters": convert_currency.spec.parameters,
    },
}


def _run_tool(name: str, arguments: dict) -> str:
    assert name == "convert_currency"
    return json.dumps(convert_currency(**arguments))


def _assert_grounded(answer: str | None) -> None:
    assert answer and "131.95" in answer
    assert not answer.lstrip().startswith(("{", "[", "```")), answer


@pytest.fixture(scope="module")
def base_url(local_qwen: LocalLLM, serve_app) -> Iterator[str]:
    with serve_app(create_llm_app(local_qwen, model_name="qwen2.5-coder-0.5b")) as url:
        yield url


def _openai_second_turn(first) -> list[dict]:
    message = first.choices[0].message
    assert message.tool_calls, "the model made no call"
    turns: list[dict] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUERY},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump(exclude_none=True) for c in message.tool_calls],
        },
    ]
    for call in message.tool_calls:
        result = _run_tool(call.function.name, json.loads(call.function.arguments))
        turns.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return turns


def test_openai_sync(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUERY}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[TOOL])
    second = client.chat.completions.create(model="m", messages=_openai_second_turn(first), tools=[TOOL])
    assert not second.choices[0].message.tool_calls
    _assert_grounded(second.choices[0].message.content)


async def test_openai_async_stream(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUERY}]
    first = await client.chat.completions.create(model="m", messages=messages, tools=[TOOL])
    stream = await client.chat.completions.create(
        model="m", messages=_openai_second_turn(first), tools=[TOOL], stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    _assert_grounded(text)
    await client.close()


def test_langchain_bind_tools_invoke_and_stream(base_url: str) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(base_url=f"{base_url}/v1", api_key="x", model="m", max_retries=0).bind_tools([TOOL])
    history = [SystemMessage(SYSTEM), HumanMessage(QUERY)]
    reply = model.invoke(history)
    assert [c["name"] for c in reply.tool_calls] == ["convert_currency"]
    history.append(reply)
    for call in reply.tool_calls:
        history.append(ToolMessage(_run_tool(call["name"], call["args"]), tool_call_id=call["id"]))
    answer = model.invoke(history)
    _assert_grounded(answer.content)
    streamed = "".join(chunk.content for chunk in model.stream(history))
    _assert_grounded(streamed)


async def test_openai_agents_sdk_run_and_streamed_run(base_url: str) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)

    @function_tool(name_override="convert_currency")
    def convert_currency_tool(from_currency: str, to_currency: str, amount: float) -> str:
        """Convert from one currency to another. Result is returned in the 'converted_amount' key."""
        arguments = {"from_currency": from_currency, "to_currency": to_currency, "amount": amount}
        return _run_tool("convert_currency", arguments)

    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    agent = Agent(
        name="exchange",
        instructions=SYSTEM,
        model=OpenAIChatCompletionsModel(model="m", openai_client=client),
        tools=[convert_currency_tool],
    )
    result = await Runner.run(agent, QUERY, max_turns=4)
    _assert_grounded(result.final_output)

    streamed = Runner.run_streamed(agent, QUERY, max_turns=4)
    async for _ in streamed.stream_events():
        pass
    _assert_grounded(streamed.final_output)
    await client.close()


def test_anthropic_create_and_stream(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0)
    tool = {
        "name": "convert_currency",
        "description": TOOL["function"]["description"],
        "input_schema": TOOL["function"]["parameters"],
    }
    messages: list[dict] = [{"role": "user", "content": QUERY}]
    first = client.messages.create(model="m", max_tokens=300, system=SYSTEM, messages=messages, tools=[tool])
    uses = [block for block in first.content if block.type == "tool_use"]
    assert [u.name for u in uses] == ["convert_currency"]
    messages.append({"role": "assistant", "content": [u.model_dump() for u in uses]})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": _run_tool(u.name, u.input)}
                for u in uses
            ],
        }
    )
    answer = client.messages.create(model="m", max_tokens=300, system=SYSTEM, messages=messages, tools=[tool])
    assert answer.stop_reason == "end_turn"
    _assert_grounded("".join(block.text for block in answer.content if block.type == "text"))
    with client.messages.stream(
        model="m", max_tokens=300, system=SYSTEM, messages=messages, tools=[tool]
    ) as stream:
        text = "".join(stream.text_stream)
    _assert_grounded(text)
