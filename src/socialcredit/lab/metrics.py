"""Metrics of a run: one long table, a row per (scheme, week, metric, group).

Weekly rows have the week (0-based) and the date of evaluation; summary rows have an empty
week. docs/lab.md lists every metric. The table is written next to the report as CSV and
Parquet, so it can be read by any tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

METRICS_SCHEMA = pa.schema(
    [
        pa.field("scheme", pa.string(), nullable=False),
        pa.field("critical_findings", pa.bool_(), nullable=False),
        pa.field("week", pa.int32(), nullable=True),
        pa.field("date", pa.string(), nullable=True),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)


def gini(values: npt.NDArray[np.int64]) -> float:
    """The Gini coefficient of scores, shifted so the lowest possible is 0 when some are
    negative; 0 for an empty or all-zero set."""
    x = np.sort(values.astype(np.float64))
    if len(x) == 0:
        return 0.0
    if x[0] < 0:
        x = x - x[0]
    total = x.sum()
    if total == 0:
        return 0.0
    n = len(x)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


@dataclass
class MetricsTable:
    """Rows of the metrics table of one scheme, added as the run goes."""

    scheme: str
    critical: bool
    week: list[int | None] = field(default_factory=list)
    date: list[str | None] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def add(
        self,
        metric: str,
        value: float,
        *,
        group: str = "",
        week: int | None = None,
        date: str | None = None,
    ) -> None:
        """Add one row."""
        self.week.append(week)
        self.date.append(date)
        self.metric.append(metric)
        self.group.append(group)
        self.value.append(float(value))

    def to_table(self) -> pa.Table:
        """The rows as an Arrow table of :data:`METRICS_SCHEMA`."""
        n = len(self.metric)
        return pa.Table.from_arrays(
            [
                pa.array([self.scheme] * n, pa.string()),
                pa.array([self.critical] * n, pa.bool_()),
                pa.array(self.week, pa.int32()),
                pa.array(self.date, pa.string()),
                pa.array(self.metric, pa.string()),
                pa.array(self.group, pa.string()),
                pa.array(self.value, pa.float64()),
            ],
            schema=METRICS_SCHEMA,
        )


def series(table: pa.Table, metric: str, group: str = "") -> list[float]:
    """The weekly values of one metric and group, in week order."""
    rows = [
        (w, v)
        for w, m, g, v in zip(
            table.column("week").to_pylist(),
            table.column("metric").to_pylist(),
            table.column("group").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
        if m == metric and g == group and w is not None
    ]
    return [v for _, v in sorted(rows)]


def summary(table: pa.Table, metric: str) -> dict[str, float]:
    """The summary values (no week) of one metric, by group."""
    out: dict[str, float] = {}
    for w, m, g, v in zip(
        table.column("week").to_pylist(),
        table.column("metric").to_pylist(),
        table.column("group").to_pylist(),
        table.column("value").to_pylist(),
        strict=True,
    ):
        if m == metric and w is None:
            out[g] = v
    return out


def groups(table: pa.Table, metric: str) -> list[str]:
    """The groups of a weekly metric, in order of first appearance."""
    seen: dict[str, None] = {}
    for w, m, g in zip(
        table.column("week").to_pylist(),
        table.column("metric").to_pylist(),
        table.column("group").to_pylist(),
        strict=True,
    ):
        if m == metric and w is not None:
            seen.setdefault(g, None)
    return list(seen)
