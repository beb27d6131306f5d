"""LocalLLM end to end on the real models: Qwen 0.5B for tool-call behaviour, SmolLM2 where speed matters."""

from __future__ import annotations

import asyncio
import threading

import jsonschema
import pytest

from fncall.errors import ConfigError, InvalidRequestError, OverloadedError
from fncall.llms.answering.facts import invented_numbers, states_failure
from fncall.llms.base import LLM, StreamAssembler, collect_stream
from fncall.llms.local import LocalLLM, from_spec
from fncall.types import (
    FinishEvent,
    GenerationParams,
    Message,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolResult,
    ToolSpec,
)

CONVERT = ToolSpec(
    name="convert_currency",
    description="Convert an amount of money from one currency to another.",
    parameters={
        "type": "object",
        "properties": {
            "from_currency": {"type": "string", "description": "ISO code of the currency to convert from"},
            "to_currency": {"type": "string", "description": "ISO code of the currency to convert to"},
            "amount": {"type": "number", "description": "The amount to convert"},
        },
        "required": ["from_currency", "to_currency", "amount"],
    },
)
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
QUERY = [Message.user("I want to exchange 42 US dollars to Canadian dollars")]


def _load(model: str, **options: object) -> LocalLLM:
    try:
        return LocalLLM.load(model, **options)  # type: ignore[arg-type]
    except ConfigError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def qwen() -> LocalLLM:
    return _load("qwen2.5-coder-0.5b", n_ctx=4096)


@pytest.fixture(scope="session")
def smol() -> LocalLLM:
    return _load("smollm2-135m", n_ctx=2048)


def _assert_seed_call(call: ToolCall) -> None:
    assert call.name == "convert_currency"
    assert call.arguments["from_currency"] == "USD"
    assert call.arguments["to_currency"] == "CAD"
    assert call.arguments["amount"] == 42


async def _events(llm: LLM, *args: object, **kwargs: object) -> list[StreamEvent]:
    return [event async for event in llm.stream(*args, **kwargs)]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- seed exchange


@pytest.mark.model
@pytest.mark.parametrize("tool_choice", ["auto", "required", {"name": "convert_currency"}])
async def test_seed_exchange_query_calls_convert_currency(qwen: LocalLLM, tool_choice: object) -> None:
    completion = await qwen.complete(QUERY, [WEATHER, CONVERT], tool_choice)  # type: ignore[arg-type]
    assert completion.finish_reason == "tool_calls"
    assert len(completion.message.tool_calls) == 1
    _assert_seed_call(completion.message.tool_calls[0])
    assert completion.model == "qwen2.5-coder-0.5b"
    assert completion.usage.prompt_tokens > 100
    assert completion.usage.completion_tokens > 10


@pytest.mark.model
async def test_constrained_auto_gives_the_same_call(qwen: LocalLLM) -> None:
    params = GenerationParams(constrained=True)
    completion = await qwen.complete(QUERY, [CONVERT], "auto", params)
    assert [call.name for call in completion.message.tool_calls] == ["convert_currency"]
    _assert_seed_call(completion.message.tool_calls[0])


@pytest.mark.model
async def test_compact_tools_make_the_same_call_from_a_much_shorter_prompt(qwen: LocalLLM) -> None:
    assert qwen.compact_tools is True  # the default
    assert from_spec("qwen2.5-coder-0.5b?n_ctx=4096&compact_tools=off").compact_tools is False
    json_tools = LocalLLM(qwen.local_model, qwen.queue, compact_tools=False)
    template = await json_tools.complete(QUERY, [WEATHER, CONVERT])
    signatures = await qwen.complete(QUERY, [WEATHER, CONVERT])
    [call] = signatures.message.tool_calls
    _assert_seed_call(call)
    assert signatures.usage.prompt_tokens < 0.75 * template.usage.prompt_tokens


@pytest.mark.model
async def test_tool_choice_none_answers_in_text(qwen: LocalLLM) -> None:
    completion = await qwen.complete(QUERY, [CONVERT], "none", GenerationParams(max_tokens=60))
    assert completion.message.tool_calls == []
    assert completion.message.content
    assert completion.finish_reason in ("stop", "length")


@pytest.mark.model
async def test_stream_and_complete_agree_at_temperature_zero(qwen: LocalLLM) -> None:
    params = GenerationParams(temperature=0, seed=7)
    events = await _events(qwen, QUERY, [CONVERT], "auto", params)
    assert isinstance(events[-1], FinishEvent)
    streamed = events[-1].completion
    completed = await qwen.complete(QUERY, [CONVERT], "auto", params)
    strip_ids = {"message": {"tool_calls": {"__all__": {"id"}}}}
    assert streamed.model_dump(exclude=strip_ids) == completed.model_dump(exclude=strip_ids)
    # the events describe the same completion as the one they end with
    assembler = StreamAssembler()
    for event in events[:-1]:
        assembler.add(event)
    assert assembler.message() == streamed.message
    kinds = [type(e) for e in events]
    assert kinds.index(ToolCallStartEvent) < kinds.index(ToolCallDeltaEvent) < kinds.index(ToolCallEndEvent)


@pytest.mark.model
async def test_second_step_reuses_the_first_steps_prompt(qwen: LocalLLM) -> None:
    model = qwen.local_model
    qwen = LocalLLM(model, qwen.queue, answer_policy=False)  # one plain generation per step
    first = await qwen.complete(QUERY, [CONVERT], "required")
    call = first.message.tool_calls[0]
    first_prompt = first.usage.prompt_tokens
    before = (model.counters.prompt_tokens_evaluated, model.counters.prompt_tokens_reused)
    result = ToolResult(call_id=call.id, name=call.name, content='{"converted_amount": 57.54}')
    second = await qwen.complete(
        [*QUERY, first.message, Message.tool(result)], [CONVERT], "auto", GenerationParams(max_tokens=1)
    )
    evaluated = model.counters.prompt_tokens_evaluated - before[0]
    reused = model.counters.prompt_tokens_reused - before[1]
    assert evaluated + reused == second.usage.prompt_tokens
    assert reused >= first_prompt - 5  # everything up to the assistant turn came from the KV cache
    assert evaluated <= second.usage.prompt_tokens - first_prompt + 5


# ----------------------------------------------------------------------------- after the tool result

SEED_CALL = ToolCall(
    id="call_seed",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)
SEED_RESULT = '{"from_currency":"USD","to_currency":"CAD","converted_amount":131.95}'
SEED_ROUND = [
    Message.system("You are a helpful assistant."),
    *QUERY,
    Message.assistant(None, [SEED_CALL]),  # content null, as OpenAI clients send it
    Message(role="tool", content=SEED_RESULT, tool_call_id="call_seed", name="convert_currency"),
]


def _assert_grounded_prose(text: str) -> None:
    assert "131.95" in text
    assert "{" not in text and "<tool_call>" not in text


@pytest.mark.model
async def test_after_the_seed_result_the_answer_states_131_95(qwen: LocalLLM) -> None:
    completion = await qwen.complete(SEED_ROUND, [WEATHER, CONVERT])
    assert completion.message.tool_calls == []
    assert completion.finish_reason == "stop"
    _assert_grounded_prose(completion.message.text)
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


@pytest.mark.model
async def test_the_streamed_answer_after_the_seed_result_is_text_deltas_that_state_131_95(
    qwen: LocalLLM,
) -> None:
    events = await _events(qwen, SEED_ROUND, [WEATHER, CONVERT])
    assert isinstance(events[-1], FinishEvent)
    assert events[:-1] and all(isinstance(event, TextDeltaEvent) for event in events[:-1])
    streamed = "".join(event.text for event in events[:-1] if isinstance(event, TextDeltaEvent))
    assert streamed == events[-1].completion.message.content
    _assert_grounded_prose(streamed)
    completed = await qwen.complete(SEED_ROUND, [WEATHER, CONVERT])
    assert completed.message.content == streamed  # greedy: stream and complete agree


@pytest.mark.model
async def test_after_a_tool_error_the_answer_says_it_failed_and_invents_no_value(qwen: LocalLLM) -> None:
    messages = [
        *SEED_ROUND[:-1],
        Message(role="tool", content="Error: unsupported currency code: CAD", tool_call_id="call_seed"),
    ]
    completion = await qwen.complete(messages, [CONVERT])
    text = completion.message.text
    assert states_failure(text)
    assert invented_numbers(text, "42 USD CAD") == []


@pytest.mark.model
def test_the_answer_policy_can_be_switched_off_by_spec(smol: LocalLLM) -> None:
    assert from_spec("smollm2-135m?n_ctx=2048").answer_policy is not None
    assert from_spec("smollm2-135m?n_ctx=2048&answer_policy=off").answer_policy is None


# ----------------------------------------------------------------------------- tiny model


@pytest.mark.model
async def test_required_makes_the_tiny_model_schema_valid(smol: LocalLLM) -> None:
    completion = await smol.complete(QUERY, [CONVERT], "required", GenerationParams(max_tokens=300))
    assert completion.finish_reason == "tool_calls"
    assert len(completion.message.tool_calls) >= 1
    for call in completion.message.tool_calls:
        assert call.name == "convert_currency"
        assert call.unparsed_arguments is None
        jsonschema.validate(call.arguments, CONVERT.parameters)


@pytest.mark.model
async def test_parallel_calls_off_gives_exactly_one_call(smol: LocalLLM) -> None:
    params = GenerationParams(parallel_tool_calls=False, max_tokens=300)
    completion = await smol.complete(QUERY, [CONVERT, WEATHER], "required", params)
    assert len(completion.message.tool_calls) == 1


def test_only_the_first_call_is_kept_when_parallel_calls_are_off() -> None:
    call_a, call_b = ToolCall(name="a"), ToolCall(name="b")
    events = [
        TextDeltaEvent(text="x"),
        ToolCallStartEvent(index=0, id=call_a.id, name="a"),
        ToolCallEndEvent(index=0, call=call_a),
        ToolCallStartEvent(index=1, id=call_b.id, name="b"),
        ToolCallDeltaEvent(index=1, arguments_delta="{}"),
        ToolCallEndEvent(index=1, call=call_b),
    ]
    assert LocalLLM._keep(events, GenerationParams(parallel_tool_calls=False)) == events[:3]
    assert LocalLLM._keep(events, GenerationParams()) == events


@pytest.mark.model
async def test_max_tokens_gives_finish_length_and_real_usage(smol: LocalLLM) -> None:
    completion = await smol.complete(
        [Message.user("Tell me a long story.")], params=GenerationParams(max_tokens=7)
    )
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 7
    prompt = smol.local_model.chat_format.render(
        [Message.user("Tell me a long story.")], [], template=smol.local_model.chat_template
    )
    assert completion.usage.prompt_tokens == len(smol.local_model.tokenize(prompt))


@pytest.mark.model
async def test_a_request_grammar_shapes_the_whole_reply(smol: LocalLLM) -> None:
    params = GenerationParams(grammar='root ::= "Answer: " ("yes" | "no")', max_tokens=16)
    completion = await smol.complete([Message.user("Is the sky blue?")], params=params)
    assert completion.message.text in ("Answer: yes", "Answer: no")
    with pytest.raises(InvalidRequestError) as caught:
        await smol.complete([Message.user("Hi")], params=GenerationParams(grammar="root ::= (("))
    assert caught.value.param == "grammar"


@pytest.mark.model
async def test_a_prompt_too_long_is_an_invalid_request(smol: LocalLLM) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await smol.complete([Message.user("word " * 3000)])
    assert caught.value.param == "messages"


@pytest.mark.model
async def test_a_full_queue_refuses_with_overloaded(smol: LocalLLM) -> None:
    from fncall.engine.queue import GenerationQueue

    busy = LocalLLM(smol.local_model, GenerationQueue(max_waiting=1, retry_after_s=5))
    release = threading.Event()
    blocker = busy.queue.submit(lambda cancel: iter([release.wait()]))
    waiting = busy.stream([Message.user("hi")], params=GenerationParams(max_tokens=2))
    waiting_task = asyncio.ensure_future(collect_stream(waiting))
    while busy.queue.waiting == 0:
        await asyncio.sleep(0.01)
    with pytest.raises(OverloadedError) as caught:
        await busy.complete([Message.user("hi")])
    assert caught.value.retry_after == 5
    release.set()
    assert [item async for item in blocker] == [True]
    assert (await waiting_task).usage.completion_tokens <= 2


@pytest.mark.model
async def test_closing_a_stream_stops_generation(smol: LocalLLM) -> None:
    counters = smol.local_model.counters
    before = counters.completion_tokens
    stream = smol.stream(
        [Message.user("Count from one to five hundred.")], params=GenerationParams(max_tokens=500)
    )
    async for event in stream:
        if isinstance(event, TextDeltaEvent):
            break
    await stream.aclose()  # what a client disconnect does
    # wait for the worker to be idle: a no-op job runs only after the cancelled one ended
    assert [item async for item in smol.queue.submit(lambda cancel: iter([1]))] == [1]
    assert counters.completion_tokens - before < 50


# ----------------------------------------------------------------------------- spec factory


@pytest.mark.model
def test_from_spec_reads_alias_and_options(smol: LocalLLM) -> None:
    llm = from_spec("smollm2-135m?n_ctx=2048")
    assert llm.local_model is smol.local_model  # one load per process and settings
    assert llm.model == "smollm2-135m"
    assert from_spec(f"{smol.local_model.path}?n_ctx=2048").local_model is smol.local_model


def test_from_spec_rejects_unknown_options_and_bad_numbers() -> None:
    with pytest.raises(ConfigError, match="Unknown option"):
        from_spec("smollm2-135m?colour=red")
    with pytest.raises(ConfigError, match="whole number"):
        from_spec("smollm2-135m?n_ctx=big")
    with pytest.raises(ConfigError, match="on or off"):
        from_spec("smollm2-135m?answer_policy=maybe")
