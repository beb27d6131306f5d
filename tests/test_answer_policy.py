"""The answer policy after tool results, over a scripted backend: each rule with exact values."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from fncall.llms.answering import AnswerPolicy, is_echo, new_calls
from fncall.llms.answering.calls import open_words, retargeted, said_values
from fncall.llms.answering.facts import Fact, is_stated, missing_facts, repair_sentence, result_facts
from fncall.llms.answering.first_turn import producer_of, respelled_as_asked
from fncall.llms.answering.tool_turn import (
    ToolExchange,
    ToolTurn,
    call_key,
    content_reports_error,
    read_tool_turn,
)
from fncall.llms.base import StreamAssembler, collect_stream
from fncall.llms.scripted import Scripted
from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallEndEvent,
    ToolSpec,
    Usage,
)

CONVERT = ToolSpec(
    name="convert_currency",
    description="Convert money.",
    parameters={
        "type": "object",
        "properties": {
            "from_currency": {"type": "string"},
            "to_currency": {"type": "string"},
            "amount": {"type": "number"},
        },
    },
)
WEATHER = ToolSpec(
    name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
)
CAPITAL = ToolSpec(
    name="get_capital", parameters={"type": "object", "properties": {"country": {"type": "string"}}}
)
QUESTION = "I want to exchange 42 US dollars to Canadian dollars"
SEED_CALL = ToolCall(
    id="call_1",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)
SEED_RESULT = '{"from_currency": "USD", "to_currency": "CAD", "converted_amount": 131.95}'
GOOD_ANSWER = "42 US dollars is equivalent to 131.95 Canadian dollars."


def _string_tool(name: str, description: str, parameter: str) -> ToolSpec:
    """A tool that takes one required string."""
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": {parameter: {"type": "string"}}, "required": [parameter]},
    )


def _tool(call: ToolCall, content: str, *, is_error: bool = False) -> Message:
    return Message(role="tool", content=content, tool_call_id=call.id, name=call.name, is_error=is_error)


def _conversation(*rounds: tuple[list[ToolCall], list[str]], question: str = QUESTION) -> list[Message]:
    messages = [Message.system("You are a helpful assistant."), Message.user(question)]
    for calls, contents in rounds:
        messages.append(Message.assistant(None, calls))
        messages += [_tool(call, content) for call, content in zip(calls, contents, strict=True)]
    return messages


SEED_CONVERSATION = _conversation(([SEED_CALL], [SEED_RESULT]))


def _reply(text: str, prompt: int = 0, completion: int = 0) -> Completion:
    return Completion(
        message=Message.assistant(text), usage=Usage(prompt_tokens=prompt, completion_tokens=completion)
    )


async def _run(
    script: list[object],
    messages: list[Message],
    tools: list[ToolSpec] | None = None,
    tool_choice: object = "auto",
    policy: AnswerPolicy | None = None,
) -> tuple[Completion, list[StreamEvent], Scripted]:
    backend = Scripted(script)  # type: ignore[arg-type]
    events = [
        event
        async for event in (policy or AnswerPolicy()).stream(
            backend.stream,
            messages,
            [CONVERT] if tools is None else tools,
            tool_choice,  # type: ignore[arg-type]
        )
    ]
    assert isinstance(events[-1], FinishEvent)
    return events[-1].completion, events, backend


def _answer_prompt(backend: Scripted, index: int = 1) -> str:
    request = backend.requests[index]
    assert request.tools == [] and request.tool_choice == "none"
    return request.messages[-1].text


# ------------------------------------------------------------------------------------ repeated call


async def test_a_repeated_identical_call_is_dropped_and_an_answer_step_runs() -> None:
    repeat = SEED_CALL.model_copy(update={"id": "call_2"})
    completion, _, backend = await _run([repeat, GOOD_ANSWER], SEED_CONVERSATION)
    assert completion.message.tool_calls == []
    assert completion.message.content == GOOD_ANSWER
    assert completion.finish_reason == "stop"
    assert len(backend.requests) == 2
    answer_request = backend.requests[1]
    assert [m.role for m in answer_request.messages] == ["system", "user"]
    assert answer_request.messages[-1].text == (
        f"Question: {QUESTION}\n\n"
        "Then the tool convert_currency (from_currency: USD, to_currency: CAD, amount: 42) returned: "
        "from_currency: USD, to_currency: CAD, converted_amount: 131.95\n"
        "Using this result, answer the question in one or two sentences. State every value it gives exactly "
        "as written."
    )


def test_a_call_repeated_with_other_number_or_letter_case_counts_as_identical() -> None:
    turn = read_tool_turn(SEED_CONVERSATION)
    assert turn is not None
    loose = ToolCall(
        name="convert_currency", arguments={"amount": 42.0, "to_currency": "cad ", "from_currency": "usd"}
    )
    other = ToolCall(
        name="convert_currency", arguments={"amount": 43, "to_currency": "CAD", "from_currency": "USD"}
    )
    assert call_key(loose) == call_key(SEED_CALL)
    assert new_calls([loose, other, other], turn) == [other]


async def test_a_new_dependent_call_passes_through_untouched() -> None:
    """get_weather(Tokyo) takes its value from get_capital's result: the next call the question needs."""
    first = ToolCall(id="call_a", name="get_capital", arguments={"country": "Japan"})
    follow_up = ToolCall(id="call_b", name="get_weather", arguments={"city": "Tokyo"})
    messages = _conversation(([first], ['"Tokyo"']), question="What's the weather in the capital of Japan?")
    completion, events, backend = await _run([follow_up], messages, [CAPITAL, WEATHER])
    assert completion.message.tool_calls == [follow_up]
    assert completion.finish_reason == "tool_calls"
    assert len(backend.requests) == 1
    assert [event.call for event in events if isinstance(event, ToolCallEndEvent)] == [follow_up]


async def test_no_proposal_runs_when_the_calls_so_far_cover_every_word_of_the_question() -> None:
    """Nothing is left to look up: the answer step runs at once (one generation instead of two)."""
    messages = _conversation(([SEED_CALL], [SEED_RESULT]), question="Convert 42 USD to CAD.")
    completion, _, backend = await _run([GOOD_ANSWER], messages)
    assert completion.message.content == GOOD_ANSWER
    assert len(backend.requests) == 1 and backend.requests[0].tools == []


async def test_a_fan_out_to_a_tool_the_results_already_cover_is_dropped() -> None:
    """The question asked how many people live in a city; the country the result names is no reason to look
    the country up."""
    population = ToolSpec(
        name="get_city_population",
        description="Population of a city, with its country.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    country = ToolSpec(
        name="get_country_info",
        description="Capital and population of a country.",
        parameters={"type": "object", "properties": {"country": {"type": "string"}}},
    )
    first = ToolCall(id="call_p", name="get_city_population", arguments={"city": "Osaka"})
    messages = _conversation(
        ([first], ['{"city": "Osaka", "country": "Japan", "population": 2752412, "year": 2020}']),
        question="How many people live in Osaka?",
    )
    fan_out = ToolCall(name="get_country_info", arguments={"country": "Japan"})
    answer = "Osaka in Japan had 2752412 people in 2020."
    completion, _, backend = await _run([fan_out, answer], messages, [population, country])
    assert completion.message.content == answer
    assert len(backend.requests) == 2


async def test_a_result_number_carried_on_by_the_first_new_call_is_kept() -> None:
    """A price in USD on to a currency conversion: "in euros" shares no word with the tool's text."""
    search = ToolSpec(
        name="search_products", parameters={"type": "object", "properties": {"query": {"type": "string"}}}
    )
    first = ToolCall(id="call_s", name="search_products", arguments={"query": "desk lamp"})
    messages = _conversation(
        ([first], ['[{"name": "Aurora desk lamp", "price_usd": 48.0}]']),
        question="How much does the Aurora desk lamp cost in euros?",
    )
    convert = ToolCall(
        name="convert_currency", arguments={"amount": 48.0, "from_currency": "USD", "to_currency": "EUR"}
    )
    completion, _, _ = await _run([[convert]], messages, [search, CONVERT])
    assert completion.message.tool_calls == [convert]
    completion, _, _ = await _run(
        [[first.model_copy(update={"id": "x"}), convert], "48 USD."], messages, [search, CONVERT]
    )
    assert completion.message.tool_calls == [convert]  # first *new* call: the repeat does not count


async def test_only_the_repeated_calls_of_a_proposal_are_dropped() -> None:
    record = ToolSpec(
        name="record_expense", parameters={"type": "object", "properties": {"amount": {"type": "number"}}}
    )
    repeat = SEED_CALL.model_copy(update={"id": "call_9"})
    fresh = ToolCall(id="call_10", name="record_expense", arguments={"amount": 131.95})
    messages = _conversation(
        ([SEED_CALL], [SEED_RESULT]),
        question="Convert 42 US dollars to Canadian dollars and record the expense.",
    )
    completion, _, backend = await _run([[repeat, fresh]], messages, [CONVERT, record])
    assert completion.message.tool_calls == [fresh]
    assert len(backend.requests) == 1


async def test_a_new_call_that_does_not_need_the_results_is_dropped() -> None:
    """Made from the question's values alone, it could have come before the results: a re-ask."""
    reask = ToolCall(
        name="convert_currency", arguments={"from_currency": "USD", "to_currency": "EUR", "amount": 42}
    )
    completion, _, backend = await _run([reask, GOOD_ANSWER], SEED_CONVERSATION)
    assert completion.message.content == GOOD_ANSWER
    assert len(backend.requests) == 2


async def test_a_call_with_keys_its_tool_does_not_declare_is_dropped() -> None:
    pasted = ToolCall(name="convert_currency", arguments={"amount": 131.95, "converted_amount": 131.95})
    record = ToolSpec(
        name="record", parameters={"type": "object", "properties": {"amount": {"type": "number"}}}
    )
    pasted = pasted.model_copy(update={"name": "record"})
    completion, _, _ = await _run([pasted, GOOD_ANSWER], SEED_CONVERSATION, [CONVERT, record])
    assert completion.message.tool_calls == []


async def test_an_empty_result_asks_the_answer_step_to_say_nothing_was_found() -> None:
    call = ToolCall(id="call_r", name="list_restaurants", arguments={"city": "Chicago"})
    messages = _conversation(([call], ["[]"]), question="List the Italian restaurants in Chicago.")
    _, _, backend = await _run(["{}", "I found no Italian restaurants in Chicago."], messages)
    assert _answer_prompt(backend).endswith(
        "Then the tool list_restaurants (city: Chicago) returned nothing: no results.\n"
        "Tell the user in one sentence that nothing was found. Do not make up any results."
    )


async def test_a_call_whose_arguments_break_the_schema_is_dropped() -> None:
    strict = ToolSpec(
        name="get_weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    call = ToolCall(id="call_w", name="get_weather", arguments={"city": "Oslo"})
    messages = _conversation(
        ([call], ['{"temperature_c": -3.5}']), question="Weather in Oslo? Should I take an umbrella?"
    )
    completion, _, backend = await _run(
        [ToolCall(name="get_weather"), "It is -3.5 C in Oslo."], messages, [strict]
    )
    assert completion.message.tool_calls == []
    assert completion.message.content == "It is -3.5 C in Oslo."
    assert len(backend.requests) == 2


async def test_a_follow_up_call_with_values_nobody_mentioned_is_dropped() -> None:
    invented = ToolCall(name="get_weather", arguments={"city": "New York"})
    completion, _, backend = await _run([invented, GOOD_ANSWER], SEED_CONVERSATION, [CONVERT, WEATHER])
    assert completion.message.content == GOOD_ANSWER
    assert len(backend.requests) == 2


async def test_a_tools_number_fed_back_into_the_same_tool_is_dropped() -> None:
    again = ToolCall(
        name="convert_currency", arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 131.95}
    )
    completion, _, _ = await _run([again, GOOD_ANSWER], SEED_CONVERSATION)
    assert completion.message.tool_calls == []
    assert completion.message.content == GOOD_ANSWER


async def test_a_name_from_a_result_may_go_back_into_the_same_tool() -> None:
    lookup = ToolSpec(
        name="lookup_employee", parameters={"type": "object", "properties": {"name": {"type": "string"}}}
    )
    first = ToolCall(id="call_p", name="lookup_employee", arguments={"name": "Priya Raman"})
    messages = _conversation(
        ([first], ['{"name": "Priya Raman", "manager": "Daniel Okafor"}']),
        question="What is the email of Priya Raman's manager?",
    )
    manager = ToolCall(id="call_m", name="lookup_employee", arguments={"name": "Daniel Okafor"})
    completion, _, _ = await _run([manager], messages, [lookup])
    assert completion.message.tool_calls == [manager]


# ---------------------------------------------------------------------------------------- echoes


@pytest.mark.parametrize(
    "echo",
    [
        SEED_RESULT,
        f"```json\n{SEED_RESULT}\n```",
        '{"name": "convert_currency", "arguments": {"amount": 42}}',
        'Sure! <tool_call>\n{"name": "convert_currency"}\n</tool_call>',
    ],
)
async def test_echoed_json_is_replaced_by_an_answer_step(echo: str) -> None:
    completion, _, backend = await _run([echo, GOOD_ANSWER], SEED_CONVERSATION)
    assert completion.message.content == GOOD_ANSWER
    assert len(backend.requests) == 2


def test_prose_is_not_an_echo_but_json_and_call_objects_are() -> None:
    assert not is_echo(GOOD_ANSWER)
    assert not is_echo("The price is {roughly} 12.")
    assert is_echo("[1, 2, 3]")
    assert is_echo('Here it is: {"name": "get_weather", "arguments": {}}')


async def test_a_proposal_that_already_states_every_value_is_kept_without_an_answer_step() -> None:
    completion, _, backend = await _run([_reply(GOOD_ANSWER, 300, 12)], SEED_CONVERSATION)
    assert completion.message.content == GOOD_ANSWER
    assert completion.usage == Usage(prompt_tokens=300, completion_tokens=12)
    assert len(backend.requests) == 1


async def test_a_proposal_that_misses_a_value_gets_an_answer_step() -> None:
    _, _, backend = await _run(["That is about 132 Canadian dollars.", GOOD_ANSWER], SEED_CONVERSATION)
    assert len(backend.requests) == 2


# ------------------------------------------------------------------------------------ tool errors


WEATHER_CALL = ToolCall(id="call_w", name="get_weather", arguments={"city": "Atlantis"})
ERROR_CONVERSATION = [
    Message.user("What's the weather in Atlantis?"),
    Message.assistant(None, [WEATHER_CALL]),
    _tool(WEATHER_CALL, "Error: unknown city: Atlantis"),
]


async def test_a_tool_error_reaches_the_answer_step_as_an_error() -> None:
    answer = "Sorry, the weather tool failed because Atlantis is an unknown city."
    completion, events, backend = await _run([answer], ERROR_CONVERSATION, [WEATHER])
    assert completion.message.content == answer
    assert len(backend.requests) == 1  # no proposal after an error: the answer must report it
    assert _answer_prompt(backend, 0) == (
        "Question: What's the weather in Atlantis?\n\n"
        "Then the tool get_weather (city: Atlantis) failed with this error: unknown city: Atlantis\n"
        "Tell the user in one sentence that the tool failed and why. Do not guess or make up an answer."
    )
    assert [event.text for event in events if isinstance(event, TextDeltaEvent)] == [answer]


@pytest.mark.parametrize(
    "invented", ["The weather in Atlantis is 21 degrees and sunny.", "It is sunny in Atlantis today."]
)
async def test_an_answer_after_an_error_that_invents_or_hides_the_failure_is_replaced(invented: str) -> None:
    completion, _, _ = await _run([invented], ERROR_CONVERSATION, [WEATHER])
    assert completion.message.content == "The tool get_weather failed: unknown city: Atlantis"


def test_errors_are_recognised_without_the_error_flag() -> None:
    assert content_reports_error("Error: unknown city")
    assert content_reports_error('{"error": "order not found"}')
    assert content_reports_error('{"success": false, "message": "quota exceeded"}')
    assert not content_reports_error('{"error": null, "value": 3}')
    assert not content_reports_error("The error margin is 3%.")  # prose that mentions errors is data


# ------------------------------------------------------------------------------- several results


async def test_several_results_in_a_row_are_answered_one_at_a_time() -> None:
    eur = ToolCall(
        id="call_e",
        name="convert_currency",
        arguments={"from_currency": "USD", "to_currency": "EUR", "amount": 10},
    )
    gbp = ToolCall(
        id="call_g",
        name="convert_currency",
        arguments={"from_currency": "USD", "to_currency": "GBP", "amount": 10},
    )
    messages = _conversation(
        ([eur, gbp], ['{"converted_amount": 9.2}', '{"converted_amount": 7.9}']),
        question="Convert 10 USD to EUR and to GBP.",
    )
    completion, events, backend = await _run(["10 USD is 9.2 EUR.", "10 USD is 7.9 GBP."], messages)
    assert completion.message.content == "10 USD is 9.2 EUR. 10 USD is 7.9 GBP."
    assert "9.2" in _answer_prompt(backend, 0) and "7.9" not in _answer_prompt(backend, 0)
    assert "7.9" in _answer_prompt(backend, 1) and "Earlier, the tool convert_currency" in _answer_prompt(
        backend, 1
    )
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == completion.message.content


async def test_earlier_results_of_the_question_come_along_as_context() -> None:
    first = ToolCall(id="call_a", name="get_capital", arguments={"country": "Japan"})
    second = ToolCall(id="call_b", name="get_weather", arguments={"city": "Tokyo"})
    messages = _conversation(
        ([first], ['"Tokyo"']),
        ([second], ['{"temperature_c": 21.4}']),
        question="Weather in Japan's capital?",
    )
    completion, _, backend = await _run(["It is 21.4 C in Tokyo."], messages, [CAPITAL, WEATHER])
    assert completion.message.content == "It is 21.4 C in Tokyo."
    prompt = _answer_prompt(backend, 0)
    assert "Earlier, the tool get_capital (country: Japan) returned: Tokyo\n" in prompt
    assert "Then the tool get_weather (city: Tokyo) returned: temperature_c: 21.4\n" in prompt


# ---------------------------------------------------------------------------------- list results


FLIGHTS = [{"flight": f"XY{100 + n}", "departs": f"0{n}:15"} for n in range(8)]


async def test_a_long_list_asks_for_the_first_items_and_the_count() -> None:
    call = ToolCall(id="call_f", name="search_flights", arguments={"origin": "Paris"})
    messages = _conversation(([call], [json.dumps(FLIGHTS)]), question="Which flights leave Paris?")
    answer = "There are 8 flights: " + ", ".join(f"XY{100 + n} at 0{n}:15" for n in range(5)) + "."
    completion, _, backend = await _run(["{}", answer], messages)
    assert "The result lists 8 items: name the first 5 and say there are 8 in total." in _answer_prompt(
        backend
    )
    assert completion.message.content == answer


def test_list_facts_are_the_first_items_and_the_count() -> None:
    call = ToolCall(id="c", name="search_flights", arguments={})
    facts = result_facts(ToolExchange(call, _tool(call, json.dumps(FLIGHTS))))
    assert [fact.text for fact in facts] == [
        "XY100",
        "00:15",
        "XY101",
        "01:15",
        "XY102",
        "02:15",
        "XY103",
        "03:15",
        "XY104",
        "04:15",
        "8",
    ]
    assert facts[1] == Fact("00:15", "departs", "XY100")


async def test_a_list_answer_that_leaves_items_out_is_completed() -> None:
    call = ToolCall(id="call_n", name="get_news", arguments={"symbol": "NVDA"})
    result = json.dumps(
        {"symbol": "NVDA", "headlines": ["Chips unveiled", "Shares hit record", "New partner"]}
    )
    messages = _conversation(([call], [result]), question="News for NVDA?")
    completion, _, _ = await _run(["NVDA news: Chips unveiled."], messages)
    assert completion.message.content == (
        "NVDA news: Chips unveiled. From the result: headlines: Shares hit record; headlines: New partner."
    )


# ----------------------------------------------------------------------------------- verification


async def test_an_answer_that_rounds_a_value_is_repaired_with_the_exact_value() -> None:
    completion, events, _ = await _run(["{}", "That is about 132 Canadian dollars."], SEED_CONVERSATION)
    assert completion.message.content == (
        "That is about 132 Canadian dollars. From the result: converted amount: 131.95."
    )
    texts = [event.text for event in events if isinstance(event, TextDeltaEvent)]
    assert texts == ["That is about 132 Canadian dollars.", " From the result: converted amount: 131.95."]


async def test_verification_off_keeps_the_answer_as_written() -> None:
    completion, _, _ = await _run(
        ["{}", "That is about 132 Canadian dollars."], SEED_CONVERSATION, policy=AnswerPolicy(verify=False)
    )
    assert completion.message.content == "That is about 132 Canadian dollars."


@pytest.mark.parametrize(
    ("answer", "stated"),
    [
        ("It is 131.95 CAD.", True),
        ("It is 131.950 CAD.", True),
        ("It is about 132 CAD.", False),
        ("It is 1131.95 CAD.", False),
    ],
)
def test_a_number_is_stated_only_exactly(answer: str, stated: bool) -> None:
    assert is_stated(Fact(131.95), answer) is stated


def test_numbers_match_with_thousands_separators_and_signs_as_words() -> None:
    assert is_stated(Fact(522250), "Lyon has 522,250 inhabitants.")
    assert is_stated(Fact(-3.5), "It is 3.5 degrees below zero.")
    assert is_stated(Fact("light snow"), "Expect Light-Snow today.")
    assert not is_stated(Fact("snow"), "Expect snowfall.")


def test_the_calls_own_arguments_and_the_questions_words_are_not_required() -> None:
    call = ToolCall(id="c", name="get_weather", arguments={"city": "Oslo"})
    result = json.dumps(
        {"city": "Oslo", "temperature_c": -3.5, "condition": "light snow", "humidity_pct": 81, "sunny": False}
    )
    facts = result_facts(ToolExchange(call, _tool(call, result)), known_text="Is there light snow in Oslo?")
    assert facts == [Fact(-3.5, "temperature c"), Fact(81, "humidity pct")]
    assert missing_facts("It is -3.5 C.", facts) == [Fact(81, "humidity pct")]
    assert repair_sentence([Fact(81, "humidity pct")]) == "From the result: humidity pct: 81."


def test_a_plain_text_result_is_a_fact_when_short_and_gives_its_numbers_when_long() -> None:
    call = ToolCall(id="c", name="lookup", arguments={})
    assert result_facts(ToolExchange(call, _tool(call, "Tokyo"))) == [Fact("Tokyo")]
    long_text = "The population was 13,960,000 in 2023 according to the census office."
    assert result_facts(ToolExchange(call, _tool(call, long_text))) == [Fact(13960000), Fact(2023)]


# ------------------------------------------------------------------------------ protocol details


async def test_stream_and_complete_give_the_same_completion_and_valid_events() -> None:
    script = [_reply("{}", 290, 20), _reply("That is about 132 Canadian dollars.", 90, 9)]
    completion, events, _ = await _run(list(script), SEED_CONVERSATION)
    backend = Scripted(list(script))  # type: ignore[arg-type]
    collected = await collect_stream(AnswerPolicy().stream(backend.stream, SEED_CONVERSATION, [CONVERT]))
    assert collected == completion
    assembler = StreamAssembler()
    for event in events[:-1]:
        assembler.add(event)
    assert assembler.message() == completion.message
    assert all(isinstance(event, TextDeltaEvent) for event in events[:-1])


async def test_usage_counts_every_generation() -> None:
    script = [_reply("{}", 290, 20), _reply(GOOD_ANSWER, 90, 12)]
    completion, _, _ = await _run(script, SEED_CONVERSATION)
    assert completion.usage == Usage(prompt_tokens=380, completion_tokens=32)


async def test_null_content_array_like_text_and_unknown_call_ids_are_accepted() -> None:
    orphan = Message(role="tool", content="42", tool_call_id="call_unknown", name="lookup")
    messages = [
        Message.user("What is the answer?"),
        Message.assistant(None, [SEED_CALL]),
        _tool(SEED_CALL, SEED_RESULT),
        orphan,
    ]
    completion, _, backend = await _run(["{}", "It is 131.95 CAD.", "The answer is 42."], messages)
    assert completion.message.content == "It is 131.95 CAD. The answer is 42."
    assert "Then the tool lookup returned: 42" in _answer_prompt(backend, 2)


@pytest.mark.parametrize(
    ("tool_choice", "params"),
    [
        ("required", GenerationParams()),
        ({"name": "convert_currency"}, GenerationParams()),
        ("auto", GenerationParams(response_format={"type": "json_object"})),
    ],
)
async def test_the_policy_stays_out_when_the_client_demands_a_call_or_json(
    tool_choice: object, params: GenerationParams
) -> None:
    backend = Scripted([SEED_RESULT])
    events = AnswerPolicy().stream(backend.stream, SEED_CONVERSATION, [CONVERT], tool_choice, params)  # type: ignore[arg-type]
    completion = await collect_stream(events)
    assert completion.message.content == SEED_RESULT
    assert len(backend.requests) == 1


async def test_tool_choice_none_goes_straight_to_the_answer_step() -> None:
    completion, _, backend = await _run([GOOD_ANSWER], SEED_CONVERSATION, tool_choice="none")
    assert completion.message.content == GOOD_ANSWER
    assert backend.requests[0].tools == []


async def test_a_conversation_that_does_not_end_with_results_is_passed_through() -> None:
    completion, _, backend = await _run(["Hello there!"], [Message.user("Say hello.")])
    assert completion.message.content == "Hello there!"
    assert backend.requests[0].tools == [CONVERT]


# ---------------------------------------------------------------------------------- no tool fits


async def test_a_first_call_with_invented_arguments_gives_way_to_an_answer_without_tools() -> None:
    guess = ToolCall(
        name="convert_currency", arguments={"from_currency": "USD", "to_currency": "EUR", "amount": 100}
    )
    proposal = Completion(
        message=Message.assistant(tool_calls=[guess]),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=200, completion_tokens=30),
    )
    messages = [Message.user("Say hello in one short sentence.")]
    completion, events, backend = await _run([proposal, _reply("Hello!", 20, 3)], messages)
    assert completion.message.tool_calls == []
    assert completion.message.content == "Hello!"
    assert completion.usage == Usage(prompt_tokens=220, completion_tokens=33)
    assert backend.requests[1].tools == [] and backend.requests[1].tool_choice == "none"
    assert backend.requests[1].messages == messages
    assert [type(event) for event in events] == [TextDeltaEvent, FinishEvent]


async def test_a_first_call_that_uses_the_questions_values_is_kept() -> None:
    completion, events, backend = await _run([SEED_CALL], [Message.user(QUESTION)])
    assert completion.message.tool_calls == [SEED_CALL]
    assert len(backend.requests) == 1
    assert [event.call for event in events if isinstance(event, ToolCallEndEvent)] == [SEED_CALL]


async def test_first_turn_screening_can_be_switched_off() -> None:
    guess = ToolCall(name="convert_currency", arguments={"amount": 100})
    completion, _, _ = await _run(
        [guess], [Message.user("Say hello.")], policy=AnswerPolicy(screen_first_calls=False)
    )
    assert completion.message.tool_calls == [guess]


# ------------------------------------------------------------------------------- held-back JSON


def _deltas_backend(*answers: list[str]) -> tuple[object, list[list[Message]]]:
    """A raw generation that proposes nothing new, then streams each answer step as the given deltas."""
    asked: list[list[Message]] = []
    replies = iter(answers)

    async def generate(
        messages: object, tools: object, tool_choice: object, params: object
    ) -> AsyncIterator[StreamEvent]:
        asked.append(list(messages))  # type: ignore[call-overload]
        if tools:
            completion = _reply("")
        else:
            pieces = next(replies)
            for piece in pieces:
                yield TextDeltaEvent(text=piece)
            completion = _reply("".join(pieces), 50, len(pieces))
        yield FinishEvent(completion=completion)

    return generate, asked


async def test_an_answer_that_turns_into_json_is_cut_and_completed_from_the_result() -> None:
    generate, _ = _deltas_backend(["It is ", '{"converted_amount": ', "131.95}"])
    events = [event async for event in AnswerPolicy().stream(generate, SEED_CONVERSATION, [CONVERT])]  # type: ignore[arg-type]
    texts = [event.text for event in events if isinstance(event, TextDeltaEvent)]
    assert texts == ["It is ", "From the result: converted amount: 131.95."]  # no double space
    final = events[-1]
    assert isinstance(final, FinishEvent)
    assert final.completion.message.content == "".join(texts)
    assert final.completion.usage == Usage(prompt_tokens=50, completion_tokens=3)


async def test_held_back_text_that_is_not_json_is_sent_at_the_end() -> None:
    generate, _ = _deltas_backend(["42 USD ", "[cash] is ", "131.95 CAD."])
    events = [event async for event in AnswerPolicy().stream(generate, SEED_CONVERSATION, [CONVERT])]  # type: ignore[arg-type]
    texts = [event.text for event in events if isinstance(event, TextDeltaEvent)]
    assert texts == ["42 USD ", "[cash] is 131.95 CAD."]
    final = events[-1]
    assert isinstance(final, FinishEvent)
    assert final.completion.message.content == "".join(texts)


async def test_a_first_call_with_the_models_own_values_is_kept_when_the_question_names_its_tool() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Tokyo"})
    completion, _, backend = await _run(
        [call], [Message.user("What's the weather in the capital of Japan?")], [WEATHER]
    )
    assert completion.message.tool_calls == [call]
    assert len(backend.requests) == 1


async def test_a_first_call_that_respells_the_questions_words_is_kept_with_the_questions_spelling() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Lisboa"})
    completion, _, backend = await _run(
        [call], [Message.user("How warm is it in Lisbon right now?")], [CONVERT, WEATHER]
    )
    assert completion.message.tool_calls == [call.model_copy(update={"arguments": {"city": "Lisbon"}})]
    assert len(backend.requests) == 1


def test_respelling_keeps_words_that_extend_or_equal_the_questions() -> None:
    question = "Which Japanese city did Lisbon twin with?"
    kept = ToolCall(name="get_country_info", arguments={"country": "Japan", "note": ["lisbon", 7]})
    assert respelled_as_asked(kept, question) is kept
    mixed = ToolCall(name="f", arguments={"places": ["Lisboa", "Japanes"], "text": "near Lisboa today"})
    assert respelled_as_asked(mixed, question).arguments == {
        "places": ["Lisbon", "Japanes"],
        "text": "near Lisbon today",
    }


# ------------------------------------------------------------------------------ first-turn re-asks

CITY = {"type": "string", "description": "City name, e.g. Paris"}
LOCAL_TIME = ToolSpec(
    name="get_local_time",
    description="The local time in a city.",
    parameters={"type": "object", "properties": {"city": CITY}, "required": ["city"]},
)
FLIGHT_STATUS = _string_tool(
    "get_flight_status", "Status of a flight: origin, destination and gate.", "flight"
)
LANDING_QUESTION = "What is the local time now in the city where flight LH430 lands?"


def _calls(*calls: ToolCall) -> Completion:
    return Completion(
        message=Message.assistant(tool_calls=list(calls)),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=100, completion_tokens=10),
    )


async def test_a_first_call_with_a_copied_schema_example_is_asked_again_without_the_example() -> None:
    copied = ToolCall(name="get_local_time", arguments={"city": "Paris"})
    status = ToolCall(name="get_flight_status", arguments={"flight": "LH430"})
    completion, events, backend = await _run(
        [_calls(copied), _calls(status)], [Message.user(LANDING_QUESTION)], [LOCAL_TIME, FLIGHT_STATUS]
    )
    assert completion.message.tool_calls == [status]
    assert completion.usage == Usage(prompt_tokens=200, completion_tokens=20)
    retried_tools = backend.requests[1].tools
    assert [tool.name for tool in retried_tools] == ["get_local_time", "get_flight_status"]
    assert retried_tools[0].parameters["properties"]["city"]["description"] == "City name"
    assert [event.call for event in events if isinstance(event, ToolCallEndEvent)] == [status]


async def test_a_first_call_guessing_a_value_from_memory_is_asked_again_without_its_tool() -> None:
    capital = ToolSpec(
        name="get_country_info",
        description="Capital of a country.",
        parameters={"type": "object", "properties": {"country": {"type": "string"}}},
    )
    guess = ToolCall(name="get_weather", arguments={"city": "Tokyo"})
    lookup = ToolCall(name="get_country_info", arguments={"country": "Japan"})
    question = "What's the weather in the capital of Japan? Look up the capital first."
    completion, _, backend = await _run(
        [_calls(guess), _calls(lookup)], [Message.user(question)], [WEATHER, capital]
    )
    assert completion.message.tool_calls == [lookup]
    assert [tool.name for tool in backend.requests[1].tools] == ["get_country_info"]


async def test_a_re_ask_that_guesses_again_keeps_the_first_call() -> None:
    guess = ToolCall(name="get_weather", arguments={"city": "Tokyo"})
    other_guess = ToolCall(name="get_capital", arguments={"country": "Atlantis"})
    completion, _, backend = await _run(
        [_calls(guess), _calls(other_guess)],
        [Message.user("What's the weather in the capital of Japan?")],
        [WEATHER, CAPITAL],
    )
    assert completion.message.tool_calls == [guess]
    assert len(backend.requests) == 2  # the second re-ask has no tool left to offer
    assert completion.usage == Usage(prompt_tokens=200, completion_tokens=20)


async def test_re_asking_can_be_switched_off() -> None:
    guess = ToolCall(name="get_weather", arguments={"city": "Tokyo"})
    completion, _, backend = await _run(
        [_calls(guess)],
        [Message.user("What's the weather in the capital of Japan?")],
        [WEATHER, CAPITAL],
        policy=AnswerPolicy(reselections=0),
    )
    assert completion.message.tool_calls == [guess]
    assert len(backend.requests) == 1


async def test_a_value_the_question_labels_as_another_tools_is_asked_again_without_the_tool() -> None:
    order = ToolSpec(
        name="get_order_status",
        description="Status of a shop order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
    )
    parcel = ToolSpec(
        name="track_package",
        description="Where a parcel is now.",
        parameters={"type": "object", "properties": {"tracking_number": {"type": "string"}}},
    )
    wrong = ToolCall(name="track_package", arguments={"tracking_number": "X-00000"})
    right = ToolCall(name="get_order_status", arguments={"order_id": "X-00000"})
    completion, _, backend = await _run(
        [_calls(wrong), _calls(right)], [Message.user("Where is my order X-00000?")], [order, parcel]
    )
    assert completion.message.tool_calls == [right]
    assert [tool.name for tool in backend.requests[1].tools] == ["get_order_status"]


async def test_first_call_keys_the_schema_does_not_declare_are_dropped() -> None:
    copied = ToolCall(name="get_weather", arguments={"city": "Lisbon", "required": ["city"]})
    completion, _, _ = await _run([_calls(copied)], [Message.user("Weather in Lisbon?")], [WEATHER, CAPITAL])
    assert completion.message.tool_calls == [copied.model_copy(update={"arguments": {"city": "Lisbon"}})]


async def test_a_prose_answer_to_a_question_that_names_a_tool_becomes_a_forced_call() -> None:
    search = ToolSpec(
        name="search_products",
        description="Search the shop's catalogue; returns products with their price.",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}},
    )
    call = ToolCall(name="search_products", arguments={"query": "USB-C cables"})
    completion, events, backend = await _run(
        ["The shop sells many cables at $19.99.", _calls(call)],
        [Message.user("Which USB-C cables does the shop sell, and at what prices?")],
        [search, CONVERT],
    )
    assert completion.message.tool_calls == [call]
    assert backend.requests[1].tool_choice == {"name": "search_products"}
    assert backend.requests[1].tools == [search]
    assert not [event for event in events if isinstance(event, TextDeltaEvent)]  # the prose never left


async def test_prose_that_describes_a_call_by_the_tools_name_becomes_that_call() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Lisbon"})
    completion, _, backend = await _run(
        ["To find out, you can call the `get_weather` function with the city.", _calls(call)],
        [Message.user("Is it raining in Lisbon?")],
        [WEATHER, CONVERT],
    )
    assert completion.message.tool_calls == [call]
    assert backend.requests[1].tools == [WEATHER]
    assert backend.requests[1].tool_choice == {"name": "get_weather"}
    assert completion.message.text.startswith("To find out")  # already streamed: kept beside the call


async def test_a_described_call_is_still_checked_and_dropped_when_it_is_a_guess() -> None:
    guess = ToolCall(name="convert_currency", arguments={"from_currency": "EUR", "to_currency": "GBP"})
    completion, _, backend = await _run(
        ["I could use convert_currency, but a haiku needs no tool: Autumn leaves fall.", _calls(guess)],
        [Message.user("Write a haiku about autumn.")],
        [WEATHER, CONVERT],
    )
    assert completion.message.tool_calls == []
    assert completion.message.text.startswith("I could use convert_currency")
    assert len(backend.requests) == 2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Call the `get_weather` function.", "get_weather"),
        ("Use get_weather with the city.", "get_weather"),  # an identifier by its underscore
        ("Use 'weather' for that.", "weather"),  # a plain word counts only when quoted
        ("The weather is fine today.", None),
        ("Call get_weather or convert_currency.", None),  # two tools named: no guess at which
        ("See the get_weather_v2 docs.", None),  # a longer identifier is not the tool's name
    ],
)
def test_described_tool_reads_names_written_as_identifiers(text: str, named: str | None) -> None:
    from fncall.llms.answering.first_turn import described_tool

    plain = ToolSpec(name="weather", parameters={"type": "object", "properties": {}})
    found = described_tool(text, [WEATHER, CONVERT, plain])
    assert (found.name if found else None) == named


async def test_every_generation_the_policy_adds_asks_for_the_templates_tool_json() -> None:
    described = "You can call the `get_weather` function."
    call = ToolCall(name="get_weather", arguments={"city": "Lisbon"})
    _, _, backend = await _run(
        [described, _calls(call)], [Message.user("Is it raining in Lisbon?")], [WEATHER, CONVERT]
    )
    assert backend.requests[0].params.compact_tools is None  # the first attempt: the backend's choice
    assert backend.requests[1].params.compact_tools is False
    _, _, backend = await _run(["{}", GOOD_ANSWER], SEED_CONVERSATION)
    assert backend.requests[0].params.compact_tools is False  # a proposal after results


async def test_proposals_after_results_are_cut_short() -> None:
    _, _, backend = await _run(["{}", GOOD_ANSWER], SEED_CONVERSATION)
    proposal = backend.requests[0].params
    assert proposal.max_tool_calls == 1 and proposal.max_tokens == 160


# --------------------------------------------------------------------- chains: producers and references


FIND_BOOK = _string_tool("find_book", "Look up a book by title: author, ISBN and year.", "title")
AVAILABILITY = _string_tool(
    "check_library_availability", "How many copies of a book the library can lend now.", "isbn"
)
BOOK_QUESTION = "Can I borrow 'The Left Hand of Darkness' from the library now?"


async def test_a_first_call_guessing_what_another_tool_gives_becomes_a_call_to_that_tool() -> None:
    guess = ToolCall(name="check_library_availability", arguments={"isbn": "9780000000000"})
    lookup = ToolCall(name="find_book", arguments={"title": "The Left Hand of Darkness"})
    completion, _, backend = await _run(
        [_calls(guess), _calls(lookup)], [Message.user(BOOK_QUESTION)], [AVAILABILITY, FIND_BOOK, WEATHER]
    )
    assert completion.message.tool_calls == [lookup]
    assert backend.requests[1].tools == [FIND_BOOK]
    assert backend.requests[1].tool_choice == {"name": "find_book"}
    assert completion.usage == Usage(prompt_tokens=200, completion_tokens=20)


async def test_a_forced_producer_call_that_guesses_too_falls_back_to_the_re_asks() -> None:
    guess = ToolCall(name="check_library_availability", arguments={"isbn": "9780000000000"})
    invented = ToolCall(name="find_book", arguments={"title": "Dune"})
    lookup = ToolCall(name="find_book", arguments={"title": "The Left Hand of Darkness"})
    completion, _, backend = await _run(
        [_calls(guess), _calls(invented), _calls(lookup)],
        [Message.user(BOOK_QUESTION)],
        [AVAILABILITY, FIND_BOOK],
    )
    assert completion.message.tool_calls == [lookup]
    assert [tool.name for tool in backend.requests[2].tools] == ["find_book"]  # the re-ask without its tool


def test_a_producer_names_the_guessed_parameter_and_does_not_take_it() -> None:
    guess = ToolCall(name="check_library_availability", arguments={"isbn": "9780000000000"})
    assert producer_of(guess, ["9780000000000"], [AVAILABILITY, FIND_BOOK, WEATHER]) == FIND_BOOK
    assert producer_of(guess, [], [AVAILABILITY, FIND_BOOK]) is None
    rival = FIND_BOOK.model_copy(update={"name": "find_edition"})
    assert producer_of(guess, ["9780000000000"], [AVAILABILITY, FIND_BOOK, rival]) is None
    taker = FIND_BOOK.model_copy(
        update={"parameters": {"type": "object", "properties": {"isbn": {"type": "string"}}}}
    )
    assert producer_of(guess, ["9780000000000"], [AVAILABILITY, taker]) is None


EMPLOYEE = _string_tool("lookup_employee", "Company directory: an employee's email and manager.", "name")
MANAGER_QUESTION = "What is the email address of Priya Raman's manager?"
PRIYA = ToolCall(id="call_p", name="lookup_employee", arguments={"name": "Priya Raman"})
PRIYA_RESULT = '{"email": "priya.raman@example.com", "manager": "Daniel Okafor"}'
DANIEL = ToolCall(id="call_d", name="lookup_employee", arguments={"name": "Daniel Okafor"})
DANIEL_RESULT = '{"email": "daniel.okafor@example.com", "manager": "Mei Lin"}'


def _turn(*rounds: tuple[list[ToolCall], list[str]], question: str) -> ToolTurn:
    turn = read_tool_turn(_conversation(*rounds, question=question))
    assert turn is not None
    return turn


def test_a_repeated_call_is_retargeted_at_the_record_the_question_names() -> None:
    turn = _turn(([PRIYA], [PRIYA_RESULT]), question=MANAGER_QUESTION)
    target = retargeted(PRIYA, turn, [EMPLOYEE, WEATHER], {"addre"})
    assert target is not None and target.arguments == {"name": "Daniel Okafor"}
    of_form = _turn(([PRIYA], [PRIYA_RESULT]), question="What is the email of the manager of Priya Raman?")
    assert retargeted(PRIYA, of_form, [EMPLOYEE], set()) is not None
    plain = _turn(([PRIYA], [PRIYA_RESULT]), question="What is Priya Raman's email?")
    assert retargeted(PRIYA, plain, [EMPLOYEE], set()) is None
    assert retargeted(PRIYA, turn, [EMPLOYEE, WEATHER], {"weath"}) is None  # another tool is the next step


async def test_after_results_a_repeated_call_follows_the_questions_reference() -> None:
    conversation = _conversation(([PRIYA], [PRIYA_RESULT]), question=MANAGER_QUESTION)
    repeat = PRIYA.model_copy(update={"id": "call_again"})
    completion, _, backend = await _run([_calls(repeat)], conversation, [EMPLOYEE])
    assert [call.arguments for call in completion.message.tool_calls] == [{"name": "Daniel Okafor"}]
    assert len(backend.requests) == 1


async def test_after_the_referenced_record_its_own_references_are_not_followed() -> None:
    conversation = _conversation(
        ([PRIYA], [PRIYA_RESULT]), ([DANIEL], [DANIEL_RESULT]), question=MANAGER_QUESTION
    )
    manager_of_manager = ToolCall(name="lookup_employee", arguments={"name": "Mei Lin"})
    answer = "Priya Raman's manager is Daniel Okafor, email daniel.okafor@example.com."
    completion, _, backend = await _run([_calls(manager_of_manager), answer], conversation, [EMPLOYEE])
    assert completion.message.tool_calls == []
    assert backend.requests[1].tool_choice == "none"


STOCK = _string_tool("get_stock_price", "Latest share price by ticker symbol.", "symbol")
TOYOTA_QUESTION = "What does one Toyota share (ticker 7203.T) cost in US dollars?"
TOYOTA = ToolCall(id="call_t", name="get_stock_price", arguments={"symbol": "7203.T"})
TOYOTA_RESULT = '{"price": 2650.5, "currency": "JPY"}'


async def test_a_repeated_call_is_asked_again_in_a_fresh_turn_without_its_tool() -> None:
    conversation = _conversation(([TOYOTA], [TOYOTA_RESULT]), question=TOYOTA_QUESTION)
    convert = ToolCall(
        name="convert_currency", arguments={"amount": 2650.5, "from_currency": "JPY", "to_currency": "USD"}
    )
    repeat = TOYOTA.model_copy(update={"id": "call_again"})
    completion, _, backend = await _run([_calls(repeat), _calls(convert)], conversation, [STOCK, CONVERT])
    assert completion.message.tool_calls == [convert]
    follow_up = backend.requests[1]
    assert follow_up.tools == [CONVERT] and follow_up.tool_choice == "auto"
    assert [message.role for message in follow_up.messages] == ["system", "user"]
    assert follow_up.messages[-1].text == (
        f"Question: {TOYOTA_QUESTION}\n\n"
        "Then the tool get_stock_price (symbol: 7203.T) returned: price: 2650.5, currency: JPY\n"
        "Call the tool that the question still needs, with values from the result."
    )


async def test_a_fresh_turn_that_calls_nothing_new_leads_to_the_answer_step() -> None:
    conversation = _conversation(([TOYOTA], [TOYOTA_RESULT]), question=TOYOTA_QUESTION)
    repeat = TOYOTA.model_copy(update={"id": "call_again"})
    answer = "One Toyota share costs 2650.5 JPY."
    completion, _, backend = await _run(
        [_calls(repeat), '{"name": "get_stock_price"}', answer], conversation, [STOCK, CONVERT]
    )
    assert completion.message.content == answer
    assert len(backend.requests) == 3 and backend.requests[2].tool_choice == "none"


def test_codes_among_the_values_hold_the_words_they_abbreviate() -> None:
    convert = ToolCall(
        id="call_u", name="convert_units", arguments={"value": 26.2, "from_unit": "mi", "to_unit": "km"}
    )
    units = ToolSpec(name="convert_units", description="Convert a value between units.")
    turn = _turn(([convert], ['{"result": 42.16}']), question="Convert 26.2 miles to kilometers.")
    assert open_words(turn, [units]) == set()
    quote = ToolCall(id="call_q", name="get_stock_price", arguments={"symbol": "AAPL"})
    turn = _turn(([quote], ['{"price": 227.48}']), question="Apple's share price in Japanese yen, please")
    assert open_words(turn, [STOCK]) == {"japan"}  # JPY is not an abbreviation of "Japanese"


def test_a_follow_up_must_use_values_that_were_said() -> None:
    turn = _turn(([TOYOTA], [TOYOTA_RESULT]), question=TOYOTA_QUESTION)
    to_usd = {"amount": 2650.5, "from_currency": "JPY", "to_currency": "USD"}
    assert said_values(ToolCall(name="convert_currency", arguments=to_usd), turn)
    to_eur = {**to_usd, "to_currency": "EUR"}
    assert not said_values(ToolCall(name="convert_currency", arguments=to_eur), turn)
    assert not said_values(ToolCall(name="get_country_info", arguments={"country": "Japan"}), turn)


async def test_a_fresh_turn_call_with_a_value_nobody_said_is_dropped() -> None:
    conversation = _conversation(([TOYOTA], [TOYOTA_RESULT]), question=TOYOTA_QUESTION)
    to_eur = ToolCall(
        name="convert_currency", arguments={"amount": 2650.5, "from_currency": "JPY", "to_currency": "EUR"}
    )
    repeat = TOYOTA.model_copy(update={"id": "call_again"})
    answer = "One Toyota share costs 2650.5 JPY."
    completion, _, backend = await _run(
        [_calls(repeat), _calls(to_eur), answer], conversation, [STOCK, CONVERT]
    )
    assert completion.message.tool_calls == [] and completion.message.content == answer
    assert backend.requests[2].tool_choice == "none"


def test_a_code_holds_the_run_of_words_it_abbreviates() -> None:
    convert = ToolCall(
        id="call_c",
        name="convert_currency",
        arguments={"amount": 250, "from_currency": "EUR", "to_currency": "JPY"},
    )
    turn = _turn(([convert], ['{"converted": 40512.5}']), question="How much is 250 euros in Japanese yen?")
    assert open_words(turn, [CONVERT]) == set()
