"""How the report shows times and ratios."""

from __future__ import annotations

import math

__all__ = ["DASH", "TIMES", "ms", "span", "us", "x"]

DASH = "\u2013"
"""An en dash, for ranges."""

TIMES = "\u00d7"
"""A multiplication sign."""


def us(value: float) -> str:
    """Microseconds, shown in the unit that fits."""
    if math.isnan(value):
        return "n/a"
    if value >= 1e6:
        return f"{value / 1e6:.2f} s"
    if value >= 1e3:
        return f"{value / 1e3:.2f} ms"
    return f"{value:.0f} µs" if value >= 10 else f"{value:.1f} µs"


def ms(value: float) -> str:
    """Milliseconds, shown in the unit that fits."""
    return us(value * 1e3)


def x(value: float) -> str:
    """A ratio."""
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def span(low: str, high: str) -> str:
    """A range of two shown values."""
    return f"{low}{DASH}{high}"
