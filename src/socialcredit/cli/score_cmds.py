"""``socialcredit score | explain | may | lookup``: read states off the kernel."""

from __future__ import annotations

import datetime as dt
import re
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
from socialcredit.engine import Engine, Prepared, PreparedNetwork, States
from socialcredit.engine.decisions import Decider
from socialcredit.engine.explain import Explanation, explain
from socialcredit.errors import InvalidInput, SocialCreditError
from socialcredit.ids import mask, mask_unknown, normal_code
from socialcredit.records import DOTTED_NAME
from socialcredit.scheme import audit, load, preset_names
from socialcredit.scheme.audit import is_critical, refuse_critical
from socialcredit.scheme.model import Scheme
from socialcredit.scheme.network import peer_rules, related_conditions
from socialcredit.scheme.places import format_path

SchemeOpt = Annotated[str, typer.Option("--scheme", "-s", help="A scheme file or preset name.")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="Date of evaluation, YYYY-MM-DD (default: today).")
]
SyntheticOpt = Annotated[
    bool,
    typer.Option(
        "--synthetic",
        help="Declare the records synthetic: allows schemes with critical audit findings "
        "(refused on real records); a note on stderr says so (and the title of score's "
        "table).",
    ),
]

RelationsOpt = Annotated[
    Path | None,
    typer.Option(
        "--relations",
        help="Relations file (CSV or Parquet: subject,relation,other,from,to) for a scheme "
        "with relation conditions (docs/networks.md).",
    ),
]
RatingsOpt = Annotated[
    Path | None,
    typer.Option(
        "--ratings",
        help="Peer ratings file (CSV or Parquet: rater,ratee,stars,date) for a scheme with "
        "rules on peer ratings (docs/networks.md).",
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
    relations: Path | None = None,
    ratings: Path | None = None,
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
    _network_options(loaded.scheme, relations, ratings)
    inputs = load_inputs(ledger, subjects, records, opaque=opaque)
    engine = Engine(loaded.scheme)
    # a command runs no other threads: large inputs are evaluated on forked processes
    prepared = engine.prepare(inputs.subjects, inputs.records, processes=True)
    network = _network(engine, prepared, inputs.subjects, relations, ratings)
    unknown = inputs.unknown_types(loaded.scheme)
    if unknown:
        total = sum(unknown.values())
        listing = ", ".join(f"{t} ({n})" for t, n in sorted(unknown.items())[:10])
        if len(unknown) > 10:
            listing += f" and {len(unknown) - 10} more"
        err.print(
            f"warning: {total} record(s) of {len(unknown)} type(s) unknown to scheme "
            f"{loaded.scheme.scheme!r} count for nothing: {listing}",
            markup=False,
        )
    return engine.evaluate(prepared, _at(at), network=network, processes=True)


def _network_options(scheme: Scheme, relations: Path | None, ratings: Path | None) -> None:
    """A scheme that uses relations or peer ratings needs the file, and only such a scheme
    takes it (docs/networks.md section 2)."""
    uses = related_conditions(scheme)
    if uses and relations is None:
        raise typer.BadParameter(
            f"scheme {scheme.scheme!r} has relation conditions ({format_path(uses[0][0])}); "
            "give the relations file",
            param_hint="--relations",
        )
    if relations is not None and not uses:
        raise typer.BadParameter(
            f"scheme {scheme.scheme!r} has no relation conditions; leave the option out",
            param_hint="--relations",
        )
    peers = peer_rules(scheme)
    if peers and ratings is None:
        raise typer.BadParameter(
            f"scheme {scheme.scheme!r} has rules on peer ratings "
            f"(rules[{peers[0]}] {scheme.rules[peers[0]].id!r}); give the ratings file",
            param_hint="--ratings",
        )
    if ratings is not None and not peers:
        raise typer.BadParameter(
            f"scheme {scheme.scheme!r} has no rules on peer ratings; leave the option out",
            param_hint="--ratings",
        )


def _network(
    engine: Engine,
    prepared: Prepared,
    subjects: pa.Table,
    relations: Path | None,
    ratings: Path | None,
) -> PreparedNetwork | None:
    """Read, check and prepare the network inputs the scheme uses (None: it uses none)."""
    from socialcredit.store.network_files import (
        check_ratings_scale,
        check_relations_kinds,
        load_ratings,
        load_relations,
    )

    if relations is None and ratings is None:
        return None
    rel_table = rat_table = None
    if relations is not None:
        loaded = load_relations(relations)
        check = check_relations_kinds(loaded, subjects)
        if check.problems:
            raise InvalidInput(check.problems, what=str(relations))
        _warn_unknown(check.unknown, check.unknown_codes, "relation", relations)
        rel_table = loaded.table
    if ratings is not None:
        loaded = load_ratings(ratings)
        spec = engine.scheme.ratings
        assert spec is not None  # validated: peer rules need the ratings section
        check = check_ratings_scale(loaded, spec.stars, subjects)
        if check.problems:
            raise InvalidInput(check.problems, what=str(ratings))
        _warn_unknown(check.unknown, check.unknown_codes, "rating", ratings)
        rat_table = loaded.table
    return engine.prepare_network(prepared, relations=rel_table, ratings=rat_table)


def _warn_unknown(count: int, codes: list[str], what: str, path: Path) -> None:
    if count:
        shown = ", ".join(mask_unknown(c) for c in codes[:5])
        err.print(
            f"warning: {count} {what}(s) of {path} name codes that are not subjects and "
            f"count for nothing (e.g. {shown})",
            markup=False,
        )


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
            help="table, csv or parquet (default: table on a terminal without --output, "
            "csv otherwise).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    synthetic: SyntheticOpt = False,
    opaque: OpaqueOpt = False,
    relations: RelationsOpt = None,
    ratings: RatingsOpt = None,
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
    states = states_for(
        scheme, at, ledger, subjects, records, synthetic, opaque, relations, ratings
    )
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


def _print_network(e: Explanation, limit: int = 20) -> None:
    """The ratings behind each peer rule, and the related subjects behind each relation
    condition (persons' codes masked)."""
    for rule in e.rules:
        if rule.measure_kind not in ("peer_rating", "peer_trust"):
            continue
        out.print(
            f"peer ratings behind rule {rule.id} ({len(rule.ratings)}; each weighed by its "
            "rater's trust, 1000 = the average subject):",
            markup=False,
        )
        for r in rule.ratings[:limit]:
            out.print(
                f"  {r.rater}  {r.stars} stars on {r.date}  rater trust {r.rater_trust}",
                markup=False,
            )
        if len(rule.ratings) > limit:
            out.print(f"  … {len(rule.ratings) - limit} more", markup=False)
    traces = [(f"list {x.id}", x.condition) for x in e.lists]
    traces += [(f"measure {x.id}", x.condition) for x in e.measures]
    while traces:
        owner, trace = traces.pop(0)
        traces[:0] = [(owner, part) for part in trace.parts]
        if trace.count is None:
            continue
        out.print(f"related subjects behind {owner}, {trace.text}: {trace.count}", markup=False)
        for code in trace.related[:limit]:
            out.print(f"  {code}", markup=False)
        if len(trace.related) > limit:
            out.print(f"  … {len(trace.related) - limit} more", markup=False)


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
    relations: RelationsOpt = None,
    ratings: RatingsOpt = None,
) -> None:
    """Explain a subject's state: each rule with the records that counted, then score, grade,
    lists with the conditions that placed the subject, and measures with their reasons."""
    states = states_for(
        scheme, at, ledger, subjects, records, synthetic, opaque, relations, ratings
    )
    e = explain(states, normal_code(code))
    if fmt == "json":
        typer.echo(explanation_json(e))
    else:
        print_explanation(out, e)
        _print_network(e)


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
    relations: RelationsOpt = None,
    ratings: RatingsOpt = None,
) -> None:
    """May this subject do this action? Exit 0 when allowed (or granted), 1 when denied."""
    action = action.strip()
    if not re.fullmatch(DOTTED_NAME, action):
        raise typer.BadParameter(
            f"{action!r} is not an action: a dotted name (letters, digits, _ and -, in parts "
            "joined by dots), such as travel.air",
            param_hint="ACTION",
        )
    states = states_for(
        scheme, at, ledger, subjects, records, synthetic, opaque, relations, ratings
    )
    decision = Decider(states).may(normal_code(code), action)
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
    names = list(dict.fromkeys(scheme)) if scheme else [n for n in preset_names() if _publishes(n)]
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
        display = mask_unknown(code)
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
