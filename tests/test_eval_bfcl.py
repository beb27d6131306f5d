"""`fncall eval bfcl`: BFCL doc conversion, scoring through BFCL's own checker, the report, and the CLI on a
scripted backend served over HTTP. No model runs here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("bfcl_eval", reason="needs bfcl-eval (pip install --no-deps bfcl-eval==2026.3.23)")

from fncall.errors import ConfigError
from fncall.evals.bfcl import (
    AST_CATEGORIES,
    SINGLE_TURN_CATEGORIES,
    BfclCase,
    CaseResult,
    ToolNames,
    check_categories,
    check_modes,
    decode_calls,
    json_schema_from_bfcl,
    load_cases,
    markdown_error_table,
    markdown_table,
    messages_from_bfcl,
    mode_params,
    open_target,
    read_results,
    run_case,
    run_cases,
    sample_cases,
    score_case,
    summarise,
    tools_from_bfcl,
    write_chart,
    write_report,
)
from fncall.evals.bfcl.scoring import IRRELEVANCE_ERROR, NO_CALL_ERROR, RELEVANCE_ERROR
from fncall.evals.bfcl_cli import bfcl_app
from fncall.llms import Scripted
from fncall.llms import spec as llm_spec
from fncall.llms.scripted import ScriptedRequest
from fncall.llms.spec import register_scheme
from fncall.server.llm_api import create_llm_app
from fncall.types import Message, ToolCall

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _case(category: str, case_id: str) -> BfclCase:
    return next(case for case in load_cases(category) if case.id == case_id)


def _right_value(options: list[Any]) -> Any:
    """The first value BFCL's possible answer allows, optional nested entries left out."""
    value = options[0]
    if isinstance(value, dict):
        return {key: _right_value(inner) for key, inner in value.items() if inner and inner[0] != ""}
    return value


def _right_calls(case: BfclCase, names: ToolNames) -> list[ToolCall]:
    """The ground truth's calls as a model would write them: under the sanitised tool names."""
    offered = {original: sanitised for sanitised, original in names.to_original.items()}
    calls = []
    for expected in case.ground_truth or []:
        for name, parameters in expected.items():
            arguments = {
                key: _right_value(options) for key, options in parameters.items() if options[0] != ""
            }
            calls.append(ToolCall(name=offered[name], arguments=arguments))
    return calls


# ----------------------------------------------------------------------------------------- conversion


def test_bfcl_types_become_json_schema_types() -> None:
    schema = json_schema_from_bfcl(
        {
            "type": "dict",
            "properties": {
                "weight": {"type": "float", "description": "kg", "default": 1.5},
                "point": {"type": "tuple", "items": {"type": "integer"}},
                "anything": {"type": "any", "description": "some value"},
                "flag": {"type": "boolean", "optional": True},
                "mapping": {"type": "dict"},
            },
            "required": ["weight"],
        }
    )
    assert schema == {
        "type": "object",
        "properties": {
            "weight": {"type": "number", "description": "kg", "default": 1.5},
            "point": {"type": "array", "items": {"type": "integer"}},
            "anything": {"type": "string", "description": "some value"},
            "flag": {"type": "boolean"},
            "mapping": {"type": "object"},
        },
        "required": ["weight"],
    }


def test_nested_lists_of_dicts_and_enums_convert_all_the_way_down() -> None:
    schema = json_schema_from_bfcl(
        {
            "type": "array",
            "items": {
                "type": "dict",
                "properties": {
                    "unit": {"type": "string", "enum": ["km", "mi"]},
                    "legs": {"type": "array", "items": {"type": "float"}},
                },
                "required": ["unit", "not_a_property"],
            },
        }
    )
    assert schema == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["km", "mi"]},
                "legs": {"type": "array", "items": {"type": "number"}},
            },
            "required": ["unit"],
        },
    }


def test_an_unknown_bfcl_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown BFCL parameter type 'HashSet'"):
        json_schema_from_bfcl({"type": "HashSet"})


def test_dotted_names_are_sanitised_and_mapped_back() -> None:
    functions = [
        {"name": "math.factorial", "description": "n!", "parameters": {"type": "dict", "properties": {}}},
        {"name": "math_factorial", "description": "clash", "parameters": {"type": "dict", "properties": {}}},
        {"name": "a.b.c", "description": "", "parameters": {"type": "dict", "properties": {}}},
    ]
    tools, names = tools_from_bfcl(functions)
    assert [tool.name for tool in tools] == ["math_factorial", "math_factorial_2", "a_b_c"]
    assert [names.original(tool.name) for tool in tools] == ["math.factorial", "math_factorial", "a.b.c"]
    assert names.original("never_offered") == "never_offered"
    assert tools[0].parameters == {"type": "object", "properties": {}}


def test_long_names_stay_within_the_tool_name_limit() -> None:
    names = ToolNames()
    first, second = names.add("x." * 40), names.add("x_" * 40)
    assert len(first) == 64 and len(second) == 64 and first != second
    assert _TOOL_NAME.match(first) and _TOOL_NAME.match(second)


def test_every_single_turn_doc_converts_to_a_valid_tool() -> None:
    """Every doc converts and round-trips its name; the first cases of each category are valid JSON Schema
    (checking all 8,500 schemas takes half a minute)."""
    for category in SINGLE_TURN_CATEGORIES:
        for index, case in enumerate(load_cases(category)):
            tools, names = tools_from_bfcl(case.functions)
            assert len(set(names.to_original)) == len(case.functions)
            for tool, function in zip(tools, case.functions, strict=True):
                assert _TOOL_NAME.match(tool.name), tool.name
                assert names.original(tool.name) == function["name"]
                assert tool.parameters["type"] == "object"
                if index < 10:
                    jsonschema.Draft202012Validator.check_schema(tool.parameters)


def test_bfcl_messages_become_canonical_messages() -> None:
    turn = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert messages_from_bfcl(turn) == [Message.system("Be brief."), Message.user("Hi")]


# ---------------------------------------------------------------------------------------- the data


def test_cases_load_with_their_ground_truth() -> None:
    case = _case("simple_python", "simple_python_1")
    assert case.functions[0]["name"] == "math.factorial"
    assert case.messages == [
        {"role": "user", "content": "Calculate the factorial of 5 using math functions."}
    ]
    assert case.ground_truth == [{"math.factorial": {"number": [5]}}]
    assert case.expectation == "calls"
    assert _case("irrelevance", "irrelevance_0").ground_truth is None


def test_samples_are_reproducible_and_keep_bfcls_order() -> None:
    cases = load_cases("multiple")
    first, again = sample_cases(cases, 8, seed=3), sample_cases(cases, 8, seed=3)
    assert [case.id for case in first] == [case.id for case in again]
    assert len(first) == 8
    positions = [cases.index(case) for case in first]
    assert positions == sorted(positions)
    assert [case.id for case in sample_cases(cases, 8, seed=4)] != [case.id for case in first]
    assert sample_cases(cases, None, seed=0) == cases
    assert len(sample_cases(load_cases("live_relevance"), 50, seed=0)) == 16


def test_unknown_categories_and_modes_are_refused() -> None:
    with pytest.raises(ConfigError, match="multi_turn_base"):
        check_categories(["simple_python", "multi_turn_base"])
    assert check_categories(["parallel", "parallel"]) == ["parallel"]
    with pytest.raises(ConfigError, match="Unknown BFCL modes: fast"):
        check_modes(["free", "fast"])
    assert check_modes(["react", "free"]) == ["free", "react"]


# ------------------------------------------------------------------------------- scoring (BFCL checker)


def test_a_right_call_under_the_sanitised_name_passes_bfcls_checker() -> None:
    case = _case("simple_python", "simple_python_1")
    _, names = tools_from_bfcl(case.functions)
    decoded = decode_calls([ToolCall(name="math_factorial", arguments={"number": 5})], names)
    assert decoded == [{"math.factorial": {"number": 5}}]
    assert score_case(case, decoded).valid


def test_a_wrong_value_fails_with_bfcls_error_type() -> None:
    case = _case("simple_python", "simple_python_1")
    _, names = tools_from_bfcl(case.functions)
    score = score_case(case, decode_calls([ToolCall(name="math_factorial", arguments={"number": 6})], names))
    assert not score.valid
    assert score.error_type == "value_error:others"
    assert "6" in score.errors[0]


def test_wrong_name_wrong_type_and_missing_calls_fail() -> None:
    case = _case("simple_python", "simple_python_1")
    _, names = tools_from_bfcl(case.functions)
    wrong_type = score_case(case, [{"math.factorial": {"number": "5"}}])
    assert (wrong_type.valid, wrong_type.error_type) == (False, "type_error:simple")
    unsanitised = score_case(case, decode_calls([ToolCall(name="factorial", arguments={"number": 5})], names))
    assert (unsanitised.valid, unsanitised.error_type) == (False, "simple_function_checker:wrong_func_name")
    assert score_case(case, []).error_type == NO_CALL_ERROR
    unparsed = [ToolCall(name="math_factorial", unparsed_arguments="{number: 5")]
    assert decode_calls(unparsed, names) is None
    assert (score_case(case, None).valid, score_case(case, None).error_type) == (False, NO_CALL_ERROR)


def test_parallel_calls_pass_in_any_order_and_fail_when_one_is_missing() -> None:
    case = _case("parallel_multiple", "parallel_multiple_0")
    _, names = tools_from_bfcl(case.functions)
    calls = _right_calls(case, names)
    assert len(calls) == 2
    assert score_case(case, decode_calls(list(reversed(calls)), names)).valid
    assert not score_case(case, decode_calls(calls[:1], names)).valid


def test_every_category_accepts_its_own_ground_truth() -> None:
    for category in AST_CATEGORIES:
        case = load_cases(category)[1]
        _, names = tools_from_bfcl(case.functions)
        assert score_case(case, decode_calls(_right_calls(case, names), names)).valid, case.id


def test_irrelevance_is_right_only_without_a_call() -> None:
    case = _case("irrelevance", "irrelevance_0")
    _, names = tools_from_bfcl(case.functions)
    assert score_case(case, []).valid
    called = score_case(case, decode_calls([ToolCall(name="determine_body_mass_index")], names))
    assert (called.valid, called.error_type) == (False, IRRELEVANCE_ERROR)
    # BFCL's decoder fails on arguments that are not JSON: that is "no call", so the case is right.
    assert score_case(case, None).valid


def test_relevance_needs_any_call() -> None:
    case = load_cases("live_relevance")[0]
    assert case.expectation == "any_call"
    _, names = tools_from_bfcl(case.functions)
    some_tool = next(iter(names.to_original))
    assert score_case(case, decode_calls([ToolCall(name=some_tool, arguments={"x": 1})], names)).valid
    missing = score_case(case, [])
    assert (missing.valid, missing.error_type) == (False, RELEVANCE_ERROR)


# --------------------------------------------------------------------------------------- the runner


def _oracle(cases: list[BfclCase]) -> Scripted:
    """A backend that answers every case right: native calls when tools are offered, ReAct text when not."""
    by_question = {case.messages[-1]["content"]: case for case in cases}

    def _respond(request: ScriptedRequest) -> Any:
        question = next(m.text for m in reversed(request.messages) if m.role == "user")
        case = next((case for text, case in by_question.items() if text in question), None)
        if case is None or case.expectation == "no_call":
            return (
                "Thought: no tool fits.\nFinal Answer: I cannot help with that."
                if not request.tools
                else "No."
            )
        _, names = tools_from_bfcl(case.functions)
        calls = (
            _right_calls(case, names) if case.ground_truth else [ToolCall(name=next(iter(names.to_original)))]
        )
        if request.tools:
            return calls
        call = calls[0]
        return f"Thought: use a tool.\nAction: {call.name}\nAction Input: {json.dumps(call.arguments)}"

    return Scripted(_respond)


async def test_modes_send_their_constraint_setting_and_score_right_answers() -> None:
    case = _case("simple_python", "simple_python_1")
    backend = _oracle([case])
    results = [await run_case(backend, case, mode) for mode in ("free", "constrained", "react")]
    assert [result.valid for result in results] == [True, True, True]
    assert [request.params.constrained for request in backend.requests] == [False, True, None]
    assert [bool(request.tools) for request in backend.requests] == [True, True, False]
    assert results[2].calls == [{"math.factorial": {"number": 5}}]
    assert mode_params("constrained", 64).max_tokens == 64
    assert mode_params("free").temperature == 0.0


async def test_a_failing_backend_is_a_wrong_answer_not_a_crash() -> None:
    case = _case("simple_python", "simple_python_1")
    result = await run_case(Scripted([]), case, "free")
    assert (result.valid, result.error_type) == (False, "llm_error")
    assert "no response left" in result.errors[0]


async def test_run_cases_through_fncalls_own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [_case("simple_python", "simple_python_1"), _case("irrelevance", "irrelevance_0")]
    backend = _oracle(cases)
    monkeypatch.setattr(llm_spec, "_SCHEMES", dict(llm_spec._SCHEMES))  # the scheme lives for this test only
    register_scheme("bfcltest", lambda _rest: backend)
    seen: list[str] = []
    async with open_target("bfcltest:") as target:
        assert "127.0.0.1" in target.route
        results = await run_cases(
            target.llm, cases, ["free", "constrained"], concurrency=2, on_result=lambda r: seen.append(r.id)
        )
    assert [(r.id, r.mode, r.valid) for r in results] == [
        ("simple_python_1", "free", True),
        ("simple_python_1", "constrained", True),
        ("irrelevance_0", "free", True),
        ("irrelevance_0", "constrained", True),
    ]
    assert sorted(seen) == sorted(r.id for r in results)
    assert [request.params.constrained for request in backend.requests].count(True) == 2


# --------------------------------------------------------------------------------------- the report


def _result(
    category: str, mode: str, valid: bool, error_type: str | None = None, latency: float = 1.0
) -> CaseResult:
    return CaseResult(
        id=f"{category}_x",
        category=category,
        mode=mode,
        valid=valid,
        error_type=error_type,
        latency_s=latency,
    )


_RESULTS = [
    _result("simple_python", "free", True),
    _result("simple_python", "free", False, "value_error:others", 3.0),
    _result("simple_python", "react", True),
    _result("simple_python", "react", True),
    _result("irrelevance", "free", False, "irrelevance_error:decoder_success"),
    _result("irrelevance", "react", True),
]


def test_summary_tallies_each_category_and_mode() -> None:
    summary = summarise(_RESULTS)
    assert summary.categories == ["simple_python", "irrelevance"]
    assert summary.modes == ["free", "react"]
    free = summary.cell("simple_python", "free")
    assert (free.correct, free.total, free.accuracy, free.mean_latency_s) == (1, 2, 0.5, 2.0)
    assert (
        summarise([*_RESULTS, _result("irrelevance", "free", True, latency=60.0)])
        .cell("all cases", "free")
        .median_latency_s
        == 2.0
    )
    assert summary.cell("all cases", "free").correct == 1 and summary.cell("all cases", "react").correct == 3
    assert summary.to_json()["accuracy"]["irrelevance"]["react"]["accuracy"] == 1.0


def test_markdown_tables_are_exact() -> None:
    summary = summarise(_RESULTS)
    assert markdown_table(summary) == (
        "| category | free | react |\n"
        "| --- | ---: | ---: |\n"
        "| simple_python | 0.500 (1/2) | 1.000 (2/2) |\n"
        "| irrelevance | 0.000 (0/1) | 1.000 (1/1) |\n"
        "| **all cases** | 0.333 (1/3) | 1.000 (3/3) |\n"
        "| median latency (s) | 1.00 | 1.00 |"
    )
    assert markdown_error_table(summary) == (
        "| error type | free | react |\n"
        "| --- | ---: | ---: |\n"
        "| `irrelevance_error:decoder_success` | 1 | 0 |\n"
        "| `value_error:others` | 1 | 0 |"
    )
    with_failure = summarise([*_RESULTS, _result("irrelevance", "react", False, "llm_error")])
    assert markdown_table(with_failure).endswith("| backend failures | 0 | 1 |")


def test_report_files_and_chart_are_written(tmp_path: Path) -> None:
    write_report(_RESULTS, tmp_path, {"model": "m", "sample": "2 per category"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"] == {"model": "m", "sample": "2 per category"}
    assert summary["error_types"]["free"] == {"value_error:others": 1, "irrelevance_error:decoder_success": 1}
    report = (tmp_path / "report.md").read_text()
    assert "- **sample**: 2 per category" in report and "| **all cases** | 0.333 (1/3) |" in report
    assert (tmp_path / "bfcl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_chart(summarise(_RESULTS[:1]), tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_runs_a_tiny_evaluation_against_a_served_scripted_model(serve_app: Any, tmp_path: Path) -> None:
    chosen = [
        *sample_cases(load_cases("simple_python"), 2, 0),
        *sample_cases(load_cases("irrelevance"), 2, 0),
    ]
    app = typer.Typer()
    app.add_typer(bfcl_app)
    with serve_app(create_llm_app(_oracle(chosen), model_name="oracle")) as base_url:
        outcome = CliRunner().invoke(
            app,
            [
                "bfcl",
                "--llm",
                f"openai:{base_url}/v1#oracle",
                "-c",
                "simple_python",
                "-c",
                "irrelevance",
                "-n",
                "2",
                "--seed",
                "0",
                "-o",
                str(tmp_path),
            ],
        )
    assert outcome.exit_code == 0, outcome.output
    results = read_results(tmp_path / "results.jsonl")
    assert len(results) == 12
    assert all(result.valid for result in results), [r for r in results if not r.valid]
    assert {result.id for result in results} == {case.id for case in chosen}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["modes"] == ["free", "constrained", "react"]
    assert summary["accuracy"]["all cases"]["react"] == {
        "accuracy": 1.0,
        "correct": 4,
        "total": 4,
        "llm_failures": 0,
        "mean_latency_s": summary["accuracy"]["all cases"]["react"]["mean_latency_s"],
        "median_latency_s": summary["accuracy"]["all cases"]["react"]["median_latency_s"],
    }
    assert (tmp_path / "bfcl.png").exists() and (tmp_path / "report.md").exists()


def test_a_resumed_run_keeps_finished_cases_and_reruns_the_rest(serve_app: Any, tmp_path: Path) -> None:
    chosen = sample_cases(load_cases("simple_python"), 3, 0)
    finished, half_done = chosen[0], chosen[1]
    kept = [_result("simple_python", mode, False, "kept:from_before") for mode in ("free", "react")]
    kept = [result.model_copy(update={"id": finished.id}) for result in kept]
    partial = _result("simple_python", "free", False, "partial").model_copy(update={"id": half_done.id})
    other = [_result("irrelevance", mode, True) for mode in ("free", "react")]
    lines = [*kept, partial, *other]
    (tmp_path / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in lines))
    app = typer.Typer()
    app.add_typer(bfcl_app)
    arguments = ["bfcl", "-c", "simple_python", "-m", "free", "-m", "react", "-n", "3", "-o", str(tmp_path)]
    with serve_app(create_llm_app(_oracle(chosen), model_name="oracle")) as base_url:
        outcome = CliRunner().invoke(app, [*arguments, "--llm", f"openai:{base_url}/v1#oracle", "--resume"])
    assert outcome.exit_code == 0, outcome.output
    results = read_results(tmp_path / "results.jsonl")
    assert [(r.id, r.error_type) for r in results[:2]] == [(finished.id, "kept:from_before")] * 2
    assert results[2:4] == other  # another category's finished case stays in the file, out of the report
    rerun = results[4:]
    assert sorted((r.id, r.mode) for r in rerun) == sorted(
        (case.id, mode) for case in chosen[1:] for mode in ("free", "react")
    )
    assert all(result.valid for result in rerun)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["categories"] == ["simple_python"]
    assert summary["accuracy"]["all cases"]["free"]["total"] == 3
    assert summary["run"]["resumed"].startswith("1 cases per mode kept")


def test_bfcl_report_combines_runs_counting_each_finished_case_once(tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    stopped = _result("irrelevance", "free", True).model_copy(update={"id": "irrelevance_stopped"})
    first.write_text("".join(r.model_dump_json() + "\n" for r in [stopped, *_RESULTS[:4]]))
    again = _result("simple_python", "react", False, "value_error:others")  # a case already in `first`
    second.write_text("".join(r.model_dump_json() + "\n" for r in [again, *_RESULTS[4:]]))
    app = typer.Typer()
    app.add_typer(bfcl_app)
    outcome = CliRunner().invoke(
        app, ["bfcl-report", str(first), str(second), "-o", str(tmp_path / "out"), "--title", "t"]
    )
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["categories"] == ["simple_python", "irrelevance"]  # BFCL's order, not the files'
    assert summary["run"]["cases per mode"] == 2
    assert summary["accuracy"]["simple_python"]["react"]["correct"] == 1  # the first file's answer
    assert summary["accuracy"]["irrelevance"]["free"]["total"] == 1  # the stopped case is left out
    assert (tmp_path / "out" / "bfcl.png").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused = CliRunner().invoke(app, ["bfcl-report", str(empty), "-o", str(tmp_path / "none")])
    assert refused.exit_code == 1 and "no case finished in every mode" in refused.output


def test_cli_refuses_an_unknown_category_with_a_clear_message(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(bfcl_app)
    outcome = CliRunner().invoke(app, ["bfcl", "-c", "memory", "-o", str(tmp_path)])
    assert outcome.exit_code == 1
    assert "Unknown BFCL categories: memory" in outcome.output
