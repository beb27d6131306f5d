"""The BFCL run's results on disk: one JSON line per case and mode, a summary per category and mode as
JSON and Markdown, and a bar chart."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fncall.evals.bfcl.data import SINGLE_TURN_CATEGORIES
from fncall.evals.bfcl.runner import LLM_FAILURE_ERROR, CaseResult

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
CHART_FILE = "bfcl.png"
ALL_CASES = "all cases"


@dataclass
class Cell:
    """The tally of one category in one mode."""

    correct: int = 0
    total: int = 0
    llm_failures: int = 0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies_s) if self.latencies_s else 0.0

    @property
    def median_latency_s(self) -> float:
        """The typical case: unlike the mean, not moved by one case that waited on a busy machine."""
        return statistics.median(self.latencies_s) if self.latencies_s else 0.0

    def add(self, result: CaseResult) -> None:
        self.total += 1
        self.correct += int(result.valid)
        self.llm_failures += int(result.error_type == LLM_FAILURE_ERROR)
        self.latencies_s.append(result.latency_s)


@dataclass
class Summary:
    """Accuracy per category and mode (and over all cases), and the error types seen per mode."""

    categories: list[str]
    modes: list[str]
    cells: dict[tuple[str, str], Cell]
    errors: dict[str, Counter[str]] = field(default_factory=dict)

    def cell(self, category: str, mode: str) -> Cell:
        return self.cells.get((category, mode), Cell())

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": self.categories,
            "modes": self.modes,
            "accuracy": {
                category: {
                    mode: {
                        "accuracy": round(self.cell(category, mode).accuracy, 4),
                        "correct": self.cell(category, mode).correct,
                        "total": self.cell(category, mode).total,
                        "llm_failures": self.cell(category, mode).llm_failures,
                        "mean_latency_s": round(self.cell(category, mode).mean_latency_s, 3),
                        "median_latency_s": round(self.cell(category, mode).median_latency_s, 3),
                    }
                    for mode in self.modes
                }
                for category in [*self.categories, ALL_CASES]
            },
            "error_types": {
                mode: dict(self.errors.get(mode, Counter()).most_common()) for mode in self.modes
            },
        }


def summarise(results: Sequence[CaseResult]) -> Summary:
    """Tally results per category and mode, in the order they first appear, plus an all-cases row."""
    categories = list(dict.fromkeys(result.category for result in results))
    modes = list(dict.fromkeys(result.mode for result in results))
    cells: dict[tuple[str, str], Cell] = {}
    errors: dict[str, Counter[str]] = {mode: Counter() for mode in modes}
    for result in results:
        for category in (result.category, ALL_CASES):
            cells.setdefault((category, result.mode), Cell()).add(result)
        if not result.valid:
            errors[result.mode][result.error_type or "unknown"] += 1
    return Summary(categories, modes, cells, errors)


def append_result(path: Path, result: CaseResult) -> None:
    """Add one result to a JSON Lines file (a run that stops half way keeps what it has)."""
    with path.open("a", encoding="utf-8") as file:
        file.write(result.model_dump_json() + "\n")


def read_results(path: Path) -> list[CaseResult]:
    """The results a JSON Lines file holds."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [CaseResult.model_validate_json(line) for line in lines if line.strip()]


def finished_results(path: Path, modes: Sequence[str]) -> list[CaseResult]:
    """The results of a JSON Lines file for the cases it holds in every one of `modes`: what a resumed run
    keeps (the case a stopped run was in the middle of runs again in all modes)."""
    return _in_every_mode([result for result in read_results(path) if result.mode in modes], len(modes))


def combined_results(paths: Sequence[Path]) -> list[CaseResult]:
    """Several runs' JSON Lines files as one sample, in BFCL's order of categories: a case and mode seen twice
    counts once (the first file's answer), and a case some mode lacks (a stopped run's last case) is left out
    of every mode."""
    results: dict[tuple[str, str, str], CaseResult] = {}
    for path in paths:
        for result in read_results(path):
            results.setdefault((result.category, result.id, result.mode), result)
    finished = _in_every_mode(list(results.values()), len({result.mode for result in results.values()}))
    order = {category: index for index, category in enumerate(SINGLE_TURN_CATEGORIES)}
    return sorted(finished, key=lambda result: order.get(result.category, len(order)))


def _in_every_mode(results: Sequence[CaseResult], mode_count: int) -> list[CaseResult]:
    """The results of the cases answered in `mode_count` modes (each case and mode once in `results`)."""
    seen = Counter((result.category, result.id) for result in results)
    return [result for result in results if seen[(result.category, result.id)] == mode_count]


def markdown_table(summary: Summary) -> str:
    """Accuracy per category (rows) and mode (columns) as `0.750 (6/8)`, then median latency per mode."""
    header = ["category", *summary.modes]
    rows = [header, ["---"] + ["---:"] * len(summary.modes)]
    for category in [*summary.categories, ALL_CASES]:
        label = f"**{category}**" if category == ALL_CASES else category
        rows.append([label, *(_accuracy_text(summary.cell(category, mode)) for mode in summary.modes)])
    rows.append(
        [
            "median latency (s)",
            *(f"{summary.cell(ALL_CASES, mode).median_latency_s:.2f}" for mode in summary.modes),
        ]
    )
    failures = [summary.cell(ALL_CASES, mode).llm_failures for mode in summary.modes]
    if any(failures):
        rows.append(["backend failures", *(str(count) for count in failures)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def markdown_error_table(summary: Summary) -> str:
    """How many wrong answers of each BFCL error type each mode gave."""
    kinds = sorted({kind for counter in summary.errors.values() for kind in counter})
    if not kinds:
        return "No wrong answers."
    rows = [["error type", *summary.modes], ["---"] + ["---:"] * len(summary.modes)]
    for kind in kinds:
        rows.append([f"`{kind}`", *(str(summary.errors[mode][kind]) for mode in summary.modes)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def markdown_report(summary: Summary, run: dict[str, Any]) -> str:
    """The whole report: what was run, the accuracy table, the error types."""
    lines = ["# BFCL results", ""]
    lines += [f"- **{key}**: {value}" for key, value in run.items()]
    lines += ["", "## Accuracy per category and mode", "", markdown_table(summary), ""]
    lines += ["## Wrong answers by BFCL error type", "", markdown_error_table(summary), ""]
    return "\n".join(lines)


def write_chart(summary: Summary, path: Path, title: str = "BFCL accuracy") -> None:
    """A grouped bar chart: one group per category (and all cases), one bar per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*summary.categories, ALL_CASES]
    width = 0.8 / max(len(summary.modes), 1)
    figure, axes = plt.subplots(figsize=(max(7.0, 1.1 * len(groups) + 3), 4.8))
    for index, mode in enumerate(summary.modes):
        positions = [group + (index - (len(summary.modes) - 1) / 2) * width for group in range(len(groups))]
        heights = [summary.cell(category, mode).accuracy for category in groups]
        bars = axes.bar(positions, heights, width, label=mode)
        axes.bar_label(bars, labels=[f"{height:.2f}" for height in heights], fontsize=7, padding=1)
    labels = [
        f"{_wrapped(group)}\nn={max(summary.cell(group, m).total for m in summary.modes)}" for group in groups
    ]
    axes.set_xticks(range(len(groups)), labels, fontsize=8)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("accuracy (BFCL checker)")
    axes.set_title(title)
    axes.legend(title="mode", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(
    results: Sequence[CaseResult], output_dir: Path, run: dict[str, Any], title: str | None = None
) -> Summary:
    """Write summary.json, report.md and the chart next to the results; returns the summary."""
    summary = summarise(results)
    payload = {"run": run, **summary.to_json()}
    (output_dir / SUMMARY_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    (output_dir / REPORT_FILE).write_text(markdown_report(summary, run))
    chart_title = title or f"BFCL accuracy: {run.get('model', 'model')}"
    write_chart(summary, output_dir / CHART_FILE, title=chart_title)
    return summary


def _accuracy_text(cell: Cell) -> str:
    return f"{cell.accuracy:.3f} ({cell.correct}/{cell.total})" if cell.total else "n/a"


def _wrapped(category: str) -> str:
    return category.replace("_", "_\n", 1) if len(category) > 12 else category
