"""``socialcredit score | explain | may | lookup``: read states off the kernel."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

from socialcredit.cli.app import app, domain_errors, err, out
from socialcredit.cli.inputs import (
    LedgerOpt,
    OpaqueOpt,
    RecordsOpt,
    SubjectsOpt,
    load_inputs,
)
from socialcredit.cli.render import decision_line, explanation_json, print_explanation
from socialcredit.days import parse_date
from socialcredit.engine import Engine, States
from socialcredit.engine.decisions import Decider
from socialcredit.engine.explain import explain
from socialcredit.errors import SocialCreditError
from socialcredit.ids import mask, normal_code, ric, uscc
from socialcredit.scheme import audit, load, preset_names
from socialcredit.scheme.audit import is_critical, refuse_critical

SchemeOpt = Annotated[str, typer.Option("--scheme", "-s", help="A scheme file or preset name.")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="Date of evaluation, YYYY-MM-DD (default: today).")
]
SyntheticOpt = Annotated[
    bool,
    typer.Option(
        "--synthetic",
        help="Declare the records synthetic: allows schemes with critical audit findings "
        "(refused on real records); a note on stderr, and on the table view, says so.",
    ),
]


def _at(value: str | None) -> str:
    if value is None:
        return dt.date.today().isoformat()
    try:
        return parse_date(value).isoformat()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None


def states_for(
    scheme: str,
    at: str | None,
    ledger: str | Path | None,
    subjects: Path | None,
    records: Path | None,
    synthetic: bool,
    opaque: bool = False,
) -> States:
    """Load a scheme and the inputs, refuse what must be refused, and evaluate."""
    loaded = load(scheme)
    found = audit(loaded.scheme, loaded.places)
    if synthetic:
        critical = " with critical rights-audit findings" if is_critical(found) else ""
        err.print(
            f"note: records declared synthetic; scheme {loaded.scheme.scheme!r}{critical} is "
            "run on them for study, not for decisions about real people",
            markup=False,
        )
    else:
        refuse_critical(loaded.scheme, found)
    inputs = load_inputs(ledger, subjects, records, opaque=opaque)
    engine = Engine(loaded.scheme)
    prepared = engine.prepare(inputs.subjects, inputs.records)
    unknown = inputs.unknown_types(loaded.scheme)
    if unknown:
        total = sum(unknown.values())
        listing = ", ".join(f"{t} ({n})" for t, n in sorted(unknown.items())[:10])
        err.print(
            f"warning: {total} record(s) of {len(unknown)} type(s) unknown to scheme "
            f"{loaded.scheme.scheme!r} count for nothing: {listing}",
            markup=False,
        )
    return engine.evaluate(prepared, _at(at))


@app.command()
@domain_errors
def score(
    scheme: SchemeOpt,
    at: AtOpt = None,
    ledger: LedgerOpt = None,
    subjects: SubjectsOpt = None,
    records: RecordsOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table, csv or parquet (default: table on a terminal, csv otherwise).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    synthetic: SyntheticOpt = False,
    opaque: OpaqueOpt = False,
) -> None:
    """Score every subject: code, score, grade, lists, denied, granted (SCHEME.md §7)."""
    fmt = fmt or ("table" if out.is_terminal and output is None else "csv")
    if fmt not in ("table", "csv", "parquet"):
        raise typer.BadParameter("must be table, csv or parquet", param_hint="--format")
    if fmt == "parquet" and output is None:
        raise typer.BadParameter("parquet needs --output FILE", param_hint="--output")
    if fmt == "table" and output is not None:
        raise typer.BadParameter(
            "table format prints to the terminal; use csv or parquet with --output",
            param_hint="--format",
        )
    states = states_for(scheme, at, ledger, subjects, records, synthetic, opaque)
    if fmt == "csv":
        if output is None:
            sys.stdout.flush()
            states.write_csv(sys.stdout.buffer)
        else:
            with output.open("wb") as fh:
                states.write_csv(fh)
    elif fmt == "parquet":
        assert output is not None
        pq.write_table(states.to_table(), output)
    else:
        _print_states(states.to_table(), states, synthetic=synthetic)


def _print_states(
    table: pa.Table, states: States, limit: int = 50, *, synthetic: bool = False
) -> None:
    label = " (SYNTHETIC RECORDS)" if synthetic else ""
    view = Table(
        title=f"{states.scheme_id} on {states.date}: {len(states)} subjects{label}",
        title_justify="left",
        show_edge=False,
    )
    for name in table.column_names:
        view.add_column(name, overflow="fold")
    kinds = states.kinds.to_pylist()
    for i, row in enumerate(table.slice(0, limit).to_pylist()):
        view.add_row(mask(row["code"], kinds[i]), *(str(row[k]) for k in table.column_names[1:]))
    out.print(view)
    if len(table) > limit:
        out.print(
            f"… {len(table) - limit} more rows (use --format csv for all; person codes "
            "are masked in this view)"
        )
    out.print("grades: " + ", ".join(f"{g} {n}" for g, n in states.grade_counts().items()))
    out.print("lists: " + (", ".join(f"{k} {n}" for k, n in states.list_sizes().items()) or "none"))


@app.command("explain")
@domain_errors
def explain_cmd(
    code: Annotated[str, typer.Argument(help="The subject's code.")],
    scheme: SchemeOpt,
    at: AtOpt = None,
    ledger: LedgerOpt = None,
    subjects: SubjectsOpt = None,
    records: RecordsOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    synthetic: SyntheticOpt = False,
    opaque: OpaqueOpt = False,
) -> None:
    """Explain a subject's state: each rule with the records that counted, then score, grade,
    lists with the conditions that placed the subject, and measures with their reasons."""
    states = states_for(scheme, at, ledger, subjects, records, synthetic, opaque)
    e = explain(states, normal_code(code))
    if fmt == "json":
        typer.echo(explanation_json(e))
    else:
        print_explanation(out, e)


@app.command()
@domain_errors
def may(
    code: Annotated[str, typer.Argument(help="The subject's code.")],
    action: Annotated[str, typer.Argument(help="A dotted action, e.g. travel.air.")],
    scheme: SchemeOpt,
    at: AtOpt = None,
    ledger: LedgerOpt = None,
    subjects: SubjectsOpt = None,
    records: RecordsOpt = None,
    synthetic: SyntheticOpt = False,
    opaque: OpaqueOpt = False,
) -> None:
    """May this subject do this action? Exit 0 when allowed (or granted), 1 when denied."""
    states = states_for(scheme, at, ledger, subjects, records, synthetic, opaque)
    decision = Decider(states).may(normal_code(code), action.strip())
    out.print(decision_line(decision), markup=False)
    if not decision.allowed:
        raise typer.Exit(1)


@app.command()
@domain_errors
def lookup(
    code: Annotated[str, typer.Argument(help="The code to look up.")],
    scheme: Annotated[
        list[str] | None,
        typer.Option(
            "--scheme",
            "-s",
            help="Schemes to look in (default: every preset that "
            "publishes lists and passes the audit).",
        ),
    ] = None,
    at: AtOpt = None,
    ledger: LedgerOpt = None,
    subjects: SubjectsOpt = None,
    records: RecordsOpt = None,
    opaque: OpaqueOpt = False,
) -> None:
    """What the public may see of a code: published lists only; persons' codes masked.

    The answer for a code that is not registered is the same as for one that is on no
    published list, so the lookup does not reveal who is in the registry.
    """
    names = scheme or [n for n in preset_names() if _publishes(n)]
    inputs = load_inputs(ledger, subjects, records, opaque=opaque)
    code = normal_code(code)
    kind = inputs.kind_of(code)
    shown: list[tuple[str, str, str]] = []
    for name in names:
        loaded = load(name)
        refuse_critical(loaded.scheme, audit(loaded.scheme, loaded.places))
        published = [spec for spec in loaded.scheme.lists if spec.publish]
        if kind is None or kind not in loaded.scheme.subjects or not published:
            continue
        engine = Engine(loaded.scheme)
        states = engine.evaluate(
            engine.prepare(inputs.subjects_of([code]), inputs.records_of(code)), _at(at)
        )
        e = explain(states, code)
        for lst in e.lists:
            if lst.member and lst.publish:
                shown.append((loaded.scheme.scheme, lst.id, lst.condition.text))
    if not shown or kind is None:
        # the same answer whether or not the code is registered: the shape of the code alone
        # decides how it is shown
        display = code if uscc.is_valid(code) and not ric.is_valid(code) else mask(code, "person")
        out.print(f"{display}: nothing published", markup=False)
        return
    out.print(f"{mask(code, kind)} ({kind})")
    for scheme_id, list_id, because in shown:
        out.print(f"  on the published list {list_id} of {scheme_id}, because {because}")


def _publishes(name: str) -> bool:
    try:
        loaded = load(name)
    except SocialCreditError:
        return False
    if is_critical(audit(loaded.scheme, loaded.places)):
        return False
    return any(spec.publish for spec in loaded.scheme.lists)
