"""Small inline SVG charts for the report: no library, no script, no network, and the same
bytes for the same numbers.

Every chart is an ``<svg role="img">`` whose ``aria-label`` says what it shows and
summarizes the numbers (first, last and largest value of each line; every bar), so a reader
who cannot see it gets the figures. Lines differ by dash pattern as well as by colour, and
every colour has a contrast of at least 4.5:1 against white (checked by a test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 420, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
COLOURS = ("#1f5f99", "#b22222", "#2a7a2a", "#8a5300", "#6a3d9a", "#0e6e6e", "#a8326e", "#555555")
DASHES = ("", "6 3", "2 2", "8 3 2 3", "4 4", "1 3", "10 4", "3 6")
TEXT = "#222222"
GRID = "#cccccc"


def number(v: float) -> str:
    """A value as printed on an axis or in a label: 3 significant digits, thousands apart."""
    if v != v:  # NaN
        return "n/a"
    if abs(v) >= 1000 or v == int(v):
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def _open(label: str, title: str) -> list[str]:
    return [
        f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(label)}" font-family="system-ui,sans-serif" '
        f'fill="{TEXT}"><title>{escape(title)}</title>'
    ]


def _axis(lo: float, hi: float, step: float) -> list[str]:
    parts = []
    ticks = round((hi - lo) / step)
    for k in range(ticks + 1):
        value = lo + k * step
        y = TOP + (1 - (value - lo) / (hi - lo)) * PLOT_H
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{number(value)}</text>"
        )
    return parts


def nice_range(values: Sequence[float], *, zero: bool = True) -> tuple[float, float, float]:
    """An axis for ``values``: (low, high, tick step), the step 1, 2, 2.5 or 5 times a power
    of ten giving at most 6 ticks, low and high multiples of it; from 0 when ``zero``."""
    lo, hi = min(values), max(values)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        lo, hi = (lo - 1, hi + 1) if not zero else (lo, lo + 1) if lo >= 0 else (lo - 1, 0.0)
    power = 10 ** math.floor(math.log10((hi - lo) / 5))
    for m in (1, 2, 2.5, 5, 10, 20):
        step = m * power
        low, high = math.floor(lo / step), math.ceil(hi / step)
        if high - low <= 5:
            break
    return low * step, high * step, step


def legend(names: Sequence[str]) -> str:
    """An HTML legend for a line chart: a swatch of each line's colour and dash, and its name."""
    items = []
    for i, name in enumerate(names):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(
            f'<li><svg width="26" height="10" aria-hidden="true"><line x1="1" x2="25" y1="5" '
            f'y2="5" stroke="{colour}" stroke-width="2.5"{dash_attr}/></svg> '
            f"{escape(name)}</li>"
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def line_chart(
    title: str,
    series: Mapping[str, Sequence[float]],
    *,
    x_label: str = "week",
    first_week: int = 0,
    zero: bool = True,
) -> str:
    """Lines over weekly steps, one per series, with a legend below; a note when empty. The
    value axis starts at 0 unless ``zero`` is false (then it fits the values)."""
    values = [v for s in series.values() for v in s]
    if not values:
        return f'<p class="none">{escape(title)}: no data.</p>'
    lo, hi, tick = nice_range(values, zero=zero)
    n = max(len(s) for s in series.values())
    described = "; ".join(
        f"{name}: from {number(s[0])} to {number(s[-1])}, largest {number(max(s))}"
        for name, s in series.items()
        if s
    )
    last = first_week + n - 1
    parts = _open(f"{title}. Line chart, {x_label} {first_week} to {last}. {described}.", title)
    parts += _axis(lo, hi, tick)
    for i, s in enumerate(series.values()):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        xs = [LEFT + (k / max(n - 1, 1)) * PLOT_W for k in range(len(s))]
        ys = [TOP + (1 - (v - lo) / (hi - lo)) * PLOT_H for v in s]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
            f'points="{points}"/>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11">{escape(x_label)} {first_week}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">'
        f"{escape(x_label)} {last}</text></svg>"
    )
    return "".join(parts) + (legend(list(series)) if len(series) > 1 else "")


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """Vertical bars, one per label, the value of each in its tooltip and in the label."""
    if not values:
        return f'<p class="none">{escape(title)}: no data.</p>'
    lo, hi, tick = nice_range(values)
    step = PLOT_W / len(values)
    described = "; ".join(f"{k}: {number(v)}" for k, v in zip(labels, values, strict=True))
    parts = _open(f"{title}. Bar chart. {described}.", title)
    parts += _axis(lo, hi, tick)
    zero = TOP + (1 - (0 - lo) / (hi - lo)) * PLOT_H
    for k, (label, v) in enumerate(zip(labels, values, strict=True)):
        top = TOP + (1 - (v - lo) / (hi - lo)) * PLOT_H
        y, h = min(top, zero), abs(zero - top)
        x = LEFT + k * step
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{max(step - 4, 1):.1f}" '
            f'height="{h:.1f}" fill="{COLOURS[0]}"><title>{escape(label)}: {number(v)}</title>'
            f"</rect>"
            f'<text x="{x + step / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="11" '
            f'text-anchor="middle">{escape(label[:12])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a ``#rrggbb`` colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
