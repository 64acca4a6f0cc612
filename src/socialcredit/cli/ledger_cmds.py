"""``socialcredit init | subjects | records | ledger``: the registry and the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from socialcredit.cli.app import app, domain_errors, err, out
from socialcredit.cli.inputs import LedgerOpt, ledger_path
from socialcredit.errors import LedgerError
from socialcredit.ids import validate_code
from socialcredit.records import SUBJECTS_SCHEMA
from socialcredit.store.origin import Origin

COMMAND_LINE = "<command line>"
"""The place named by the problems of what ``records add`` and ``subjects add`` are given."""

OpaqueCodesOpt = Annotated[
    bool,
    typer.Option(
        "--opaque-codes",
        help="Accept any code (operators outside China) instead of USCCs and resident numbers.",
    ),
]

subjects_app = typer.Typer(help="The registry of subjects.", no_args_is_help=True)
records_app = typer.Typer(help="Conduct records in the ledger.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger file itself.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")
app.add_typer(records_app, name="records")
app.add_typer(ledger_app, name="ledger")


def _open(ledger: str | None):  # type: ignore[no-untyped-def]
    from socialcredit.store import open_ledger

    path = ledger_path(ledger)
    if isinstance(path, Path) and not path.exists():
        raise LedgerError(f"no ledger at {path}: create one with 'socialcredit init {path}'")
    return open_ledger(path)


@app.command()
@domain_errors
def init(
    path: Annotated[
        str | None, typer.Argument(help="The new ledger file, or a postgresql:// URL.")
    ] = None,
) -> None:
    """Create an empty ledger: a file (SQLite, WAL, synchronous=FULL, hash-chained), or a
    schema of a PostgreSQL database given as postgresql://user@host/dbname?schema=name."""
    from socialcredit.store import create_ledger
    from socialcredit.store.backends import printable

    target = ledger_path(path)
    with create_ledger(target):
        pass
    out.print(f"created ledger {printable(target)}", markup=False)


@subjects_app.command("import")
@domain_errors
def subjects_import(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with columns code, kind.")],
    ledger: LedgerOpt = None,
    opaque_codes: OpaqueCodesOpt = False,
) -> None:
    """Register subjects from a file; all or nothing, idempotent."""
    from socialcredit.store import load_subjects

    table = load_subjects(file, opaque_codes=opaque_codes)
    with _open(ledger) as store:
        result = store.add_subjects(table, opaque_codes=opaque_codes)
    out.print(
        f"{file}: {result.added:,} subjects added, {result.already_present:,} already registered",
        markup=False,
    )


@subjects_app.command("add")
@domain_errors
def subjects_add(
    code: Annotated[str, typer.Argument(help="The subject's code.")],
    kind: Annotated[str, typer.Option(help="person or organization")],
    ledger: LedgerOpt = None,
    opaque_codes: OpaqueCodesOpt = False,
) -> None:
    """Register one subject."""
    if kind not in ("person", "organization"):
        raise typer.BadParameter("must be person or organization", param_hint="--kind")
    code = validate_code(code, kind, opaque=opaque_codes)
    table = pa.Table.from_pylist([{"code": code, "kind": kind}], schema=SUBJECTS_SCHEMA)
    with _open(ledger) as store:
        result = store.add_subjects(
            table, source=COMMAND_LINE, origin=Origin.one(COMMAND_LINE), opaque_codes=opaque_codes
        )
    out.print("added" if result.added else "already registered", markup=False)


@records_app.command("import")
@domain_errors
def records_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet with the record fields of SCHEME.md §1.")
    ],
    ledger: LedgerOpt = None,
) -> None:
    """Append records from a file: validated whole, all or nothing, idempotent by id."""
    from socialcredit.store import load_records

    loaded = load_records(file)
    with _open(ledger) as store:
        result = store.append(loaded)
    out.print(
        f"{file}: {result.appended:,} records appended, {result.duplicates_skipped:,} "
        "already in the ledger",
        markup=False,
    )
    _unnoticed(ledger, result.appended)


@records_app.command("add")
@domain_errors
def records_add(
    record_id: Annotated[str, typer.Option("--id", help="Unique record id.")],
    subject: Annotated[str, typer.Option(help="The subject's code.")],
    record_type: Annotated[str, typer.Option("--type", help="Dotted record type.")],
    occurred_at: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    recorded_at: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD (default: occurred-at)")
    ] = None,
    amount: Annotated[str, typer.Option(help="A whole number >= 0, of at most 18 digits.")] = "0",
    ref: Annotated[
        str | None, typer.Option(help="Id of the record this one resolves or voids.")
    ] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Append one record, checked as a one-row file is."""
    from socialcredit.store.files import parse_record

    fields = {
        "id": record_id,
        "subject": subject,
        "type": record_type,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "amount": amount,
        "ref": ref,
    }
    loaded = parse_record(fields, source=COMMAND_LINE)
    with _open(ledger) as store:
        result = store.append(loaded, source=COMMAND_LINE)
    out.print("appended" if result.appended else "already in the ledger", markup=False)
    _unnoticed(ledger, result.appended)


def _unnoticed(ledger: str | None, appended: int) -> None:
    """Warn that records appended to a ledger whose service has schemes in force got no
    notice from it (docs/service.md, "A scheme newly in force")."""
    if not appended:
        return
    from socialcredit.service.activation import notifying

    schemes = notifying(ledger_path(ledger))
    if schemes:
        names = ", ".join(f"{s} (since {d.isoformat()})" for s, d in sorted(schemes.items()))
        err.print(
            f"warning: a service runs schemes in force on this ledger: {names}. The "
            f"{appended:,} record(s) appended here got no notice from it, and its adverse "
            "ones count under those schemes notice_days after they were recorded (or after "
            "the day in force); send records through the service (POST /v1/records) to "
            "give notice",
            markup=False,
        )


@ledger_app.command("verify")
@domain_errors
def verify(ledger: LedgerOpt = None) -> None:
    """Check the whole hash chain; name the first bad entry. Exit 1 when it is broken."""
    with _open(ledger) as store:
        report = store.verify()
    if report.ok:
        out.print(f"ok: {report.entries_checked:,} entries, chain intact", markup=False)
        return
    err.print(
        f"BROKEN at entry {report.first_bad}: {report.reason} "
        f"({report.entries_checked:,} entries checked)",
        markup=False,
    )
    raise typer.Exit(1)
