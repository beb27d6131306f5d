"""The grounding evaluation's instrument: matching, scoring, fake tools, the HTTP driver against a real local
server over a Scripted backend, the agent driver, the report and the CLI. No model runs here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fncall.evals.cli import eval_app
from fncall.evals.grounding import (
    CASES,
    CATEGORIES,
    GroundingCase,
    MadeCall,
    OpenAIClientDriver,
    ReportMeta,
    TargetRun,
    Transcript,
    render_markdown,
    run_cases,
    run_fake_tool,
    score_case,
    select_cases,
    summarise,
    write_report,
)
from fncall.evals.grounding.agents import AgentDriver
from fncall.evals.grounding.cases import ExpectedCall
from fncall.evals.grounding.matching import (
    contains_call_object,
    contains_value,
    invented_numbers,
    is_json_only,
    mentions_failure,
    numbers_in,
)
from fncall.evals.grounding.report import issue_targets_line, results_table
from fncall.evals.grounding.results import CaseResult
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.server.llm_api import create_llm_app
from fncall.types import Message, ToolCall

CASES_BY_ID = {case.id: case for case in CASES}


def _case(case_id: str) -> GroundingCase:
    return CASES_BY_ID[case_id]


# ------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("answer", "expected", "found"),
    [
        ("Nvidia trades at 131.95 USD.", "131.95", True),
        ("Nvidia trades at $131.950 today.", "131.95", True),
        ("Nvidia trades at about 132 USD.", "131.95", False),
        ("Nvidia trades at 1131.95 USD.", "131.95", False),
        ("It holds 1,500 items.", "1500", True),
        ("It holds 1500.00 items.", "1,500", True),
        ("Nairobi has 4,397,073 people.", "4397073", True),
        ("Nairobi has 4.4 million people.", "4397073", False),
        ("Apple is down 1.32% today.", "1.32", True),
        ("The currency is KES.", "KES", True),
        ("Everyone likes Kenya.", "KES", False),
        ("The shop is in berlin.", "Berlin", True),
        ("Holidays include St Patrick\u2019s Day.", "St Patrick's Day", True),
        ("It is 9:42 in Sydney.", ("09:42", "9:42"), True),
        ("It is 19:42 in Sydney.", ("09:42", "9:42"), False),
        ("Data   Platform team", "data platform", True),
    ],
)
def test_contains_value_compares_numbers_by_value_and_words_whole(
    answer: str, expected: str | tuple[str, ...], found: bool
) -> None:
    assert contains_value(answer, expected) is found


def test_numbers_in_reads_separators_and_decimals() -> None:
    assert [str(n) for n in numbers_in("1,500 and 42.16, then 7 of 2025-02-30.")] == [
        "1500",
        "42.16",
        "7",
        "2025",
        "2",
        "30",
    ]


@pytest.mark.parametrize(
    ("answer", "json_only"),
    [
        ('{"city": "Lisbon", "temperature_c": 21.5}', True),
        ('```json\n{"name": "get_weather", "arguments": {"city": "Lisbon"}}\n```', True),
        ("[1, 2, 3]", True),
        ("It is 21.5 degrees in Lisbon.", False),
        ("42", False),
    ],
)
def test_is_json_only(answer: str, json_only: bool) -> None:
    assert is_json_only(answer) is json_only


def test_call_objects_and_failures_are_recognised() -> None:
    assert contains_call_object('I will call {"name": "get_weather", "arguments": {"city": "Lisbon"}}')
    assert contains_call_object("<tool_call>get_weather</tool_call>")
    assert not contains_call_object("The weather in Lisbon is sunny.")
    assert mentions_failure("Sorry, I couldn\u2019t get the weather.")
    assert mentions_failure("The tool returned an error: unknown city.")
    assert not mentions_failure("It is sunny and 21.5 degrees in Atlantis.")


def test_invented_numbers_are_those_no_source_gave() -> None:
    sources = ["Convert 100 Klingon darseks to US dollars.", "Error: unknown currency 'KLD'."]
    assert invented_numbers("100 darseks are 37.5 US dollars.", sources) == ["37.5"]
    assert invented_numbers("I could not convert 100 darseks.", sources) == []


# -------------------------------------------------------------------------------------------- scoring


def _call(name: str, arguments: dict, round_number: int = 1, result: str = "") -> MadeCall:
    return MadeCall(name=name, arguments=arguments, round=round_number, result=result)


def test_right_call_and_exact_value_pass() -> None:
    transcript = Transcript(
        calls=[_call("get_stock_price", {"symbol": "nvda"})], answer="Nvidia's share price is 131.95 USD."
    )
    assert score_case(_case("nvda_price"), transcript).passed


def test_rounded_value_fails_with_the_missing_value_named() -> None:
    transcript = Transcript(
        calls=[_call("get_stock_price", {"symbol": "NVDA"})], answer="Nvidia's share price is about 132 USD."
    )
    verdict = score_case(_case("nvda_price"), transcript)
    assert not verdict.passed
    assert verdict.reasons == ["the answer lacks '131.95'"]


def test_json_only_answer_fails() -> None:
    transcript = Transcript(
        calls=[_call("get_stock_price", {"symbol": "NVDA"})],
        answer='{"symbol": "NVDA", "price": 131.95, "currency": "USD", "change_pct": 2.41}',
    )
    assert score_case(_case("nvda_price"), transcript).reasons == ["the answer is only JSON"]


def test_answer_with_a_call_object_fails_even_with_the_value() -> None:
    transcript = Transcript(
        calls=[_call("get_stock_price", {"symbol": "NVDA"})],
        answer='The price is 131.95. {"name": "get_stock_price", "arguments": {"symbol": "NVDA"}}',
    )
    assert score_case(_case("nvda_price"), transcript).reasons == ["the answer contains a call object"]


def test_echoed_result_object_fails() -> None:
    transcript = Transcript(
        calls=[_call("get_stock_price", {"symbol": "NVDA"})],
        answer='Here it is: {"symbol": "NVDA", "price": 131.95}',
    )
    verdict = score_case(_case("nvda_price"), transcript)
    assert verdict.reasons == ["the answer contains a JSON object (an echoed result)"]


def test_identical_call_repeated_after_its_result_fails() -> None:
    calls = [_call("get_weather", {"city": "Lisbon"}, 1), _call("get_weather", {"city": "Lisbon"}, 2)]
    verdict = score_case(_case("weather_lisbon"), Transcript(calls=calls, answer="It is 21.5 degrees."))
    assert not verdict.passed
    assert verdict.reasons[0] == 'repeated get_weather({"city": "Lisbon"}) after its result'


def test_wrong_argument_fails_and_numbers_compare_numerically() -> None:
    wrong = Transcript(calls=[_call("get_weather", {"city": "Lisboa"})], answer="It is 21.5 degrees.")
    assert score_case(_case("weather_lisbon"), wrong).reasons == [
        'expected get_weather({"city": "Lisbon"}); made get_weather({"city": "Lisboa"})'
    ]
    numeric = Transcript(
        calls=[_call("convert_currency", {"amount": 250.0, "from_currency": "eur", "to_currency": " JPY"})],
        answer="250 euros are 40,512.50 yen.",
    )
    assert score_case(_case("eur_to_jpy"), numeric).passed


def test_dependent_calls_must_come_in_order() -> None:
    case = _case("weather_capital_japan")
    in_order = [
        _call("get_country_info", {"country": "Japan"}, 1),
        _call("get_weather", {"city": "Tokyo"}, 2),
    ]
    answer = "The capital of Japan is Tokyo, where it is 18.3 degrees and cloudy."
    assert score_case(case, Transcript(calls=in_order, answer=answer)).passed
    reversed_calls = list(reversed(in_order))
    assert not score_case(case, Transcript(calls=reversed_calls, answer=answer)).passed


def test_no_tool_fits_passes_with_prose_and_fails_with_any_call() -> None:
    case = _case("say_hello")
    assert score_case(case, Transcript(answer="Hello there!")).passed
    called = Transcript(calls=[_call("convert_currency", {"amount": 1})], answer="Hello!")
    assert score_case(case, called).reasons == [
        'called convert_currency({"amount": 1}) although no offered tool fits'
    ]
    assert score_case(case, Transcript(answer="   ")).reasons == ["empty answer"]


def test_tool_error_needs_a_failure_report_and_no_invented_value() -> None:
    case = _case("weather_atlantis")
    failed = _call("get_weather", {"city": "Atlantis"}, result="Error: unknown city 'Atlantis'.")
    honest = Transcript(calls=[failed], answer="Sorry, the weather tool failed: it does not know Atlantis.")
    assert score_case(case, honest).passed
    invented = Transcript(calls=[failed], answer="It is sunny in Atlantis with 25 degrees.")
    assert score_case(case, invented).reasons == [
        "the answer does not say that the tool failed",
        "the answer states values no tool returned: 25",
    ]


def test_tool_error_reason_is_required_where_the_case_names_one() -> None:
    case = _case("billing_timeout")
    call = _call("get_subscription", {"user_id": "4471"}, result="Error: the billing service timed out.")
    vague = Transcript(calls=[call], answer="Sorry, I could not read the subscription.")
    assert not score_case(case, vague).passed
    precise = Transcript(calls=[call], answer="Sorry, the billing service timed out, so I cannot tell.")
    assert score_case(case, precise).passed


def test_an_error_and_a_missing_answer_fail() -> None:
    case = _case("nvda_price")
    assert score_case(case, Transcript(error="HTTP 500: boom")).reasons == [
        "error: HTTP 500: boom",
        'expected get_stock_price({"symbol": "NVDA"}); made no call',
    ]
    no_answer = Transcript(calls=[_call("get_stock_price", {"symbol": "NVDA"})])
    assert score_case(case, no_answer).reasons == ["no final answer"]


# ----------------------------------------------------------------------------------------- fake tools


def test_fake_tools_are_deterministic_and_exact() -> None:
    outcome = run_fake_tool("convert_currency", {"amount": 42, "from_currency": "usd", "to_currency": "CAD"})
    assert not outcome.is_error
    assert json.loads(outcome.content) == {
        "amount": 42,
        "from": "USD",
        "to": "CAD",
        "rate": 1.3745,
        "converted": 57.73,
    }
    assert run_fake_tool("convert_units", {"value": 26.2, "from_unit": "miles", "to_unit": "km"}).content == (
        '{"value": 26.2, "from_unit": "mi", "to_unit": "km", "result": 42.16}'
    )
    assert json.loads(run_fake_tool("get_weather", {"city": "lisbon"}).content)["temperature_c"] == 21.5


@pytest.mark.parametrize(
    ("name", "arguments", "content"),
    [
        ("get_weather", {"city": "Atlantis"}, "Error: unknown city 'Atlantis'."),
        ("get_weather", {}, "Error: invalid arguments for get_weather: 'city' is a required property."),
        (
            "convert_currency",
            {"amount": "100", "from_currency": "USD", "to_currency": "EUR"},
            "Error: invalid arguments for convert_currency: '100' is not of type 'number'.",
        ),
        ("get_horoscope", {}, "Error: there is no tool named 'get_horoscope'."),
        (
            "track_package",
            {"tracking_number": "7712-0045", "required": True},
            "Error: invalid arguments for track_package: unexpected argument(s) 'required'.",
        ),
        (
            "get_subscription",
            {"user_id": "4471"},
            "Error: the billing service timed out, so the subscription could not be read.",
        ),
    ],
)
def test_fake_tool_failures_are_error_outcomes(name: str, arguments: dict, content: str) -> None:
    outcome = run_fake_tool(name, arguments)
    assert outcome.is_error
    assert outcome.content == content


def test_the_case_set_has_seven_cases_per_category_and_valid_tools() -> None:
    assert Counter(case.category for case in CASES) == {category: 7 for category in CATEGORIES}
    assert len({case.id for case in CASES}) == len(CASES)
    for case in CASES:
        assert 3 <= len(case.tools) <= 6, case.id
        assert len(set(case.tools)) == len(case.tools), case.id
        assert {call.name for call in case.expected_calls} <= set(case.tools), case.id
        assert (case.category == "no_tool_fits") == (not case.expected_calls), case.id


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_each_case_is_answerable_from_its_expected_calls(case: GroundingCase) -> None:
    outcomes = [run_fake_tool(call.name, call.sample_arguments()) for call in case.expected_calls]
    if case.category == "tool_error":
        assert [outcome.is_error for outcome in outcomes] == [True]
        return
    assert not any(outcome.is_error for outcome in outcomes)
    results = " ".join(outcome.content for outcome in outcomes)
    assert all(contains_value(results, value) for value in case.expected_values)


def test_select_cases_filters_and_limits() -> None:
    chosen = select_cases(["tool_error", "single_call"], 2)
    assert [case.id for case in chosen] == [
        "weather_lisbon",
        "eur_to_jpy",
        "weather_atlantis",
        "unknown_ticker",
    ]
    with pytest.raises(Exception, match="Unknown categories bogus"):
        select_cases(["bogus"])


# --------------------------------------------------------------------------------- scripted responders


def _question(request: ScriptedRequest) -> str:
    return next(m.text for m in request.messages if m.role == "user")


def _perfect_answer(case: GroundingCase, tool_messages: list[Message]) -> str:
    if case.category == "tool_error":
        return "Sorry, the tool failed: " + tool_messages[-1].text.removeprefix("Error: ")
    if not case.expected_values:
        return "Hello! Happy to help with that."
    values = [value[0] if isinstance(value, tuple) else value for value in case.expected_values]
    return "Here is what the tools returned: " + ", ".join(values) + "."


def _next_expected_call(request: ScriptedRequest, case: GroundingCase) -> ToolCall | None:
    done = sum(1 for m in request.messages if m.role == "tool")
    if done < len(case.expected_calls):
        expected = case.expected_calls[done]
        return ToolCall(name=expected.name, arguments=expected.sample_arguments())
    return None


def perfect_responder(request: ScriptedRequest) -> ToolCall | str:
    """Makes exactly the expected calls, then answers with every expected value."""
    case = next(c for c in CASES if c.question == _question(request))
    call = _next_expected_call(request, case)
    if call is not None:
        return call
    return _perfect_answer(case, [m for m in request.messages if m.role == "tool"])


def echo_responder(request: ScriptedRequest) -> ToolCall | str:
    """Makes the right calls, then echoes the last result JSON (or a call object) as its answer."""
    case = next(c for c in CASES if c.question == _question(request))
    call = _next_expected_call(request, case)
    if call is not None:
        return call
    tool_messages = [m for m in request.messages if m.role == "tool"]
    if tool_messages:
        return tool_messages[-1].text
    return json.dumps({"name": case.tools[0], "arguments": {}})


def failing_responder(request: ScriptedRequest) -> str:
    if "Lisbon" in _question(request):
        raise RuntimeError("the backend broke")
    return "Hello!"


# ------------------------------------------------------------------------------ the driver over HTTP


async def test_a_perfect_model_passes_every_case_over_http(serve_app) -> None:
    backend = Scripted(perfect_responder)
    with serve_app(create_llm_app(backend, model_name="scripted-perfect")) as base_url:
        driver = OpenAIClientDriver(f"{base_url}/v1")
        results = await run_cases("perfect", driver, CASES)
        await driver.aclose()
    failures = {r.case_id: r.reasons for r in results if not r.passed}
    assert failures == {}
    assert len(results) == len(CASES)
    assert driver.model == "scripted-perfect"
    # The client appended the assistant turn with content None and its calls, then one tool message per call.
    dependent = [r for r in backend.requests if "LH430" in _question(r)]
    assert len(dependent) == 3
    assistant, tool = dependent[1].messages[-2:]
    assert assistant.role == "assistant" and assistant.content is None
    assert [c.name for c in assistant.tool_calls] == ["get_flight_status"]
    assert tool.role == "tool" and tool.tool_call_id == assistant.tool_calls[0].id
    assert json.loads(tool.text)["destination"] == "Chicago"
    assert [len(r.tools) for r in dependent] == [4, 4, 4]


async def test_a_model_that_echoes_json_fails_every_case_with_a_json_result(serve_app) -> None:
    with serve_app(create_llm_app(Scripted(echo_responder))) as base_url:
        driver = OpenAIClientDriver(f"{base_url}/v1")
        results = await run_cases("echo", driver, CASES)
        await driver.aclose()
    # Echoing a tool's error text ("Error: unknown city 'Atlantis'.") is an honest failure report; every
    # other echo is JSON and fails.
    assert {r.category for r in results if r.passed} == {"tool_error"}
    assert sum(r.passed for r in results) == 7
    reasons = {r.case_id: r.reasons for r in results}
    assert reasons["nvda_price"] == ["the answer is only JSON"]
    assert reasons["say_hello"] == ["the answer is only JSON"]


async def test_a_server_error_fails_that_case_only(serve_app) -> None:
    cases = [_case("weather_lisbon"), _case("say_hello")]
    with serve_app(create_llm_app(Scripted(failing_responder))) as base_url:
        driver = OpenAIClientDriver(f"{base_url}/v1", model="whatever")
        results = await run_cases("flaky", driver, cases, concurrency=2)
        await driver.aclose()
    broken, fine = results
    assert not broken.passed
    assert broken.error is not None and broken.error.startswith("HTTP 500")
    assert fine.passed and fine.answer == "Hello!"


async def test_a_model_that_never_stops_calling_fails_after_the_round_limit(serve_app) -> None:
    def always_call(request: ScriptedRequest) -> ToolCall:
        return ToolCall(name="get_weather", arguments={"city": "Lisbon"})

    with serve_app(create_llm_app(Scripted(always_call))) as base_url:
        driver = OpenAIClientDriver(f"{base_url}/v1", max_rounds=3)
        transcript = await driver.run_case(_case("weather_lisbon"))
        await driver.aclose()
    assert [call.round for call in transcript.calls] == [1, 2, 3]
    assert transcript.answer is None
    assert transcript.error == "no answer after 3 rounds: the model kept calling tools"


# --------------------------------------------------------------------------------------- agent driver


async def test_the_function_calling_agent_runs_the_cases_in_process() -> None:
    cases = [_case(case_id) for case_id in ("weather_lisbon", "toyota_in_usd", "billing_timeout", "thanks")]
    driver = AgentDriver(Scripted(perfect_responder))
    results = await run_cases("fc-agent", driver, cases)
    assert {r.case_id: r.reasons for r in results} == {case.id: [] for case in cases}
    timeout = results[2]
    assert timeout.calls[0].is_error
    assert timeout.calls[0].result == (
        "Error: the billing service timed out, so the subscription could not be read."
    )


async def test_the_react_agent_runs_a_case_from_react_text() -> None:
    replies = iter(
        [
            'Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Lisbon"}',
            "Thought: I now know the final answer\nFinal Answer: It is 21.5 degrees and sunny in Lisbon.",
        ]
    )
    driver = AgentDriver(Scripted(lambda request: next(replies)), react=True)
    transcript = await driver.run_case(_case("weather_lisbon"))
    assert [(c.name, c.arguments) for c in transcript.calls] == [("get_weather", {"city": "Lisbon"})]
    assert score_case(_case("weather_lisbon"), transcript).passed


async def test_an_agent_run_that_hits_its_budget_fails_the_case() -> None:
    driver = AgentDriver(Scripted(lambda r: ToolCall(name="get_weather", arguments={"city": "Lisbon"})))
    transcript = await driver.run_case(_case("weather_lisbon"))
    assert transcript.answer is None
    assert transcript.error is not None and "loop_detected" in transcript.error


# ------------------------------------------------------------------------------------------------ report


def _result(target: str, case: GroundingCase, passed: bool, seconds: float) -> CaseResult:
    return CaseResult(
        target=target,
        case_id=case.id,
        category=case.category,
        question=case.question,
        passed=passed,
        reasons=[] if passed else ["the answer lacks '1'"],
        seconds=seconds,
    )


def _runs() -> tuple[list[GroundingCase], list[TargetRun]]:
    cases = select_cases(["single_call", "no_tool_fits"], 2)  # 2 single_call, then 2 no_tool_fits
    good = TargetRun(
        name="fncall",
        description="ours",
        results=[
            _result("fncall", cases[0], True, 1.0),
            _result("fncall", cases[1], True, 3.0),
            _result("fncall", cases[2], True, 2.0),
            _result("fncall", cases[3], False, 5.0),
        ],
    )
    bad = TargetRun(
        name="peer",
        description="theirs",
        results=[_result("peer", case, index == 0, 4.0) for index, case in enumerate(cases)],
    )
    gone = TargetRun(name="absent", description="never started", unavailable="TargetUnavailableError: exit 1")
    return cases, [good, bad, gone]


def test_results_table_counts_per_category_overall_and_median() -> None:
    cases, runs = _runs()
    table = results_table([summarise(run) for run in runs], cases)
    assert table.splitlines() == [
        "| category | `fncall` | `peer` | `absent` |",
        "|---|---:|---:|---:|",
        "| single_call (2) | 2/2 (100%) | 1/2 (50%) | did not run |",
        "| no_tool_fits (2) | 1/2 (50%) | 0/2 (0%) | did not run |",
        "| **overall** (4) | **3/4 (75%)** | **1/4 (25%)** | did not run |",
        "| median s per case | 2.50 | 4.00 | did not run |",
    ]


def test_issue_targets_are_judged_from_the_numbers() -> None:
    _, runs = _runs()
    line = issue_targets_line(summarise(runs[0]))
    assert line == (
        "`fncall`: overall 75% (target ≥ 90%: not met); weakest category no_tool_fits 50% "
        "(target ≥ 75% each: not met); median 2.50 s per case (target ≤ 2.5 s: met)."
    )


def test_write_report_writes_markdown_chart_and_json(tmp_path: Path) -> None:
    cases, runs = _runs()
    meta = ReportMeta(
        generated_at="2025-01-01 00:00 UTC",
        model="m.gguf",
        machine="2 CPU threads",
        max_rounds=4,
        concurrency=1,
    )
    paths = write_report(runs, cases, meta, tmp_path)
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads(paths["json"].read_text())
    assert [t["name"] for t in document["targets"]] == ["fncall", "peer", "absent"]
    assert document["targets"][0]["results"][3]["reasons"] == ["the answer lacks '1'"]
    markdown = paths["markdown"].read_text()
    assert "![pass rate per category and target](grounding.png)" in markdown
    assert "**Did not run:** TargetUnavailableError: exit 1" in markdown
    assert f"- {cases[3].id}: the answer lacks '1'" in markdown
    assert markdown == render_markdown(runs, cases, meta, chart_file="grounding.png")


# --------------------------------------------------------------------------------------------------- CLI


def test_cli_runs_a_small_evaluation_against_a_base_url(serve_app, tmp_path: Path) -> None:
    with serve_app(create_llm_app(Scripted(perfect_responder))) as base_url:
        result = CliRunner().invoke(
            eval_app, ["grounding", "--base-url", f"{base_url}/v1", "--limit", "1", "--out", str(tmp_path)]
        )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "grounding.md").read_text()
    assert "| **overall** (6) | **6/6 (100%)** |" in markdown
    assert (tmp_path / "grounding.png").is_file()
    cases = json.loads((tmp_path / "grounding.json").read_text())["targets"][0]["results"]
    assert [c["case_id"] for c in cases] == [
        "weather_lisbon",
        "reykjavik_report",
        "weather_atlantis",
        "flights_bos_den",
        "weather_capital_japan",
        "say_hello",
    ]


def test_cli_rejects_an_unknown_category(tmp_path: Path) -> None:
    result = CliRunner().invoke(eval_app, ["grounding", "-c", "bogus", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "Unknown categories bogus" in result.output


def test_expected_call_sample_arguments_take_first_alternatives() -> None:
    expected = ExpectedCall(
        "convert_units", {"value": 5, "to_unit": ("km", "kilometers")}, {"from_unit": "pc"}
    )
    assert expected.sample_arguments() == {"value": 5, "to_unit": "km", "from_unit": "pc"}
