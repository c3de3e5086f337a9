"""Summaries of timing samples: medians with their spread, and ratios to a baseline."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Summary", "ratio", "summarize"]


@dataclass(frozen=True)
class Summary:
    """A sample's size, median, quartiles, 99th percentile and extremes (one unit throughout)."""

    n: int
    p50: float
    q1: float
    q3: float
    p99: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the results JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Back from the results JSON."""
        return cls(**data)

    def scaled(self, factor: float) -> Summary:
        """The same sample in another unit."""
        return Summary(
            self.n,
            *(v * factor for v in (self.p50, self.q1, self.q3, self.p99, self.low, self.high)),
        )


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Sequence[float]) -> Summary:
    """The summary of ``samples`` (at least one).

    Raises:
        ValueError: no samples.
    """
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return Summary(
        n=len(ordered),
        p50=statistics.median(ordered),
        q1=_percentile(ordered, 0.25),
        q3=_percentile(ordered, 0.75),
        p99=_percentile(ordered, 0.99),
        low=ordered[0],
        high=ordered[-1],
    )


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``, or NaN when the baseline is zero or missing."""
    return value / baseline if baseline else math.nan
