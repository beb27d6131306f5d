"""PNG charts for docs/: bars with min-max whiskers and curves with min-max bands (matplotlib, Agg).

Each function writes one file into docs/ and returns its name relative to docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from bench.report import DOCS_DIR
from bench.stats import Spread

_COLOURS = ("#1f6feb", "#d1242f", "#8250df", "#1a7f37", "#bf8700", "#57606a")


def bar_chart(
    filename: str,
    *,
    title: str,
    labels: Sequence[str],
    spreads: Sequence[Spread],
    unit: str,
    log: bool = False,
    directory: Path = DOCS_DIR,
) -> str:
    """Bars at the median with whiskers from min to max, one per label."""
    figure, axes = plt.subplots(figsize=(7.5, 4.0))
    medians = [spread.median for spread in spreads]
    whiskers = [
        [spread.median - spread.min for spread in spreads],
        [spread.max - spread.median for spread in spreads],
    ]
    positions = range(len(labels))
    axes.bar(positions, medians, yerr=whiskers, capsize=5, color=_colours(len(labels)))
    axes.set_xticks(list(positions), list(labels), rotation=15, ha="right")
    axes.set_ylabel(unit)
    if log:
        axes.set_yscale("log")
    for position, median in zip(positions, medians, strict=True):
        axes.annotate(_label(median), (position, median), ha="center", va="bottom", fontsize=8)
    return _save(figure, axes, title, directory / filename)


def grouped_bar_chart(
    filename: str,
    *,
    title: str,
    groups: Sequence[str],
    series: dict[str, Sequence[Spread]],
    unit: str,
    directory: Path = DOCS_DIR,
) -> str:
    """Bars per group (e.g. a metric), one bar per series (e.g. a server), whiskers from min to max."""
    figure, axes = plt.subplots(figsize=(7.5, 4.0))
    width = 0.8 / max(len(series), 1)
    for index, ((name, spreads), colour) in enumerate(
        zip(series.items(), _colours(len(series)), strict=True)
    ):
        positions = [group + (index - (len(series) - 1) / 2) * width for group in range(len(groups))]
        medians = [spread.median for spread in spreads]
        whiskers = [
            [spread.median - spread.min for spread in spreads],
            [spread.max - spread.median for spread in spreads],
        ]
        axes.bar(positions, medians, width, yerr=whiskers, capsize=4, label=name, color=colour)
    axes.set_xticks(list(range(len(groups))), list(groups))
    axes.set_ylabel(unit)
    axes.legend()
    return _save(figure, axes, title, directory / filename)


def curve_chart(
    filename: str,
    *,
    title: str,
    xs: Sequence[float],
    series: dict[str, Sequence[Spread]],
    x_label: str,
    y_label: str,
    log: bool = True,
    directory: Path = DOCS_DIR,
) -> str:
    """One line per series through the medians, shaded from min to max."""
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for (name, spreads), colour in zip(series.items(), _colours(len(series)), strict=True):
        axes.plot(xs, [spread.median for spread in spreads], marker="o", label=name, color=colour)
        axes.fill_between(
            xs,
            [spread.min for spread in spreads],
            [spread.max for spread in spreads],
            alpha=0.2,
            color=colour,
        )
    if log:
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
    axes.set_xticks(list(xs), [f"{x:g}" for x in xs])
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.legend()
    return _save(figure, axes, title, directory / filename)


def histogram_chart(
    filename: str,
    *,
    title: str,
    samples: Sequence[float],
    x_label: str,
    markers: dict[str, float],
    directory: Path = DOCS_DIR,
) -> str:
    """A histogram of `samples` with vertical lines at `markers` (e.g. p50, p99)."""
    figure, axes = plt.subplots(figsize=(7.5, 4.0))
    axes.hist(samples, bins=60, color=_COLOURS[0], alpha=0.8)
    for (label, value), colour in zip(markers.items(), _COLOURS[1:], strict=False):
        axes.axvline(value, color=colour, linestyle="--", label=f"{label} {value:,.1f}")
    axes.set_xlabel(x_label)
    axes.set_ylabel("requests")
    axes.legend()
    return _save(figure, axes, title, directory / filename)


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _colours(count: int) -> list[str]:
    return [_COLOURS[index % len(_COLOURS)] for index in range(count)]


def _save(figure: plt.Figure, axes: plt.Axes, title: str, path: Path) -> str:
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name
