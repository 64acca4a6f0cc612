"""Where the CLI's subjects and records come from: a ledger file, or two plain files."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import typer

from socialcredit.errors import InvalidInput, LedgerError
from socialcredit.ids import mask_unknown
from socialcredit.scheme.model import Scheme

DEFAULT_LEDGER = "socialcredit.ledger"
LEDGER_ENV = "SOCIALCREDIT_LEDGER"

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        "-l",
        help=f"Ledger file or postgresql:// URL (default: ${LEDGER_ENV} or ./{DEFAULT_LEDGER}).",
        show_default=False,
    ),
]
SubjectsOpt = Annotated[
    Path | None,
    typer.Option(
        "--subjects",
        help="Score a subjects file (CSV or Parquet) instead of a ledger; goes with --records.",
    ),
]
OpaqueOpt = Annotated[
    bool,
    typer.Option(
        "--opaque-codes",
        help="With --subjects: accept any code (operators outside "
        "China) instead of USCCs and resident numbers.",
    ),
]
RecordsOpt = Annotated[
    Path | None,
    typer.Option("--records", help="Records file (CSV or Parquet) to score with --subjects."),
]


def warn(message: str) -> None:
    """A warning on stderr (never on stdout, which may carry CSV)."""
    from socialcredit.cli.app import err

    err.print(f"warning: {message}", markup=False, highlight=False)


def ledger_path(option: str | Path | None) -> str | Path:
    """The ledger to use: the option, else the environment, else the default; a
    ``postgresql://`` URL as it is, anything else a file."""
    from socialcredit.store.backends import is_postgres_url

    target = option if option is not None else os.environ.get(LEDGER_ENV, DEFAULT_LEDGER)
    return target if is_postgres_url(target) else Path(target)


@dataclass
class Inputs:
    """Canonical subjects and records tables, validated."""

    subjects: pa.Table
    records: pa.Table
    source: str

    def unknown_types(self, scheme: Scheme) -> dict[str, int]:
        """Record types the scheme does not know, with their counts."""
        counts = pc.value_counts(self.records.column("type").combine_chunks())
        out: Counter[str] = Counter()
        for item in counts.to_pylist():
            if item["values"] not in scheme.records:
                out[item["values"]] += item["counts"]
        return dict(out)

    def kind_of(self, code: str) -> str | None:
        """The kind of a registered code, or None."""
        found = self.subjects.filter(pc.equal(self.subjects.column("code"), code))
        return str(found.column("kind")[0]) if found.num_rows else None

    def subjects_of(self, codes: list[str]) -> pa.Table:
        """The subjects rows of these codes."""
        mask = pc.is_in(self.subjects.column("code"), value_set=pa.array(codes, pa.string()))
        return self.subjects.filter(mask)

    def records_of(self, code: str) -> pa.Table:
        """The records of one subject, and the records that ref them."""
        return self.records.filter(pc.equal(self.records.column("subject"), code))


def load_inputs(
    ledger: str | Path | None,
    subjects: Path | None,
    records: Path | None,
    *,
    opaque: bool = False,
) -> Inputs:
    """Read from the ledger, or from ``--subjects`` and ``--records`` files when given."""
    from socialcredit.store import open_ledger, read_inputs
    from socialcredit.store.backends import printable

    if subjects is not None or records is not None:
        if subjects is None or records is None:
            raise typer.BadParameter("--subjects and --records go together")
        if ledger is not None:
            raise typer.BadParameter("give either --ledger or --subjects/--records, not both")
        try:
            files = read_inputs(subjects, records, opaque_codes=opaque)
        except InvalidInput as exc:
            odd = [p for p in exc.problems if p.source == str(subjects) and p.where == "code"]
            if opaque or len(odd) != len(exc.problems):
                raise
            # SCHEME.md section 1: a code may be "any other unique string the operator
            # uses"; scoring files (the form implementations are compared in), such codes
            # are scored as they are, said on standard error
            files = read_inputs(subjects, records, opaque_codes="invalid")
            lines = ", ".join(str(p.line) for p in odd[:5]) + (" ..." if len(odd) > 5 else "")
            warn(
                f"{len(odd)} code(s) of {subjects} are no valid resident identity number or "
                f"USCC of their kind (line(s) {lines}): scored as they are, as opaque codes; "
                "the others are read as usual (--opaque-codes takes every code as it is "
                "and silences this)"
            )
        if files.unknown_subjects:
            shown = ", ".join(mask_unknown(c) for c in files.unknown_codes[:5])
            warn(
                f"{files.unknown_subjects} record(s) of subjects not in {subjects} count for "
                f"nothing (e.g. {shown})"
            )
        return Inputs(files.subjects, files.records, f"{subjects} + {records}")
    path = ledger_path(ledger)
    if isinstance(path, Path) and not path.exists():
        raise LedgerError(
            f"no ledger at {path}: create one with 'socialcredit init {path}', "
            "or score files with --subjects and --records"
        )
    with open_ledger(path) as store:
        return Inputs(store.subjects(), store.records(), printable(path))
