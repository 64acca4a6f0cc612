"""The lab report: one self-contained HTML file, a column per scheme (docs/lab.md).

Nothing is fetched: styles are inline and plots are inline SVG. Files are written
atomically (a temporary file in the same folder, then a rename), so an interrupted run
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from socialcredit.lab.metrics import groups, series, summary
from socialcredit.lab.simulate import Run, Settings
from socialcredit.lab.svg import bar_chart, line_chart

CRITICAL_NOTE = (
    "This scheme has CRITICAL rights-audit findings. It was simulated for study only; a "
    "system operating on real records refuses it."
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.grid{border-collapse:collapse;width:100%}
table.grid>tbody>tr>td,table.grid>thead>tr>th{vertical-align:top;border:1px solid #ccc;padding:6px}
th.row{text-align:left;background:#f4f4f4;width:11em}
.critical{background:#fdd;border:2px solid #b00;padding:6px;font-weight:bold}
.warning{color:#850}
table.kv td{padding:1px 6px;border:none}
code{font-size:90%}
"""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def metrics_paths(report: Path) -> tuple[Path, Path]:
    """Where the metrics table goes: next to the report, as CSV and Parquet."""
    stem = report.name[: -len(report.suffix)] if report.suffix else report.name
    return report.with_name(f"{stem}.metrics.csv"), report.with_name(f"{stem}.metrics.parquet")


def write_outputs(report: Path, settings: Settings, runs: Sequence[Run], command: str) -> None:
    """Write the metrics table (CSV and Parquet), then the report."""
    table = pa.concat_tables([r.metrics for r in runs])
    csv_path, parquet_path = metrics_paths(report)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    write_atomic(csv_path, buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_atomic(parquet_path, buf.getvalue())
    write_atomic(report, render(settings, runs, command).encode("utf-8"))


def _audit_cell(run: Run) -> str:
    parts = []
    if run.critical:
        parts.append(f'<div class="critical">{escape(CRITICAL_NOTE)}</div>')
    if not run.findings:
        parts.append("<p>No findings.</p>")
    items = "".join(
        f'<li class="{f.severity}"><b>{f.severity}</b> <code>{escape(f.code)}</code> '
        f"{escape(f.where)}: {escape(f.message)}</li>"
        for f in run.findings
    )
    if items:
        parts.append(f"<ul>{items}</ul>")
    return "".join(parts)


def _one(table: pa.Table, metric: str, group: str = "") -> float:
    return summary(table, metric).get(group, 0.0)


def _numbers_cell(run: Run) -> str:
    m = run.metrics
    first = _one(m, "penalized_conduct_per_1000", "first")
    last = _one(m, "penalized_conduct_per_1000", "last")
    rows = [
        ("subjects scored", f"{len(run.states):,}"),
        ("records in the ledger", f"{int(_one(m, 'records')):,}"),
        ("false records", f"{int(_one(m, 'false_records')):,}"),
        ("false records voided on appeal", f"{int(_one(m, 'false_records_voided')):,}"),
        ("wrongful listings, person-weeks", f"{int(_one(m, 'wrongful_person_weeks')):,}"),
        ("subjects ever wrongfully listed", f"{int(_one(m, 'wrongfully_listed_subjects')):,}"),
        ("Gini of scores at the end", f"{_one(m, 'score_gini_final'):.4f}"),
        ("penalized conduct per 1,000 per year: first 13 weeks", f"{first:.1f}"),
        ("… last 13 weeks", f"{last:.1f}"),
        (
            "denied actions per 1,000 subjects per year",
            f"{_one(m, 'denied_per_1000_per_year'):.1f}",
        ),
        (
            "lists at the end",
            ", ".join(f"{k} {v:,}" for k, v in run.states.list_sizes().items()) or "none",
        ),
    ]
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _plots(run: Run) -> list[tuple[str, str]]:
    m = run.metrics
    lists = {g: series(m, "list_size", g) for g in groups(m, "list_size")}
    grades = {g: series(m, "grade_share", g) for g in groups(m, "grade_share")}
    scores = {g: series(m, "score_percentile", g) for g in ("p10", "p50", "p90")}
    flows = {}
    for g in groups(m, "list_entries"):
        flows[f"{g} in"] = series(m, "list_entries", g)
        flows[f"{g} out"] = series(m, "list_exits", g)
    share = summary(m, "sanctioned_share")
    deciles = [f"decile_{d:02d}" for d in range(1, 11)]
    donated = summary(m, "donated_per_person")
    return [
        ("List sizes over time", line_chart("subjects on each list", lists)),
        ("Flows in and out of lists", line_chart("entries and exits per week", flows)),
        ("Grade shares over time", line_chart("share of subjects in each grade", grades)),
        ("Score distribution over time", line_chart("score percentiles", scores)),
        (
            "Wrongful listings",
            line_chart(
                "listed while a false record counts",
                {"subjects": series(m, "wrongfully_listed")},
            ),
        ),
        (
            "Who bears sanctions: income decile",
            bar_chart(
                "share of person-weeks sanctioned, decile 1 (poorest) to 10",
                [str(d) for d in range(1, 11)],
                [share.get(d, 0.0) for d in deciles],
            ),
        ),
        (
            "Who bears sanctions: area and kind",
            bar_chart(
                "share of subject-weeks sanctioned",
                ["urban", "rural", "organization"],
                [share.get(k, 0.0) for k in ("urban", "rural", "organization")],
            ),
        ),
        (
            "Penalized conduct",
            line_chart(
                "events per week (true conduct)", {"events": series(m, "penalized_conduct")}
            ),
        ),
        (
            "Points bought back: donations by income",
            bar_chart(
                "recorded donations per person in the period, by decile",
                [str(d) for d in range(1, 11)],
                [donated.get(d, 0.0) for d in deciles],
            ),
        ),
    ]


def render(settings: Settings, runs: Sequence[Run], command: str) -> str:
    """The report as one HTML page."""
    params = settings.parameters()
    names = [r.scheme.scheme.scheme for r in runs]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = [
        ("Rights audit", [_audit_cell(r) for r in runs]),
        (
            "Scheme",
            [
                f"{escape(r.scheme.scheme.title or r.scheme.scheme.scheme)}<br>"
                f"<code>{escape(r.scheme.source)}</code>"
                for r in runs
            ],
        ),
        ("Key numbers", [_numbers_cell(r) for r in runs]),
    ]
    plots = [_plots(r) for r in runs]
    for k, (title, _) in enumerate(plots[0] if plots else []):
        rows.append((title, [p[k][1] for p in plots]))
    body = "".join(
        f'<tr><th class="row">{escape(title)}</th>'
        + "".join(f"<td>{c}</td>" for c in cells)
        + "</tr>"
        for title, cells in rows
    )
    critical = [r.scheme.scheme.scheme for r in runs if r.critical]
    banner = (
        f'<div class="critical">Schemes with critical rights-audit findings: '
        f"{escape(', '.join(critical))}. {escape(CRITICAL_NOTE)}</div>"
        if critical
        else ""
    )
    world = settings.world
    data = json.dumps(params, sort_keys=True).replace("</", "<\\/")
    param_rows = "".join(
        f"<tr><td>{escape(k)}</td><td><code>{escape(str(v))}</code></td></tr>"
        for k, v in params.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>socialcredit lab report: {escape(", ".join(names))} on {escape(world.world.world)}</title>
<style>{_STYLE}</style></head><body>
<h1>Lab report: {escape(", ".join(names))} on the world {escape(world.world.world)}</h1>
<p>Synthetic subjects and records; not about real people. Seed <b>{settings.seed}</b>,
{settings.persons:,} persons and {settings.organizations:,} organizations,
{settings.weeks} weekly steps from {params["start"]} to {params["end"]}.</p>
{banner}
<table class="grid"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Parameters</h2>
<p>Reproduce with: <code>{escape(command)}</code></p>
<table class="kv">{param_rows}</table>
<script type="application/json" id="parameters">{data}</script>
<details><summary>The world file ({escape(world.source)})</summary>
<pre>{escape(world.text)}</pre></details>
<p>Metrics for every week are in the table next to this file (docs/lab.md lists them).</p>
</body></html>
"""
