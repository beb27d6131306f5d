"""Summaries of repeated measurements: min/median/max spreads, paired ratios and percentiles.

Every figure in the report is a spread over repeats, and every comparison a ratio taken repeat by repeat
(both sides measured back to back), because the machine is shared and absolute timings drift.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """The minimum, median and maximum of repeated measurements of one figure."""

    min: float
    median: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        """The spread of `samples`; refuses an empty list, since a figure without a measurement is a bug."""
        if not samples:
            raise ValueError("a spread needs at least one sample")
        return cls(min(samples), statistics.median(samples), max(samples), len(samples))

    def scaled(self, factor: float) -> Spread:
        """The same spread in another unit (e.g. seconds to microseconds)."""
        low, high = sorted((self.min * factor, self.max * factor))
        return Spread(low, self.median * factor, high, self.n)

    def format(self, digits: int = 1) -> str:
        """`median [min, max]`, the form every table cell of the report uses."""
        return f"{_fixed(self.median, digits)} [{_fixed(self.min, digits)}, {_fixed(self.max, digits)}]"

    def as_dict(self) -> dict[str, float]:
        return {"min": self.min, "median": self.median, "max": self.max, "n": self.n}


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """The spread of per-repeat ratios `numerators[i] / denominators[i]`.

    Pairing keeps each ratio within one repeat, where both sides saw the same machine load."""
    if len(numerators) != len(denominators):
        raise ValueError(f"cannot pair {len(numerators)} numerators with {len(denominators)} denominators")
    if any(value == 0 for value in denominators):
        raise ValueError("a ratio's denominator was zero")
    return Spread.of([top / bottom for top, bottom in zip(numerators, denominators, strict=True)])


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100) with linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("a percentile needs at least one sample")
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile lies between 0 and 100, not {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    weight = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * weight


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of log(y) over log(x): 1 for linear growth, 2 for quadratic."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("a slope needs at least two (x, y) points")
    log_x = [math.log(x) for x in xs]
    log_y = [math.log(y) for y in ys]
    mean_x = statistics.fmean(log_x)
    mean_y = statistics.fmean(log_y)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(log_x, log_y, strict=True))
    variance = sum((x - mean_x) ** 2 for x in log_x)
    return covariance / variance


def _fixed(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"
