"""Small inline SVG charts for the report: no library, no network, the same bytes every run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 24, 28
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _number(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.2g}"


def _frame(title: str, lo: float, hi: float) -> list[str]:
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = TOP + (1 - frac) * (HEIGHT - TOP - BOTTOM)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_number(lo + frac * (hi - lo))}</text>"
        )
    return parts


def line_chart(title: str, series: Mapping[str, Sequence[float]], x_label: str = "week") -> str:
    """Lines over steps 0..n-1, one per series, with a legend."""
    values = [v for s in series.values() for v in s]
    if not values:
        return f"<p>{escape(title)}: no data</p>"
    lo, hi = min(0.0, min(values)), max(values)
    hi = hi if hi > lo else lo + 1
    n = max(len(s) for s in series.values())
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, lo, hi)
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(
            f"{LEFT + (k / max(n - 1, 1)) * plot_w:.1f},"
            f"{TOP + (1 - (v - lo) / (hi - lo)) * plot_h:.1f}"
            for k, v in enumerate(s)
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
        parts.append(
            f'<text x="{LEFT + i * plot_w / len(series):.1f}" y="{HEIGHT - 4}" font-size="9" '
            f'fill="{colour}">{escape(name[:24])}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 15}" font-size="9" text-anchor="end">'
        f"{escape(x_label)} 0 to {n - 1}</text></svg>"
    )
    return "".join(parts)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """Vertical bars, one per label."""
    if not values:
        return f"<p>{escape(title)}: no data</p>"
    lo, hi = 0.0, max(max(values), 0.0)
    hi = hi if hi > lo else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(values)
    parts = _frame(title, lo, hi)
    for k, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = max(v, 0) / hi * plot_h
        x = LEFT + k * step
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{TOP + plot_h - h:.1f}" width="{step - 2:.1f}" '
            f'height="{h:.1f}" fill="{COLOURS[0]}"><title>{escape(label)}: {v:.4g}</title></rect>'
            f'<text x="{x + step / 2:.1f}" y="{HEIGHT - BOTTOM + 12}" font-size="9" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
