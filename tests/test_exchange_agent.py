"""The seed agents built on the runner: the Exchange Assistant and the stock assistant (scripted models)."""

from __future__ import annotations

import json

from fncall.agents import (
    EXCHANGE_DEFAULT_QUERY,
    EXCHANGE_SYSTEM_PROMPT,
    exchange_assistant,
    run,
    stock_assistant,
    stream,
)
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.types import FinalAnswerEvent, Message, ToolCall


def _answers_from_the_tool_result(request: ScriptedRequest) -> ToolCall | str:
    """Calls convert_currency first, then phrases the tool's own converted_amount: the number in the
    answer comes from the tool, not from the script."""
    tool_messages = [m for m in request.messages if m.role == "tool"]
    if not tool_messages:
        return ToolCall(
            id="call_fx",
            name="convert_currency",
            arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
        )
    result = json.loads(tool_messages[-1].text)
    return f"42 US dollars is equivalent to {result['converted_amount']} Canadian dollars."


def test_system_prompt_is_the_seed_text_verbatim() -> None:
    assert EXCHANGE_SYSTEM_PROMPT == (
        "You are a helpful assistant that can access external functions. The responses from these function "
        "calls will be appended to this dialogue. Please provide responses only based on the results from "
        "these function calls. The results will be specified in the 'converted_amount' field. The source and "
        "target currencies will be specified in  the 'from_currency' and 'to_currency' respectively."
    )
    assert "in  the 'from_currency'" in EXCHANGE_SYSTEM_PROMPT


async def test_exchange_assistant_answers_the_seed_query() -> None:
    llm = Scripted(_answers_from_the_tool_result)
    result = await run(exchange_assistant(llm), EXCHANGE_DEFAULT_QUERY)

    assert result.outcome == "answered"
    assert "131.95" in result.final_answer
    assert result.final_answer == "42 US dollars is equivalent to 131.95 Canadian dollars."
    [tool_result] = result.tool_results()
    assert tool_result.is_error is False
    assert tool_result.data == {"from_currency": "USD", "to_currency": "CAD", "converted_amount": 131.95}
    [tool_call] = result.tool_calls()
    assert tool_call.arguments == {"from_currency": "USD", "to_currency": "CAD", "amount": 42}

    first_request = llm.requests[0]
    assert first_request.messages == [
        Message.system(EXCHANGE_SYSTEM_PROMPT),
        Message.user(EXCHANGE_DEFAULT_QUERY),
    ]
    assert [spec.name for spec in first_request.tools] == ["convert_currency"]
    assert set(first_request.tools[0].parameters["properties"]) == {"from_currency", "to_currency", "amount"}


async def test_exchange_assistant_streams_to_the_same_answer() -> None:
    events = stream(exchange_assistant(Scripted(_answers_from_the_tool_result)), EXCHANGE_DEFAULT_QUERY)
    collected = [event async for event in events]
    assert collected[-1] == FinalAnswerEvent(
        text="42 US dollars is equivalent to 131.95 Canadian dollars.", outcome="answered"
    )


async def test_exchange_assistant_takes_agent_settings() -> None:
    agent = exchange_assistant(Scripted([]), max_steps=1, timeout_s=5.0)
    assert (agent.name, agent.max_steps, agent.timeout_s) == ("exchange-assistant", 1, 5.0)


async def test_exchange_assistant_in_two_calls_like_the_seed() -> None:
    """With one step the run is the seed's flow: a call with tools, then one without tools."""
    llm = Scripted(_answers_from_the_tool_result)
    result = await run(exchange_assistant(llm, max_steps=1), EXCHANGE_DEFAULT_QUERY)
    assert result.outcome == "max_steps"
    assert result.final_answer.endswith("42 US dollars is equivalent to 131.95 Canadian dollars.")
    assert [len(r.tools) for r in llm.requests] == [1, 0]


async def test_stock_assistant_looks_up_price_and_news() -> None:
    def responder(request: ScriptedRequest) -> list[ToolCall] | str:
        tool_messages = [m for m in request.messages if m.role == "tool"]
        if not tool_messages:
            return [
                ToolCall(id="call_price", name="get_current_stock_price", arguments={"symbol": "RIVN"}),
                ToolCall(id="call_news", name="get_company_news", arguments={"symbol": "RIVN"}),
            ]
        price = json.loads(tool_messages[0].text)["price"]
        return f"Rivian trades at {price}."

    llm = Scripted(responder)
    result = await run(stock_assistant(llm), "Tell me about Rivian.")

    assert result.outcome == "answered"
    assert [spec.name for spec in llm.requests[0].tools] == ["get_current_stock_price", "get_company_news"]
    price_result, news_result = result.tool_results()
    assert not price_result.is_error and not news_result.is_error
    assert price_result.data["symbol"] == "RIVN" and news_result.data["symbol"] == "RIVN"
    assert result.final_answer == f"Rivian trades at {price_result.data['price']}."
