"""The report's chart: pass rate per category (and overall) as grouped bars, one bar per target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fncall.evals.grounding.cases import CATEGORIES
from fncall.evals.grounding.report import TargetSummary


def render_chart(summaries: Sequence[TargetSummary], path: Path) -> None:
    """Writes a PNG of grouped bars; targets that did not run are left out."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    ran = [s for s in summaries if not s.unavailable and s.overall.total]
    groups = [c for c in CATEGORIES if any(s.by_category[c].total for s in ran)] + ["overall"]
    figure, axes = plt.subplots(figsize=(max(8.0, 1.6 * len(groups)), 4.8), dpi=110)
    width = 0.8 / max(1, len(ran))
    for index, summary in enumerate(ran):
        rates = [
            100 * ((summary.overall if group == "overall" else summary.by_category[group]).rate or 0.0)
            for group in groups
        ]
        offsets = [position + (index - (len(ran) - 1) / 2) * width for position in range(len(groups))]
        median = f", median {summary.median_seconds:.2f} s" if summary.median_seconds is not None else ""
        bars = axes.bar(offsets, rates, width, label=f"{summary.name}{median}")
        axes.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    axes.set_xticks(range(len(groups)), [group.replace("_", "\n") for group in groups], fontsize=9)
    axes.set_ylim(0, 110)
    axes.set_ylabel("cases passed (%)")
    axes.set_title("Grounding evaluation: pass rate per category")
    axes.axhline(90, color="grey", linewidth=0.6, linestyle="--")
    if ran:
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(3, len(ran)))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
