"""The LLM service on the real embedded model, driven over HTTP by the official `openai` and `anthropic` SDKs.

Values the small model writes are asserted where it is reliable (the seed's exchange call); elsewhere the
structure the server guarantees (a call when one is required, none when forbidden, at most one when parallel
calls are off, deltas that concatenate to the final JSON) is asserted exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import jsonschema
import openai
import pytest

from fncall.llms.local import LocalLLM
from fncall.server.llm_api import create_llm_app

pytestmark = pytest.mark.model

QUERY = "I want to exchange 42 US dollars to Canadian dollars"
CONVERT = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": (
            "Convert from one currency to another. Result is returned in the 'converted_amount' key."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "from_currency": {
                    "type": "string",
                    "description": "The source currency to convert from, e.g. USD",
                },
                "to_currency": {
                    "type": "string",
                    "description": "The target currency to convert to, e.g. CAD",
                },
                "amount": {"type": "number", "description": "The amount to be converted"},
            },
            "required": ["from_currency", "to_currency", "amount"],
        },
    },
}
NEWS = {
    "type": "function",
    "function": {
        "name": "get_company_news",
        "description": "Get the latest news headlines for a company, given its stock symbol.",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string", "description": "Stock ticker symbol, e.g. RIVN"}},
            "required": ["symbol"],
        },
    },
}
SEED_ARGUMENTS = {"from_currency": "USD", "to_currency": "CAD", "amount": 42}


@pytest.fixture(scope="module")
def base_url(local_qwen: LocalLLM, serve_app) -> Iterator[str]:
    with serve_app(create_llm_app(local_qwen, model_name="qwen2.5-coder-0.5b")) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="not-needed", max_retries=0)


def _user(text: str = QUERY) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_seed_query_gives_the_convert_currency_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="any", messages=_user(), tools=[CONVERT, NEWS], seed=1)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "convert_currency"
    assert json.loads(call.function.arguments) == SEED_ARGUMENTS
    assert reply.model == "qwen2.5-coder-0.5b"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_the_next_question_over_the_same_tools_reuses_their_prefix_after_an_answer(
    client: openai.OpenAI,
) -> None:
    system = {"role": "system", "content": "You are the exchange desk of a bank. Use the tools; never guess."}
    first = [system, *_user()]
    reply = client.chat.completions.create(model="m", messages=first, tools=[CONVERT, NEWS], seed=3)
    call = reply.choices[0].message.tool_calls[0]
    result = {"from": "USD", "to": "CAD", "converted_amount": 57.46}
    answered = [
        *first,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
    ]
    answer = client.chat.completions.create(model="m", messages=answered, tools=[CONVERT, NEWS], seed=3)
    assert "57.46" in (answer.choices[0].message.content or "")  # a tools-free answer step ran in between
    question = "What are the latest headlines about RIVN?"
    again = client.chat.completions.create(
        model="m", messages=[system, *_user(question)], tools=[CONVERT, NEWS], seed=3
    )
    cached = again.usage.prompt_tokens_details.cached_tokens
    # everything up to the new question came from the snapshot taken before the answer step
    assert again.usage.prompt_tokens - 30 <= cached < again.usage.prompt_tokens


def test_streamed_call_matches_the_non_streamed_one(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="m", messages=_user(), tools=[CONVERT], seed=7)
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=_user(),
            tools=[CONVERT],
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first = deltas[0]
    assert first.index == 0 and first.id and first.type == "function"
    assert first.function.name == "convert_currency"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == json.loads(whole.choices[0].message.tool_calls[0].function.arguments)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_required_forces_a_call_even_for_small_talk(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=_user("Say hello in one short sentence."),
        tools=[CONVERT, NEWS],
        tool_choice="required",
    )
    calls = reply.choices[0].message.tool_calls
    assert calls and all(c.function.name in {"convert_currency", "get_company_news"} for c in calls)
    for call in calls:
        assert isinstance(json.loads(call.function.arguments), dict)


def test_named_tool_choice_calls_that_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=_user("What is new at Rivian (RIVN)?"),
        tools=[CONVERT, NEWS],
        tool_choice={"type": "function", "function": {"name": "get_company_news"}},
    )
    calls = reply.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_company_news"]
    assert "symbol" in json.loads(calls[0].function.arguments)


def test_none_answers_in_text_without_calls(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=_user(), tools=[CONVERT], tool_choice="none", max_tokens=60
    )
    choice = reply.choices[0]
    assert not choice.message.tool_calls
    assert choice.finish_reason in {"stop", "length"}
    assert choice.message.content and choice.message.content.strip()


def test_parallel_off_gives_at_most_one_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=_user("Convert 42 USD to CAD and also 10 EUR to GBP."),
        tools=[CONVERT],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert len(reply.choices[0].message.tool_calls) == 1


async def test_async_client_streams_and_completes(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    reply = await client.chat.completions.create(model="m", messages=_user(), tools=[CONVERT])
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == SEED_ARGUMENTS
    stream = await client.chat.completions.create(model="m", messages=_user(), tools=[CONVERT], stream=True)
    names = [
        tc.function.name
        async for chunk in stream
        if chunk.choices
        for tc in (chunk.choices[0].delta.tool_calls or [])
        if tc.function and tc.function.name
    ]
    assert names == ["convert_currency"]
    await client.close()


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"n": 2}, "n"),
    ],
)
def test_bad_requests_get_a_400_naming_the_parameter(client: openai.OpenAI, extra: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=_user(), tools=[CONVERT], **extra)
    assert caught.value.status_code == 400
    assert caught.value.param == param


def test_anthropic_sdk_gets_a_tool_use_block(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0)
    tool = {
        "name": "convert_currency",
        "description": CONVERT["function"]["description"],
        "input_schema": CONVERT["function"]["parameters"],
    }
    message = client.messages.create(
        model="m", max_tokens=200, messages=[{"role": "user", "content": QUERY}], tools=[tool]
    )
    assert message.stop_reason == "tool_use"
    blocks = [b for b in message.content if b.type == "tool_use"]
    assert [b.name for b in blocks] == ["convert_currency"]
    assert blocks[0].input == SEED_ARGUMENTS

    with client.messages.stream(
        model="m", max_tokens=200, messages=[{"role": "user", "content": QUERY}], tools=[tool]
    ) as stream:
        partial = "".join(
            event.delta.partial_json
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        )
        final = stream.get_final_message()
    assert json.loads(partial) == SEED_ARGUMENTS
    assert final.stop_reason == "tool_use"


def test_response_format_json_schema_gives_valid_json(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="m",
        messages=_user("Give the capital of France and its population as JSON."),
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        max_tokens=80,
    )
    value = json.loads(reply.choices[0].message.content)
    jsonschema.validate(value, schema)
