"""The benchmark report's arithmetic and rendering (bench/stats.py, bench/report.py): the numbers the
report prints must be computed right even though the benchmarks themselves are not part of `make test`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from bench.report import Section, Table, load_sections, render_report, save_section
from bench.scripted_service import task_tool_call
from bench.service_load import (
    AGENT_RUNS,
    IDEAL_RUNS_PER_S,
    LLM_LOOP,
    LoadOutcome,
    TargetSummary,
    added_latencies_ms,
    agent_service,
    chosen_targets,
    drive_agent_runs,
    load_section,
    run_problem,
)
from bench.stats import Spread, loglog_slope, paired_ratios, percentile
from bench.stream_parsing import (
    ReparseBaseline,
    call_arguments,
    common_prefix_length,
    deltas,
    model_output,
    parse_with_baseline,
)
from bench.task import ANSWER, TASK
from hypothesis import given
from hypothesis import strategies as st

from fncall.errors import LLMError
from fncall.types import ToolSpec

# ------------------------------------------------------------------------------------------ Spread


def test_spread_of_odd_and_even_samples() -> None:
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0, 3)
    assert Spread.of([4.0, 1.0, 3.0, 2.0]) == Spread(1.0, 2.5, 4.0, 4)


def test_spread_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        Spread.of([])


def test_spread_scaled_keeps_order_for_negative_factors() -> None:
    assert Spread(1.0, 2.0, 4.0, 3).scaled(1e3) == Spread(1000.0, 2000.0, 4000.0, 3)
    assert Spread(1.0, 2.0, 4.0, 3).scaled(-1) == Spread(-4.0, -2.0, -1.0, 3)


def test_spread_format_is_median_then_range() -> None:
    assert Spread(1.234, 2.5, 1234.5, 3).format(1) == "2.5 [1.2, 1,234.5]"
    assert Spread(0.0, 1.0, 2.0, 3).format(0) == "1 [0, 2]"


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=50))
def test_spread_median_lies_between_min_and_max(samples: list[float]) -> None:
    spread = Spread.of(samples)
    assert spread.min <= spread.median <= spread.max
    assert spread.n == len(samples)


# ------------------------------------------------------------------------------------ paired ratios


def test_paired_ratios_divide_within_each_repeat() -> None:
    # Repeat 1 saw a loaded machine (both slow), repeat 2 a quiet one: the ratio is 4 in both.
    assert paired_ratios([40.0, 8.0], [10.0, 2.0]) == Spread(4.0, 4.0, 4.0, 2)


def test_paired_ratios_spread() -> None:
    assert paired_ratios([2.0, 6.0, 9.0], [1.0, 2.0, 3.0]) == Spread(2.0, 3.0, 3.0, 3)


def test_paired_ratios_refuse_mismatched_or_zero() -> None:
    with pytest.raises(ValueError, match="cannot pair 2 numerators with 1"):
        paired_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="denominator was zero"):
        paired_ratios([1.0], [0.0])


# -------------------------------------------------------------------------------------- percentile


def test_percentile_interpolates_like_numpy() -> None:
    samples = [10.0, 20.0, 30.0, 40.0]
    assert percentile(samples, 0) == 10.0
    assert percentile(samples, 100) == 40.0
    assert percentile(samples, 50) == 25.0
    assert percentile(samples, 99) == pytest.approx(39.7)
    assert percentile([5.0], 99) == 5.0


def test_percentile_does_not_depend_on_order() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_percentile_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


# ---------------------------------------------------------------------------------- log-log slope


def test_loglog_slope_of_linear_and_quadratic_growth() -> None:
    sizes = [1, 4, 16, 64]
    assert loglog_slope(sizes, [3.0 * size for size in sizes]) == pytest.approx(1.0)
    assert loglog_slope(sizes, [0.5 * size**2 for size in sizes]) == pytest.approx(2.0)
    assert loglog_slope(sizes, [7.0 for _ in sizes]) == pytest.approx(0.0)


def test_loglog_slope_needs_two_points() -> None:
    with pytest.raises(ValueError, match="at least two"):
        loglog_slope([1], [1])


# ---------------------------------------------------------------------------------------- report


def _section(name: str = "demo") -> Section:
    return Section(
        name=name,
        title="9. Demo",
        method="Measured by *counting*.",
        tables=[Table("Caption", ["a", "b|c"], [["1", "x|y"]])],
        charts=["bench_demo.png"],
        findings=["fncall is 3x faster."],
        measured_at="2026-01-01 00:00 UTC",
        duration_s=12.4,
        machine={"CPU": "Test CPU", "Python": "3.11.7", "load average at start": "1.00 1.00 1.00"},
    )


def test_table_rejects_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="has 1 cells but the table has 2"):
        Table("t", ["a", "b"], [["only one"]])


def test_section_round_trips_through_json() -> None:
    section = _section()
    assert Section.from_json(section.to_json()) == section


def test_save_and_load_sections_in_the_requested_order(tmp_path: Path) -> None:
    save_section(_section("second"), tmp_path)
    save_section(_section("first"), tmp_path)
    loaded = load_sections(["first", "missing", "second"], tmp_path)
    assert [section.name for section in loaded] == ["first", "second"]


def test_render_report_has_headlines_machine_tables_and_charts() -> None:
    text = render_report([_section()])
    assert text.startswith("# fncall benchmarks\n")
    assert "## Headlines" in text
    assert "- fncall is 3x faster." in text
    assert "| CPU | Test CPU |" in text
    assert "## 9. Demo" in text
    assert "Measured 2026-01-01 00:00 UTC in 12 s. Load average at its start: 1.00 1.00 1.00." in text
    # Pipes inside cells are escaped so the table keeps its columns.
    assert "| a | b\\|c |\n|---|---|\n| 1 | x\\|y |" in text
    assert "![9. Demo](bench_demo.png)" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_render_report_marks_quick_runs_and_other_machines() -> None:
    quick = _section("quick")
    quick.quick = True
    quick.machine = {**quick.machine, "Python": "3.12.0"}
    text = render_report([quick, _section()])
    assert "**Quick mode: too few repeats to quote.**" in text
    assert "Measured with: Python 3.12.0." in text


# ---------------------------------------------------------------------- stream-parsing baseline


def test_common_prefix_length() -> None:
    assert common_prefix_length("abcdef", "abcxyz") == 3
    assert common_prefix_length("abc", "abc") == 3
    assert common_prefix_length("", "abc") == 0
    assert common_prefix_length("abc", "abcdef") == 3


@given(st.text(max_size=40), st.text(max_size=40))
def test_common_prefix_length_matches_a_plain_scan(left: str, right: str) -> None:
    expected = 0
    while expected < min(len(left), len(right)) and left[expected] == right[expected]:
        expected += 1
    assert common_prefix_length(left, right) == expected


def test_call_arguments_reach_the_requested_size() -> None:
    arguments = call_arguments(4)
    content_chars = len(model_output(arguments))
    assert 4 * 1024 <= content_chars < 4 * 1024 + 200


@pytest.mark.parametrize("delta_chars", [1, 3, 4, 7])
def test_reparse_baseline_streams_the_arguments_exactly(delta_chars: int) -> None:
    arguments = call_arguments(1)
    streamed = parse_with_baseline(deltas(model_output(arguments), delta_chars))
    assert json.loads(streamed) == arguments


def test_reparse_baseline_only_ever_sends_a_prefix_of_the_final_arguments() -> None:
    # A partial parse auto-closes the open string (`"ab"}`); sending that tail early would corrupt the
    # stream, e.g. when a delta adds nothing the parser can use (a lone backslash).
    arguments = {"x": 'say "hi" \\ bye', "n": 12}
    text = "<tool_call>" + json.dumps({"name": "f", "arguments": arguments}) + "</tool_call>"
    final = json.dumps(arguments, ensure_ascii=False)
    baseline = ReparseBaseline()
    sent = ""
    for char in text:
        sent += baseline.feed(char)
        assert final.startswith(sent)
    assert sent + baseline.finish() == final


# ------------------------------------------------------------------- benchmark 4: agent service under load


def test_ideal_is_the_runs_in_flight_over_three_sequential_model_calls() -> None:
    assert pytest.approx(200 / 0.3) == IDEAL_RUNS_PER_S


def test_added_latency_is_each_runs_time_over_the_300_ms_floor() -> None:
    outcome = LoadOutcome(wall_s=2.0, run_latencies_s=[0.3, 0.35, 1.3])
    assert added_latencies_ms(outcome) == pytest.approx([0.0, 50.0, 1000.0])


def test_load_targets_default_to_both_with_agent_runs_first() -> None:
    assert chosen_targets(None) == [AGENT_RUNS, LLM_LOOP]
    assert chosen_targets("all") == [AGENT_RUNS, LLM_LOOP]
    assert chosen_targets("llm-loop") == [LLM_LOOP]
    with pytest.raises(ValueError, match="FNCALL_BENCH_LOAD_TARGET must be one of agent-runs, llm-loop"):
        chosen_targets("agent")


def test_run_problem_accepts_only_a_completed_run_with_the_tasks_answer() -> None:
    completed = json.dumps({"id": "r1", "status": "completed", "final_answer": "The result is 10."})
    assert run_problem(200, completed) is None
    assert run_problem(500, '{"error": {"message": "boom"}}') == 'HTTP 500: {"error": {"message": "boom"}}'
    failed = json.dumps(
        {"id": "r2", "status": "failed", "outcome": "error", "final_answer": None, "error": "LLM down"}
    )
    assert run_problem(200, failed) == (
        "run r2 ended 'failed' / 'error' with answer None and error 'LLM down'"
    )


def test_scripted_model_calls_the_task_tool_the_request_offers() -> None:
    add = task_tool_call([ToolSpec(name="add")], {"a": 2, "b": 3})
    assert (add.name, add.arguments) == ("add", {"a": 2, "b": 3})
    convert = task_tool_call([ToolSpec(name="convert_currency")], {"a": 5, "b": 5})
    assert convert.name == "convert_currency"
    assert convert.arguments == {"from_currency": "USD", "to_currency": "EUR", "amount": 10.0}
    with pytest.raises(LLMError, match="offered \\['lookup'\\]"):
        task_tool_call([ToolSpec(name="lookup")], {"a": 1, "b": 1})


def _outcome(wall_s: float, latencies: list[float], errors: list[str], cpu_s: float) -> LoadOutcome:
    return LoadOutcome(
        wall_s=wall_s,
        run_latencies_s=latencies,
        errors=errors,
        service_cpu_s=cpu_s,
        model_cpu_s=cpu_s / 5,
        client_cpu_s=cpu_s / 10,
        peak_rss_bytes=100 * 2**20,
    )


def test_target_summary_divides_by_runs_and_compares_with_the_ideal() -> None:
    outcomes = [
        _outcome(2.0, [0.3, 0.5, 0.7, 0.9], [], 0.2),
        _outcome(1.0, [0.4, 0.4], ["RuntimeError: HTTP 500"], 0.3),
    ]
    summary = TargetSummary.of(outcomes)
    assert summary.throughput == Spread(2.0, 2.0, 2.0, 2)
    assert summary.efficiency.median == pytest.approx(2.0 / IDEAL_RUNS_PER_S)
    # 200 ms over 4 runs, 300 ms over 3 runs (the failed one counts: the service did its work)
    cpu = summary.service_cpu_ms
    assert (cpu.min, cpu.median, cpu.max) == pytest.approx((50.0, 75.0, 100.0))
    assert summary.model_cpu_ms is not None and summary.model_cpu_ms.median == pytest.approx(15.0)
    assert summary.service_cap == pytest.approx(1000 / 75)
    assert summary.machine_cap == pytest.approx(2000 / (75 + 15 + 7.5))
    assert (summary.runs, summary.errors) == (7, 1)
    assert summary.cells()[0] == "4 runs x 1 HTTP request(s)"
    assert summary.cells()[-1] == "1 in 7 runs"


def test_load_section_has_a_column_per_target_and_names_the_first_error(tmp_path: Path) -> None:
    agent = [_outcome(1.0, [0.4, 0.5], ["RuntimeError: HTTP 503: busy"], 0.1)]
    loop = [LoadOutcome(wall_s=1.0, run_latencies_s=[0.35], requests_per_run=3, service_cpu_s=0.01)]
    section = load_section({AGENT_RUNS: agent, LLM_LOOP: loop}, warm_up_runs=20, charts_dir=tmp_path)
    table = section.tables[0]
    assert table.columns == ["figure", "`fncall serve`: agent runs", "LLM service: client-driven loop"]
    assert table.rows[0] == ["load per repeat", "3 runs x 1 HTTP request(s)", "1 runs x 3 HTTP request(s)"]
    assert table.rows[6][2] == "in the service"
    assert section.findings[-1] == "First error: RuntimeError: HTTP 503: busy"
    assert section.charts == ["bench_service_load.png"]
    assert (tmp_path / "bench_service_load.png").is_file()


def test_agent_runs_over_a_real_fncall_serve_answer_the_task_in_three_llm_steps() -> None:
    with agent_service(latency_s=0.01) as target:
        outcome = asyncio.run(drive_agent_runs(target.service.base_url, target.agent_id, 4, 4))
        verbose = httpx.post(
            f"{target.service.base_url}/v1/agents/{target.agent_id}/runs",
            json={"input": TASK, "verbose": True},
            timeout=30,
        ).json()
    assert outcome.errors == []
    assert outcome.completed == 4
    assert verbose["final_answer"] == ANSWER
    steps = [(step["kind"], step["index"]) for step in verbose["steps"]]
    assert steps == [("llm", 1), ("tool", 1), ("llm", 2), ("tool", 2), ("llm", 3)]
    results = [step["result"] for step in verbose["steps"] if step["kind"] == "tool"]
    assert [(result["name"], result["is_error"]) for result in results] == [("convert_currency", False)] * 2
