"""``socialcredit demo``: a synthetic town, end to end, with no input."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from socialcredit.cli.app import app, domain_errors, err, heading, out
from socialcredit.cli.render import decision_line, print_explanation
from socialcredit.engine import Engine, States
from socialcredit.engine.decisions import Decider
from socialcredit.engine.explain import explain
from socialcredit.ids import mask
from socialcredit.lab.town import build_town
from socialcredit.scheme import audit, load

DEMO_SCHEMES = ("rongcheng", "court_dishonest_debtors")
BATCH = 50_000


@app.command()
@domain_errors
def demo(
    persons: Annotated[int, typer.Option(help="Persons in the town.", min=10)] = 4000,
    organizations: Annotated[int, typer.Option(help="Organizations in the town.", min=1)] = 400,
    seed: Annotated[int, typer.Option(help="Seed of the town; a seed gives the same town.")] = 7,
    ledger: Annotated[
        str | None,
        typer.Option(
            help="Keep the ledger in this (new) file, or postgresql:// URL, instead of a "
            "temporary file."
        ),
    ] = None,
    report: Annotated[
        Path, typer.Option(help="Where to write the lab report of the town (HTML).")
    ] = Path("socialcredit-demo-report.html"),
) -> None:
    """Build a synthetic town, load it into a fresh ledger, score it, explain the result, and
    end with a lab report: a year of the same schemes simulated on the town's people."""
    from socialcredit.cli.inputs import ledger_path
    from socialcredit.store import create_ledger
    from socialcredit.store.backends import printable

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="socialcredit-demo-") as tmp:
        path = ledger_path(ledger) if ledger else Path(tmp) / "town.ledger"
        with _progress() as progress:
            task = progress.add_task("drawing the town", total=None)
            town = build_town(persons=persons, organizations=organizations, seed=seed)
            progress.update(task, total=1, completed=1)
            n = town.records.num_rows
            name = path.name if isinstance(path, Path) else printable(path)
            task = progress.add_task(f"appending {n:,} records to {name}", total=n)
            with create_ledger(path) as store:
                store.add_subjects(town.subjects)
                for offset in range(0, n, BATCH):
                    batch = town.records.slice(offset, BATCH)
                    store.append(batch, source="demo-town")
                    progress.advance(task, batch.num_rows)
                task = progress.add_task("verifying the hash chain", total=None)
                verified = store.verify()
                progress.update(task, total=1, completed=1)
                subjects, records = store.subjects(), store.records()
            results: dict[str, States] = {}
            task = progress.add_task("scoring", total=len(DEMO_SCHEMES))
            at = town.end.isoformat()
            for name in DEMO_SCHEMES:
                loaded = load(name)
                engine = Engine(loaded.scheme)
                results[name] = engine.evaluate(engine.prepare(subjects, records), at)
                progress.advance(task)

        heading(
            f"[bold]A synthetic town of {persons:,} persons and {organizations:,} "
            f"organizations, {n:,} records over one year"
        )
        out.print(
            f"ledger {printable(path)}: {verified.entries_checked:,} entries, hash chain "
            f"{'verified' if verified.ok else 'BROKEN'}"
        )
        _agencies(records)
        for name, states in results.items():
            _summary(name, states)
        _example(results)
    _lab(persons, seed, report)
    err.print(f"demo finished in {time.perf_counter() - started:.1f} s", markup=False)


def _lab(persons: int, seed: int, report: Path) -> None:
    """A year of both schemes simulated on a town of the same size, and what it did."""
    from socialcredit.cli.lab_cmds import run_lab
    from socialcredit.lab.metrics import summary

    heading("[bold]The lab: a year of both schemes on a synthetic town")
    runs = run_lab(list(DEMO_SCHEMES), "town", persons, 1, seed, report)
    for run in runs:
        m = run.metrics
        wrongful = summary(m, "wrongfully_listed_subjects").get("", 0)
        false = summary(m, "false_records").get("", 0)
        voided = summary(m, "false_records_voided").get("", 0)
        borne = summary(m, "sanctions_borne")
        poorest = borne.get("decile_01", 0) + borne.get("decile_02", 0)
        richest = borne.get("decile_09", 0) + borne.get("decile_10", 0)
        burden = (
            f"the poorest fifth bore {100 * poorest:.0f}% of sanctions, the richest fifth "
            f"{100 * richest:.0f}%"
            if sum(borne.values())
            else "no one was sanctioned"
        )
        out.print(
            f"{run.scheme.scheme.scheme}: {false:,.0f} false records ({voided:,.0f} voided on "
            f"appeal), {wrongful:,.0f} subjects listed on false records; {burden}",
            markup=False,
        )
    out.print(f"lab report: {report} (open it in a browser; it works offline)", markup=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _agencies(records: pa.Table) -> None:
    prefixes = pa.compute.utf8_slice_codeunits(records.column("type"), 0, 40)
    counts = pa.compute.value_counts(prefixes).to_pylist()
    counts.sort(key=lambda c: -c["counts"])
    out.print("records by type: " + ", ".join(f"{c['values']} {c['counts']:,}" for c in counts))


def _summary(name: str, states: States) -> None:
    loaded = load(name)
    found = audit(loaded.scheme, loaded.places)
    out.print(
        f"\n[bold]{escape(name)}[/] — {escape(str(loaded.scheme.title))}: {len(states):,} subjects "
        f"scored on {states.date}",
        markup=True,
    )
    table = Table(show_edge=False)
    table.add_column("grade")
    table.add_column("subjects", justify="right")
    table.add_column("share", justify="right")
    total = max(len(states), 1)
    for grade, count in states.grade_counts().items():
        table.add_row(grade, f"{count:,}", f"{100 * count / total:.1f}%")
    out.print(table)
    sizes = states.list_sizes()
    out.print("lists: " + (", ".join(f"{k} {v:,}" for k, v in sizes.items()) or "none"))
    crit = sum(f.severity == "critical" for f in found)
    warn = sum(f.severity == "warning" for f in found)
    out.print(f"rights audit: {crit} critical, {warn} warnings (socialcredit scheme audit {name})")


def _example(results: dict[str, States]) -> None:
    """Explain one person on the court's black list (the lowest Rongcheng score among
    them), and one decision about that person."""
    states = results["court_dishonest_debtors"]
    points = results["rongcheng"]
    listed = np.flatnonzero(states.raw.lists.any(axis=0))
    persons = [i for i in listed.tolist() if states.kinds[i].as_py() == "person"]
    if not persons:
        return
    scored = {c: i for i, c in enumerate(points.codes.to_pylist())}
    codes = [states.codes[i].as_py() for i in persons]
    code = min(codes, key=lambda c: int(points.raw.score[scored[c]]) if c in scored else 0)
    shown = mask(code, "person")
    heading(f"[bold]One subject explained: {escape(shown)}")
    for name in DEMO_SCHEMES:
        print_explanation(out, explain(results[name], code), show_code=shown)
    decision = Decider(states).may(code, "travel.air")
    out.print("decision: " + decision_line(decision, code=shown), markup=False)
