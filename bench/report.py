"""Figures and the results table: percentiles, one `Row` per measure, Markdown rendering.

Pure: no I/O beyond returning strings. A row holds our figure, the baseline's
(measured in the same run), how to compare them and the target, and decides
whether the target is met. It never raises on a missed target: benchmarks
report, they do not fail.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Compare = Literal["ratio", "added", "none"]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True)
class Target:
    """What a row must reach: `ours <op> limit`, on the ratio, the difference or the value."""

    text: str
    on: Literal["ratio", "added", "value"]
    op: Literal["<=", ">="]
    limit: float

    def met(self, row: Row) -> bool | None:
        got = {"ratio": row.ratio, "added": row.added, "value": row.ours}[self.on]
        if got is None or math.isnan(got):
            return None
        return got <= self.limit if self.op == "<=" else got >= self.limit


@dataclass(frozen=True)
class Row:
    measure: str
    ours: float | None
    baseline: float | None = None
    unit: str = ""
    compare: Compare = "ratio"
    target: Target | None = None
    note: str = ""  # shown instead of figures, e.g. "not measured: ..."
    digits: int = 2

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    @property
    def added(self) -> float | None:
        if self.ours is None or self.baseline is None:
            return None
        return self.ours - self.baseline

    @property
    def met(self) -> bool | None:
        if self.note or self.target is None:
            return None
        return self.target.met(self)


def _num(value: float | None, unit: str, digits: int) -> str:
    if value is None or math.isnan(value):
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def _compared(row: Row) -> str:
    if row.compare == "ratio" and row.ratio is not None and not math.isnan(row.ratio):
        r = row.ratio
        return f"{r:.0f}x" if r >= 100 else f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"
    if row.compare == "added" and row.added is not None and not math.isnan(row.added):
        return f"{row.added:+.{row.digits}f} {row.unit}".rstrip()
    return "—"


def render(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (readable as plain text too)."""
    header = ("measure", "ours", "baseline", "ratio", "target", "met?")
    lines = [header]
    for row in rows:
        met = {True: "yes", False: "**NO**", None: "—"}[row.met]
        if row.note:
            lines.append(
                (row.measure, row.note, "", "", row.target.text if row.target else "", "—")
            )
            continue
        lines.append(
            (
                row.measure,
                _num(row.ours, row.unit, row.digits),
                _num(row.baseline, row.unit, row.digits),
                _compared(row),
                row.target.text if row.target else "",
                met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    return "\n".join(out)
