"""The report of an evaluation: per-category pass rates per target, overall, median seconds per case, as a
Markdown table (with the chart and every failure's reasons) and as JSON with every case.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from fncall.evals.grounding.cases import CATEGORIES, GroundingCase
from fncall.evals.grounding.results import TargetRun

REPORT_NAME = "grounding"
ISSUE_TARGET_NAME = "fncall"
TARGET_OVERALL = 0.90
TARGET_CATEGORY = 0.75
TARGET_MEDIAN_S = 2.5
_REASON_CHARS = 260


@dataclass(frozen=True)
class Tally:
    passed: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.total if self.total else None

    def cell(self) -> str:
        if not self.total:
            return "-"
        return f"{self.passed}/{self.total} ({100 * self.passed / self.total:.0f}%)"


@dataclass(frozen=True)
class TargetSummary:
    """One target's numbers: a tally per category, overall, and the median seconds per case."""

    name: str
    by_category: dict[str, Tally] = field(default_factory=dict)
    overall: Tally = Tally(0, 0)
    median_seconds: float | None = None
    unavailable: str | None = None


def summarise(run: TargetRun) -> TargetSummary:
    by_category = {
        category: Tally(
            sum(1 for r in run.results if r.category == category and r.passed),
            sum(1 for r in run.results if r.category == category),
        )
        for category in CATEGORIES
    }
    overall = Tally(sum(1 for r in run.results if r.passed), len(run.results))
    median = statistics.median(r.seconds for r in run.results) if run.results else None
    return TargetSummary(run.name, by_category, overall, median, run.unavailable)


class ReportMeta(BaseModel):
    """How the evaluation was run, written at the top of the report."""

    generated_at: str
    model: str
    machine: str
    max_rounds: int
    concurrency: int
    limit_per_category: int | None = None
    notes: list[str] = Field(default_factory=list)


class ReportDocument(BaseModel):
    """The JSON report: the settings and every case of every target."""

    meta: ReportMeta
    targets: list[TargetRun]


def results_table(summaries: Sequence[TargetSummary], cases: Sequence[GroundingCase]) -> str:
    """The Markdown table: one row per category (with its case count), overall, median seconds."""
    counts = {category: sum(1 for c in cases if c.category == category) for category in CATEGORIES}
    header = "| category | " + " | ".join(f"`{s.name}`" for s in summaries) + " |"
    rule = "|---|" + "---:|" * len(summaries)
    rows = [header, rule]
    for category in CATEGORIES:
        if not counts[category]:
            continue
        cells = [_unavailable_or(s, s.by_category[category].cell()) for s in summaries]
        rows.append(f"| {category} ({counts[category]}) | " + " | ".join(cells) + " |")
    overall = [_unavailable_or(s, f"**{s.overall.cell()}**") for s in summaries]
    rows.append(f"| **overall** ({len(cases)}) | " + " | ".join(overall) + " |")
    medians = [
        _unavailable_or(s, "-" if s.median_seconds is None else f"{s.median_seconds:.2f}") for s in summaries
    ]
    rows.append("| median s per case | " + " | ".join(medians) + " |")
    return "\n".join(rows)


def _unavailable_or(summary: TargetSummary, text: str) -> str:
    return "did not run" if summary.unavailable else text


def issue_targets_line(summary: TargetSummary) -> str:
    """Whether fncall met the targets set for it: >= 90% overall, every category >= 75%, median <= 2.5 s."""
    if summary.unavailable or not summary.overall.total:
        return f"`{summary.name}` did not run, so the targets were not measured."
    overall = summary.overall.rate or 0.0
    weakest = min(
        ((category, tally.rate) for category, tally in summary.by_category.items() if tally.total),
        key=lambda item: item[1] or 0.0,
    )
    median = summary.median_seconds or 0.0
    checks = [
        f"overall {100 * overall:.0f}% (target ≥ {100 * TARGET_OVERALL:.0f}%: "
        f"{_met(overall >= TARGET_OVERALL)})",
        f"weakest category {weakest[0]} {100 * (weakest[1] or 0):.0f}% "
        f"(target ≥ {100 * TARGET_CATEGORY:.0f}% each: {_met((weakest[1] or 0) >= TARGET_CATEGORY)})",
        f"median {median:.2f} s per case (target ≤ {TARGET_MEDIAN_S} s: {_met(median <= TARGET_MEDIAN_S)})",
    ]
    return f"`{summary.name}`: " + "; ".join(checks) + "."


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def agents_line(summaries: Sequence[TargetSummary]) -> str | None:
    """Function calling vs ReAct on these cases, when both agents ran."""
    by_name = {s.name: s for s in summaries if not s.unavailable and s.overall.total}
    fc, react = by_name.get("fc-agent"), by_name.get("react-agent")
    if fc is None or react is None:
        return None
    return (
        f"Function calling vs ReAct (same model, same cases, same tools): `fc-agent` passed "
        f"{fc.overall.cell()}, median {fc.median_seconds or 0:.2f} s; `react-agent` passed "
        f"{react.overall.cell()}, median {react.median_seconds or 0:.2f} s."
    )


def render_markdown(
    runs: Sequence[TargetRun],
    cases: Sequence[GroundingCase],
    meta: ReportMeta,
    *,
    chart_file: str | None = None,
) -> str:
    """The whole Markdown report."""
    summaries = [summarise(run) for run in runs]
    lines = [
        "# Grounding evaluation",
        "",
        f"Produced by `fncall eval grounding` on {meta.generated_at}: {len(cases)} cases in "
        f"{len({c.category for c in cases})} categories, model `{meta.model}`, {meta.machine}.",
        "",
        "A case passes when the calls are the expected ones (in order, never an identical call repeated "
        "after its result) and the final answer is prose that states every expected value exactly as the "
        "tool returned it (131.95 passes, 132 does not). An answer that is only JSON, or contains a call "
        "object or an echoed result, fails. After a tool error the answer must say the tool failed and "
        "state no number that neither the question nor a tool gave. When no offered tool fits, any call "
        "fails. Tools are "
        "deterministic fakes run by the client; every target gets the same system message, tools, "
        f"`temperature=0` and at most {meta.max_rounds} model requests per case, "
        f"{meta.concurrency} case(s) at a time. Seconds are the wall time of a whole case (all rounds); "
        "the load averages under Targets say how much else ran on the CPU meanwhile.",
        "",
        "## Results",
        "",
        results_table(summaries, cases),
        "",
    ]
    if chart_file:
        lines += [f"![pass rate per category and target]({chart_file})", ""]
    lines += ["Targets of the grounding issue (embedded model through `fncall serve-llm`):", ""]
    fncall = next((s for s in summaries if s.name == ISSUE_TARGET_NAME), None)
    lines.append("- " + (issue_targets_line(fncall) if fncall else "`fncall` was not among the targets run."))
    agents = agents_line(summaries)
    if agents:
        lines.append(f"- {agents}")
    lines += ["", "## Targets", ""]
    for run in runs:
        status = f" **Did not run:** {run.unavailable}" if run.unavailable else ""
        load = ""
        if run.load_before is not None and run.load_after is not None:
            load = f" Load average (1 min) {run.load_before:g} before, {run.load_after:g} after."
        lines.append(f"- `{run.name}`: {run.description}.{load}{status}")
    if meta.notes or meta.limit_per_category:
        lines += ["", "## Notes", ""]
        if meta.limit_per_category:
            lines.append(f"- Case limit: the first {meta.limit_per_category} case(s) of each category.")
        lines += [f"- {note}" for note in meta.notes]
    lines += ["", "## Every case", "", _case_matrix(runs, cases), "", "## Why cases failed", ""]
    lines += _failure_lines(runs)
    lines += [
        "",
        f"Every case's calls, tool results, answer and time are in `{REPORT_NAME}.json` next to this file.",
        "",
    ]
    return "\n".join(lines)


def _case_matrix(runs: Sequence[TargetRun], cases: Sequence[GroundingCase]) -> str:
    ran = [run for run in runs if not run.unavailable]
    header = "| case | category | " + " | ".join(f"`{run.name}`" for run in ran) + " |"
    rows = [header, "|---|---|" + "---|" * len(ran)]
    passed = {(r.target, r.case_id): r.passed for run in ran for r in run.results}
    for case in cases:
        cells = []
        for run in ran:
            outcome = passed.get((run.name, case.id))
            cells.append("-" if outcome is None else ("pass" if outcome else "FAIL"))
        rows.append(f"| {case.id} | {case.category} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _failure_lines(runs: Sequence[TargetRun]) -> list[str]:
    lines: list[str] = []
    for run in runs:
        failed = [r for r in run.results if not r.passed]
        if run.unavailable or not failed:
            continue
        lines += [f"### `{run.name}`", ""]
        for result in failed:
            reasons = "; ".join(result.reasons)
            if len(reasons) > _REASON_CHARS:
                reasons = reasons[:_REASON_CHARS] + "…"
            lines.append(f"- {result.case_id}: {_escape_cell(reasons)}")
        lines.append("")
    return lines or ["No case failed."]


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(
    runs: Sequence[TargetRun], cases: Sequence[GroundingCase], meta: ReportMeta, out_dir: Path
) -> dict[str, Path]:
    """Writes grounding.json, grounding.png and grounding.md into `out_dir`; returns their paths."""
    from fncall.evals.grounding.chart import render_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / f"{REPORT_NAME}.json",
        "chart": out_dir / f"{REPORT_NAME}.png",
        "markdown": out_dir / f"{REPORT_NAME}.md",
    }
    document = ReportDocument(meta=meta, targets=list(runs))
    paths["json"].write_text(document.model_dump_json(indent=2) + "\n", encoding="utf-8")
    render_chart([summarise(run) for run in runs], paths["chart"])
    markdown = render_markdown(runs, cases, meta, chart_file=paths["chart"].name)
    paths["markdown"].write_text(markdown, encoding="utf-8")
    return paths
