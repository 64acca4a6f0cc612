"""Rendering for the terminal: explanations, audits, score tables, decisions."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from socialcredit.engine.decisions import Decision
from socialcredit.engine.explain import UNKNOWN_TYPE, ConditionTrace, Explanation
from socialcredit.ids import mask
from socialcredit.scheme.audit import Finding

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def findings_table(findings: list[Finding], title: str) -> Table:
    """The rights-audit findings of a scheme as a table."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in ("severity", "finding", "line", "where", "what"):
        table.add_column(name, overflow="fold")
    for f in findings:
        table.add_row(
            Text(f.severity, style=SEVERITY_STYLE[f.severity]),
            f.code,
            str(f.line or ""),
            f.where,
            f.message,
        )
    return table


def _trace(node: Tree, trace: ConditionTrace) -> None:
    mark = Text("✓", style="green") if trace.holds else Text("✗", style="dim")
    child = node.add(Text.assemble(mark, " ", trace.text))
    for part in trace.parts:
        _trace(child, part)


def print_explanation(
    console: Console, e: Explanation, *, show_code: str | None = None, verbose: bool = False
) -> None:
    """Print an explanation: rules, score, grade, lists and measures."""
    code = show_code or e.code
    console.print(
        f"[bold]{escape(code)}[/] ({e.kind}) under [bold]{escape(e.scheme)}[/] on {e.at}",
        markup=True,
    )
    table = Table(show_edge=False, title_justify="left")
    for name in ("rule", "measure", "value", "points", "records that counted"):
        table.add_column(name, overflow="fold")
    table.add_row("base", "", "", str(e.base), "")
    quiet = [r for r in e.rules if not r.records and not r.contribution]
    for r in e.rules:
        if r in quiet and not verbose:
            continue
        value = "none" if r.measure is None else str(r.measure)
        window = f" ({r.window_days} d)" if r.window_days else ""
        records = ", ".join(r.records[:8]) + (
            f" … (+{len(r.records) - 8})" if len(r.records) > 8 else ""
        )
        pts = f"{r.contribution:+d}" if r.contribution else "0"
        table.add_row(r.id, r.measure_kind + window, value, pts, records)
    console.print(table)
    if quiet and not verbose:
        console.print(
            f"{len(quiet)} other rules: no records counted, no points "
            f"({', '.join(r.id for r in quiet)})",
            style="dim",
            markup=False,
        )
    bounded = "" if e.score == e.unbounded_score else f" (bounded from {e.unbounded_score})"
    console.print(
        f"score [bold]{e.score}[/]{bounded}, grade [bold]{escape(e.grade)}[/]", markup=True
    )
    tree = Tree("lists")
    for lst in e.lists:
        status = (
            Text("on", style="bold red")
            if lst.member and lst.kind == "black"
            else (Text("on", style="bold green") if lst.member else Text("not on"))
        )
        published = ", published" if lst.publish else ""
        node = tree.add(Text.assemble(status, f" {lst.id} ({lst.kind}{published})"))
        _trace(node, lst.condition)
    console.print(tree)
    tree = Tree("measures")
    for m in e.measures:
        what = ", ".join([f"deny {a}" for a in m.deny] + [f"grant {a}" for a in m.grant])
        status = Text("applies", style="bold") if m.applies else Text("does not apply", "dim")
        node = tree.add(Text.assemble(status, f" {m.id}: {what}"))
        _trace(node, m.condition)
    console.print(tree)
    if not e.not_counted:
        return
    console.print("records that count for nothing on this date:", markup=False)
    unused = Counter(nc.type for nc in e.not_counted if nc.reason == UNKNOWN_TYPE)
    if unused and not verbose:
        kinds = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in sorted(unused.items()))
        console.print(
            f"  {sum(unused.values())} of types this scheme does not read ({kinds})", markup=False
        )
    rest = [nc for nc in e.not_counted if verbose or nc.reason != UNKNOWN_TYPE]
    for nc in rest[:20]:
        console.print(f"  {nc.id} ({nc.type}): {nc.reason}", markup=False)
    if len(rest) > 20:
        console.print(f"  … and {len(rest) - 20} more", markup=False)


def explanation_json(e: Explanation, *, masked: bool = False) -> str:
    """An explanation as JSON."""
    data: dict[str, Any] = asdict(e)
    data["denied"] = e.denied
    data["granted"] = e.granted
    if masked:
        data["code"] = mask(e.code, e.kind)
    return json.dumps(data, indent=2, ensure_ascii=False)


def decision_line(d: Decision, *, code: str | None = None) -> str:
    """One line for a decision."""
    reasons = f" by {', '.join(d.reasons)}" if d.reasons else ""
    return f"{code or d.code} {d.action}: {d.outcome}{reasons}"
