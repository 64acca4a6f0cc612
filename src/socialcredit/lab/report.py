"""The lab report: one self-contained HTML file, a column per scheme (docs/lab.md).

Nothing is fetched: styles are inline, plots are inline SVG, and there is no script. The
page is built from the metrics table alone (plus each run's scheme, audit findings and
final states), by sections: each section claims the metrics whose names match its
patterns, draws the ones it knows, and draws any other claimed metric generically (a line
per group for a weekly metric, a table or bars for a summary one). A metric no section
claims appears under "Other metrics", so every metric in the table is in the report.

The same runs give the same bytes: there is no timestamp. Files are written atomically and
together (:func:`write_outputs`): an interrupted run leaves the previous files or the new
ones, never half of one, and no temporary file behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from socialcredit.lab.simulate import Run, Settings
from socialcredit.lab.svg import bar_chart, line_chart, number

CRITICAL_NOTE = (
    "This scheme has CRITICAL rights-audit findings. It was simulated for study only; a "
    "system operating on real records refuses it."
)
DECILES = [f"decile_{d:02d}" for d in range(1, 11)]
AREAS = ["urban", "rural", "organization"]
LABELS = {"penalized": "subjects penalized (black list, denied action or score below base)"}
"""Labels of metrics drawn generically, where the name alone says too little."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:100em;color:#222;
background:#fff;line-height:1.4;padding:0 1em}
h2{border-bottom:2px solid #1f5f99;margin-top:1.6em}
.cols{display:grid;gap:1.2em;grid-template-columns:repeat(var(--n),minmax(0,1fr))}
.col{border:1px solid #bbb;border-radius:4px;padding:.6em}
.col h3{margin:.1em 0 .4em}
svg.chart{width:100%;max-width:420px;height:auto;display:block}
.critical{background:#fde8e8;border:2px solid #a00;color:#600;padding:.5em;font-weight:bold}
li.critical{margin:.2em 0}
.warning{color:#6b4200}
.none{color:#444;font-style:italic}
table{border-collapse:collapse}
table.numbers td,table.numbers th{border:1px solid #bbb;padding:3px 8px;text-align:left}
table.numbers td{font-variant-numeric:tabular-nums}
table.kv td{padding:1px 8px 1px 0}
ul.legend{list-style:none;padding:0;margin:.2em 0;font-size:90%}
figure{margin:.6em 0}figure h4{margin:.2em 0}
ul.legend li{display:inline-block;margin-right:1em}
code,pre{font-size:90%}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}
"""


# ---- writing ---------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    write_all({path: data})


def write_all(files: dict[Path, bytes]) -> None:
    """Write several files as one step: all temporary files first (each flushed to disk),
    then the renames, in the given order. Anything raised before the renames (an error, a
    KeyboardInterrupt) removes the temporary files and leaves the old files untouched."""
    temps: list[tuple[Path, Path]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((Path(name), path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(name, 0o666 & ~umask)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for folder in {path.parent for path in files}:
        _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def metrics_paths(report: Path) -> tuple[Path, Path]:
    """Where the metrics table goes: next to the report, as CSV and Parquet."""
    stem = report.name[: -len(report.suffix)] if report.suffix else report.name
    return report.with_name(f"{stem}.metrics.csv"), report.with_name(f"{stem}.metrics.parquet")


def write_outputs(report: Path, settings: Settings, runs: Sequence[Run], command: str) -> None:
    """Render the report and the metrics table (CSV and Parquet) in memory, then write the
    three files together, the report last (see :func:`write_all`)."""
    table = pa.concat_tables([r.metrics for r in runs])
    csv_path, parquet_path = metrics_paths(report)
    csv_buf, parquet_buf = io.BytesIO(), io.BytesIO()
    pacsv.write_csv(table, csv_buf)
    pq.write_table(table, parquet_buf)
    html = render(settings, runs, command).encode("utf-8")
    write_all({csv_path: csv_buf.getvalue(), parquet_path: parquet_buf.getvalue(), report: html})


# ---- reading the metrics table -----------------------------------------------------------


@dataclass
class Metrics:
    """One scheme's metrics table, indexed: weekly values by metric and group (in week
    order), summary values by metric and group, and the metric names in table order."""

    weekly: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    first_week: int = 0

    @classmethod
    def of(cls, table: pa.Table) -> Metrics:
        """Index a table of :data:`socialcredit.lab.metrics.METRICS_SCHEMA`."""
        out = cls()
        rows: dict[str, dict[str, list[tuple[int, float]]]] = {}
        names: dict[str, None] = {}
        weeks = table.column("week").to_pylist()
        for w, m, g, v in zip(
            weeks,
            table.column("metric").to_pylist(),
            table.column("group").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        ):
            names.setdefault(m, None)
            if w is None:
                out.summary.setdefault(m, {})[g] = v
            else:
                rows.setdefault(m, {}).setdefault(g, []).append((w, v))
        out.weekly = {
            m: {g: [v for _, v in sorted(s)] for g, s in gs.items()} for m, gs in rows.items()
        }
        out.names = list(names)
        out.first_week = min((w for w in weeks if w is not None), default=0)
        return out

    def one(self, metric: str, group: str = "") -> float | None:
        """A summary value, or None when the table does not have it."""
        return self.summary.get(metric, {}).get(group)

    def line(self, metric: str, group: str = "") -> list[float]:
        """A weekly series, empty when the table does not have it."""
        return self.weekly.get(metric, {}).get(group, [])


def concentration_index(shares: Sequence[float]) -> float:
    """Concentration index of a rate over income deciles of equal size (1 = poorest):
    ``2 · cov(rate, fractional rank) / mean(rate)``, from -1 (all borne by the poorest) to
    +1 (all by the richest); 0 when spread evenly or when the rate is zero everywhere."""
    n = len(shares)
    mean = sum(shares) / n if n else 0.0
    if mean <= 0:
        return 0.0
    ranks = [(i + 0.5) / n for i in range(n)]
    cov = sum((s - mean) * (r - 0.5) for s, r in zip(shares, ranks, strict=True)) / n
    return 2 * cov / mean


# ---- sections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """What a section draws for one scheme: the run and its indexed metrics."""

    run: Run
    metrics: Metrics

    @property
    def name(self) -> str:
        return self.run.scheme.scheme.scheme

    @property
    def lists(self) -> list[tuple[str, str]]:
        """The scheme's lists, as (id, kind)."""
        return [(spec.id, spec.kind) for spec in self.run.scheme.scheme.lists]


Cell = Callable[[Column], str]


@dataclass(frozen=True)
class Section:
    """A part of the report: a heading, a cell per scheme, and the metrics it claims."""

    anchor: str
    title: str
    pattern: str  # metric names this section claims (a regular expression, full match)
    cell: Cell
    drawn: frozenset[str] = frozenset()  # claimed metrics the cell draws itself
    note: str = ""
    empty: str = ""  # shown instead of the columns when no scheme has a claimed metric

    def claims(self, metric: str) -> bool:
        return re.fullmatch(self.pattern, metric) is not None


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>' if rows else ""


def _fig(title: str, chart: str) -> str:
    return f"<figure><h4>{escape(title)}</h4>{chart}</figure>"


def generic(col: Column, metric: str) -> str:
    """Any metric, drawn from its rows: a line per group for a weekly metric; a value, or
    bars and a table of values by group, for a summary one."""
    m, parts = col.metrics, []
    label = LABELS.get(metric, metric.replace("_", " "))
    if metric in m.weekly:
        lines = {g or label: s for g, s in m.weekly[metric].items()}
        parts.append(_fig(label, line_chart(label, lines, first_week=m.first_week)))
    values = m.summary.get(metric)
    if values:
        if list(values) == [""]:
            parts.append(_kv([(label, number(values[""]))]))
        else:
            parts.append(
                _fig(label, bar_chart(label, list(values), list(values.values())))
                + _kv([(g, number(v)) for g, v in values.items()])
            )
    return f'<div class="metric" data-metric="{escape(metric)}">{"".join(parts)}</div>'


def _audit(col: Column) -> str:
    run, parts = col.run, []
    if run.critical:
        parts.append(f'<p class="critical" role="alert">{escape(CRITICAL_NOTE)}</p>')
    if not run.findings:
        parts.append("<p>No findings: the audit found nothing to flag.</p>")
    items = "".join(
        f'<li class="{escape(f.severity)}"><b>{escape(f.severity)}</b> '
        f"<code>{escape(f.code)}</code> {escape(f.where)}: {escape(f.message)}</li>"
        for f in run.findings
    )
    if items:
        counts: dict[str, int] = {}
        for f in run.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        summary = ", ".join(f"{n} {s}{'s' if n > 1 else ''}" for s, n in counts.items())
        parts.append(f"<p>{escape(summary)}.</p><ul>{items}</ul>")
    title = escape(run.scheme.scheme.title or col.name)
    source = f"{title} (<code>{escape(run.scheme.source)}</code>)"
    return f"<p>{source}</p>" + "".join(parts)


def _scores(col: Column) -> str:
    m = col.metrics
    pct = {g: m.line("score_percentile", g) for g in m.weekly.get("score_percentile", {})}
    if "score_mean" in m.weekly:
        pct["mean"] = m.line("score_mean")
    parts = []
    values = [v for s in pct.values() for v in s]
    if values and min(values) == max(values):
        parts.append(
            f'<p class="none">Every subject has the same score, {number(values[0])}, '
            "all the time: this scheme does not differentiate by score.</p>"
        )
    else:
        parts.append(
            _fig("Score percentiles", line_chart("score percentiles and mean", pct, zero=False))
        )
    grades = m.weekly.get("grade_share", {})
    parts.append(_fig("Grade shares", line_chart("share of subjects in each grade", grades)))
    gini = m.line("score_gini")
    if gini:
        parts.append(
            _fig("Gini of scores", line_chart("Gini coefficient of scores", {"Gini": gini}))
        )
    return "".join(parts)


def _no_lists(col: Column) -> str:
    return '<p class="none">This scheme keeps no lists.</p>'


def _lists(col: Column) -> str:
    if not col.lists:
        return _no_lists(col)
    m = col.metrics
    sizes = {g: m.line("list_size", g) for g, _ in col.lists}
    flows: dict[str, list[float]] = {}
    for g, _ in col.lists:
        flows[f"{g}: in"] = m.line("list_entries", g)
        flows[f"{g}: out"] = m.line("list_exits", g)
    end = [
        (f"{g} ({kind} list), at the end", f"{int(s[-1]):,}" if s else "n/a")
        for (g, kind), s in zip(col.lists, sizes.values(), strict=True)
    ]
    return (
        _kv(end)
        + _fig("List sizes", line_chart("subjects on each list", sizes))
        + _fig(
            "Flows in and out",
            line_chart("subjects entering and leaving each list per week", flows),
        )
    )


def _wrongful(col: Column) -> str:
    m = col.metrics
    false, voided = m.one("false_records") or 0, m.one("false_records_voided") or 0
    rows = [
        ("false records written", f"{int(false):,}"),
        ("voided on appeal", f"{int(voided):,}"),
    ]
    if not any(kind == "black" for _, kind in col.lists):
        return _kv(rows) + (
            '<p class="none">This scheme has no black list: nobody is listed, so nobody is '
            "listed wrongfully. False records still count in the score.</p>"
        )
    people = m.one("wrongfully_listed_subjects") or 0
    weeks = m.one("wrongful_person_weeks") or 0
    rows += [
        ("people listed on false records", f"{int(people):,}"),
        ("person-weeks listed on false records", f"{int(weeks):,}"),
        ("mean weeks each", number(weeks / people) if people else "0"),
    ]
    chart = line_chart(
        "subjects on a black list while a false record counts",
        {"wrongfully listed": m.line("wrongfully_listed")},
    )
    return _kv(rows) + _fig("Wrongfully listed, week by week", chart)


def _sanctions(col: Column) -> str:
    m = col.metrics
    share = m.summary.get("sanctioned_share", {})
    borne = m.summary.get("sanctions_borne", {})
    rates = [share.get(d, 0.0) for d in DECILES]
    poorest = sum(borne.get(d, 0.0) for d in DECILES[:3])
    richest = sum(borne.get(d, 0.0) for d in DECILES[-3:])
    gini = m.one("score_gini_final")
    gini_row = ("Gini of scores at the end", "n/a" if gini is None else f"{gini:.4f}")
    if not any(share.values()):
        return (
            '<p class="none">Nobody was sanctioned (on a black list or denied an action) '
            "under this scheme.</p>" + _kv([gini_row])
        )
    rows = [
        ("share of sanctions borne by the poorest 30%", f"{poorest:.1%}"),
        ("… by the richest 30%", f"{richest:.1%}"),
        (
            "concentration index by income (-1 poorest … +1 richest)",
            f"{concentration_index(rates):+.3f}",
        ),
        gini_row,
    ]
    rows += [(f"share of sanctions borne: {g}", f"{borne.get(g, 0.0):.1%}") for g in AREAS]
    return (
        _kv(rows)
        + _fig(
            "Sanctioned, by income decile",
            bar_chart(
                "share of person-weeks sanctioned, decile 1 (poorest) to 10",
                [str(d) for d in range(1, 11)],
                rates,
            ),
        )
        + _fig(
            "Sanctioned, by area and kind",
            bar_chart(
                "share of subject-weeks sanctioned", AREAS, [share.get(g, 0.0) for g in AREAS]
            ),
        )
    )


def _deterrence(col: Column) -> str:
    m = col.metrics
    first = m.one("penalized_conduct_per_1000", "first")
    last = m.one("penalized_conduct_per_1000", "last")
    rows = []
    if first is not None and last is not None:
        change = f"{(last - first) / first:+.0%}" if first else "n/a"
        rows = [
            ("penalized conduct per 1,000 per year, first 13 weeks", number(first)),
            ("… last 13 weeks", number(last)),
            ("change", change),
        ]
    chilling = col.run.settings.world.world.responses.chilling
    rows.append(("chilling of penalized legal conduct (world parameter)", f"{chilling:.0%}"))
    chart = line_chart(
        "true events of penalized conduct per week", {"events": m.line("penalized_conduct")}
    )
    return _kv(rows) + _fig("Penalized conduct, week by week", chart)


def _donations(col: Column) -> str:
    m = col.metrics
    per = m.summary.get("donated_per_person", {})
    redemption = col.run.settings.world.world.redemption
    if redemption is None:
        reads = "The world has no donations."
    else:
        kind = redemption.type
        rules = [r.id for r in col.run.scheme.scheme.rules if kind in r.types]
        reads = (
            f"Rules that read donations (<code>{escape(kind)}</code>): " + escape(", ".join(rules))
            if rules
            else f"No rule of this scheme reads donations (<code>{escape(kind)}</code>)."
        )
    if not any(per.get(d, 0.0) for d in DECILES):
        none = "No donations were recorded: no points were bought back."
        return f'<p class="none">{none}</p><p>{reads}</p>'
    chart = bar_chart(
        "recorded donations per person over the run, by income decile (1 = poorest)",
        [str(d) for d in range(1, 11)],
        [per.get(d, 0.0) for d in DECILES],
    )
    return f"<p>{reads}</p>" + _fig("Donations by income decile", chart)


def _denied(col: Column) -> str:
    m = col.metrics
    year = m.one("denied_per_1000_per_year")
    rows = [
        (
            "denied actions held per 1,000 subjects, mean over the run",
            "n/a" if year is None else number(year),
        )
    ]
    chart = line_chart(
        "denied actions held per 1,000 subjects", {"per 1,000": m.line("denied_per_1000")}
    )
    return _kv(rows) + _fig("Denied actions, week by week", chart)


def _nothing(col: Column) -> str:
    return ""


SECTIONS = (
    Section(
        "scores",
        "Score distribution and grade shares over time",
        r"(score|grade)_(?!gini_final$).*",
        _scores,
        frozenset({"score_percentile", "score_mean", "grade_share", "score_gini"}),
    ),
    Section(
        "lists",
        "List sizes and flows in and out",
        r"list_.*",
        _lists,
        frozenset({"list_size", "list_entries", "list_exits"}),
    ),
    Section(
        "wrongful",
        "Wrongful listings",
        r"(wrongful|false_record).*",
        _wrongful,
        frozenset(
            {
                "wrongfully_listed",
                "wrongfully_listed_subjects",
                "wrongful_person_weeks",
                "false_records",
                "false_records_voided",
            }
        ),
        "People listed while a record of conduct that never happened counts for them.",
    ),
    Section(
        "sanctions",
        "Who bears sanctions",
        r"sanction.*|penalized|score_gini_final",
        _sanctions,
        frozenset({"sanctioned_share", "sanctions_borne", "score_gini_final"}),
        "Sanctioned: on a black list or denied an action. Income deciles are national "
        "deciles (1 = poorest).",
    ),
    Section(
        "deterrence",
        "Deterrence and chilling",
        r"(penalized_conduct|chill|legal_conduct|deterr).*",
        _deterrence,
        frozenset({"penalized_conduct", "penalized_conduct_per_1000"}),
        "Penalized conduct counts true events (recorded or not) of the types the scheme penalizes.",
    ),
    Section(
        "donations",
        "Points bought back: donations by income",
        r"(donat|redemption|bought).*",
        _donations,
        frozenset({"donated_per_person"}),
    ),
    Section(
        "network",
        "Network exposure",
        r"(network|exposure|exposed|relative|friend|household).*",
        _nothing,
        note="People with a listed relative or friend.",
        empty="The world of this run has no networks (no households, no friends): there is "
        "no network exposure to show, and the metrics table has no network metric.",
    ),
    Section(
        "denied",
        "Denied actions",
        r"denied.*",
        _denied,
        frozenset({"denied_per_1000", "denied_per_1000_per_year"}),
    ),
)
"""The sections after the rights audit, in order."""


def _section(section: Section, cols: Sequence[Column], body: Callable[[Column], str]) -> str:
    cells = "".join(
        f'<div class="col" role="group" aria-label="{escape(c.name)}">'
        f"<h3>{escape(c.name)}</h3>{body(c)}{_extra(section, c)}</div>"
        for c in cols
    )
    note = f"<p>{escape(section.note)}</p>" if section.note else ""
    return (
        f'<section id="{section.anchor}" aria-labelledby="h-{section.anchor}">'
        f'<h2 id="h-{section.anchor}">{escape(section.title)}</h2>{note}'
        f'<div class="cols" style="--n:{len(cols)}">{cells}</div></section>'
    )


def _extra(section: Section, col: Column) -> str:
    """The claimed metrics the section's own cell does not draw, drawn generically."""
    return "".join(
        generic(col, name)
        for name in col.metrics.names
        if section.claims(name) and name not in section.drawn
    )


def sections_html(cols: Sequence[Column]) -> list[tuple[str, str]]:
    """(anchor, html) of every section after the audit, with the unclaimed metrics last."""
    out: list[tuple[str, str]] = []
    for s in SECTIONS:
        if s.anchor == "lists" and not any(c.lists for c in cols):
            html = (
                f'<section id="lists" aria-labelledby="h-lists"><h2 id="h-lists">{escape(s.title)}'
                '</h2><p class="none">None of the schemes keeps a list: there are no list sizes '
                "or flows to show.</p></section>"
            )
            out.append((s.anchor, html))
            continue
        if s.empty and not any(_extra(s, c) for c in cols):
            html = (
                f'<section id="{s.anchor}" aria-labelledby="h-{s.anchor}"><h2 id="h-{s.anchor}">'
                f'{escape(s.title)}</h2><p class="none">{escape(s.empty)}</p></section>'
            )
            out.append((s.anchor, html))
            continue
        out.append((s.anchor, _section(s, cols, s.cell)))
    other = Section("other", "Other metrics", r"", _nothing)
    claimed = [n for c in cols for n in c.metrics.names if not any(s.claims(n) for s in SECTIONS)]
    if claimed:
        unclaimed = list(dict.fromkeys(claimed))

        def rest(c: Column) -> str:
            return "".join(generic(c, n) for n in unclaimed if n in c.metrics.names)

        out.append((other.anchor, _section(other, cols, rest)))
    return out


# ---- the page ----------------------------------------------------------------------------


def _numbers(cols: Sequence[Column]) -> str:
    """Key numbers, a row per figure and a column per scheme."""

    def fig(c: Column) -> list[tuple[str, str]]:
        m = c.metrics
        people, weeks = m.one("wrongfully_listed_subjects"), m.one("wrongful_person_weeks")
        first = m.one("penalized_conduct_per_1000", "first")
        last = m.one("penalized_conduct_per_1000", "last")
        lists = c.run.states.list_sizes()
        return [
            ("subjects scored", f"{len(c.run.states):,}"),
            ("records in the ledger", number(m.one("records") or 0)),
            ("listed at the end", ", ".join(f"{k} {v:,}" for k, v in lists.items()) or "no lists"),
            (
                "false records (voided on appeal)",
                f"{number(m.one('false_records') or 0)} "
                f"({number(m.one('false_records_voided') or 0)})",
            ),
            ("people listed on false records", number(people or 0)),
            (
                "mean weeks listed on false records",
                number(weeks / people) if people and weeks else "0",
            ),
            ("Gini of scores at the end", number(m.one("score_gini_final") or 0)),
            (
                "penalized conduct per 1,000 a year: first → last 13 weeks",
                f"{number(first or 0)} → {number(last or 0)}",
            ),
            (
                "denied actions per 1,000 subjects a year",
                number(m.one("denied_per_1000_per_year") or 0),
            ),
        ]

    table = [fig(c) for c in cols]
    head = "".join(f'<th scope="col">{escape(c.name)}</th>' for c in cols)
    body = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{escape(t[i][1])}</td>" for t in table)
        + "</tr>"
        for i, (label, _) in enumerate(table[0])
    )
    return (
        '<section id="numbers" aria-labelledby="h-numbers"><h2 id="h-numbers">Key numbers</h2>'
        f'<table class="numbers"><thead><tr><th scope="col">figure</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></section>"
    )


def _quoted(text: str) -> str:
    """A file's text for a ``<pre>``: escaped, and with the slashes of ``scheme://`` written
    as character references, so the page holds no URL (the sources cited in a scheme's
    comments read the same, but nothing could take them for something to load)."""
    return re.sub(r"([a-z]+:)//", r"\1&#47;&#47;", escape(text))


def _parameters(settings: Settings, runs: Sequence[Run], command: str) -> str:
    params = settings.parameters()
    data = json.dumps(params, sort_keys=True).replace("</", "<\\/")
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td><code>{escape(str(v))}</code></td></tr>"
        for k, v in params.items()
    )
    world = settings.world
    schemes = "".join(
        f"<details><summary>The scheme file of {escape(r.scheme.scheme.scheme)} "
        f"({escape(r.scheme.source)})</summary><pre>{_quoted(r.scheme.text)}</pre></details>"
        for r in runs
    )
    return (
        '<section id="parameters" aria-labelledby="h-parameters">'
        f'<h2 id="h-parameters">Seed and parameters</h2>'
        f"<p>Seed <b>{settings.seed}</b>. Reproduce with: <code>{escape(command)}</code></p>"
        f'<table class="kv">{rows}</table>'
        f'<script type="application/json" id="parameters-json">{data}</script>'
        f"<details><summary>The world file ({escape(world.source)})</summary>"
        f"<pre>{_quoted(world.text)}</pre></details>{schemes}"
        "<p>Metrics for every week are in the table next to this file (docs/lab.md lists "
        "them).</p></section>"
    )


def render(settings: Settings, runs: Sequence[Run], command: str) -> str:
    """The report as one HTML page."""
    cols = [Column(r, Metrics.of(r.metrics)) for r in runs]
    names = ", ".join(c.name for c in cols)
    world = settings.world.world.world
    params = settings.parameters()
    critical = [c.name for c in cols if c.run.critical]
    banner = (
        f'<p class="critical" role="alert">Schemes with critical rights-audit findings: '
        f"{escape(', '.join(critical))}. {escape(CRITICAL_NOTE)}</p>"
        if critical
        else ""
    )
    audit = Section("audit", "Rights audit", r"", _audit)
    parts = [_section(audit, cols, _audit), _numbers(cols)]
    rest = sections_html(cols)
    parts += [html for _, html in rest]
    parts.append(_parameters(settings, runs, command))
    toc = "".join(
        f'<li><a href="#{a}">{escape(t)}</a></li>'
        for a, t in [("audit", "Rights audit"), ("numbers", "Key numbers")]
        + [(a, _title(a)) for a, _ in rest]
        + [("parameters", "Seed and parameters")]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>socialcredit lab report: {escape(names)} on {escape(world)}</title>
<style>{_STYLE}</style></head><body>
<header><h1>Lab report: {escape(names)} on the world {escape(world)}</h1>
<p>Synthetic subjects and records; not about real people. Seed <b>{settings.seed}</b>,
{settings.persons:,} persons and {settings.organizations:,} organizations,
{settings.weeks} weekly steps from {params["start"]} to {params["end"]}.</p>
{banner}<nav aria-label="Contents"><ul>{toc}</ul></nav></header>
<main>{"".join(parts)}</main>
</body></html>
"""


def _title(anchor: str) -> str:
    for s in SECTIONS:
        if s.anchor == anchor:
            return s.title
    return "Other metrics"
