"""The benchmark report's arithmetic and rendering (bench/stats.py, bench/report.py): the numbers the
report prints must be computed right even though the benchmarks themselves are not part of `make test`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.report import Section, Table, load_sections, render_report, save_section
from bench.stats import Spread, loglog_slope, paired_ratios, percentile
from bench.stream_parsing import (
    ReparseBaseline,
    call_arguments,
    common_prefix_length,
    deltas,
    model_output,
    parse_with_baseline,
)
from hypothesis import given
from hypothesis import strategies as st

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
