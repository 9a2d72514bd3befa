"""Formatting every report format shares: seconds, numbers and megabytes as people read them.

What a report shows comes from the view of the run (threshold_probe/view.py); this is only how.
"""

from __future__ import annotations


def fmt_seconds(value: float | None) -> str:
    """0.123 s as '123 ms', 12.3 s as '12.3 s'; '-' for unknown."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_number(value: float | None) -> str:
    """An integer-looking metric without decimals; '-' for unknown."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_mb(value: float | None) -> str:
    """Megabytes with one decimal; '-' for unknown."""
    return "-" if value is None else f"{value:.1f}"
