"""The store: reading input files, the registry of subjects and the hash-chained ledger.

* :mod:`~socialcredit.store.files` reads subjects and records from CSV or Parquet,
  checked whole, into the canonical Arrow tables of :mod:`socialcredit.records`;
* :mod:`~socialcredit.store.checks` holds the checks of a batch, shared by the ledger and
  by scoring straight from files;
* :class:`Ledger` is the interface of a ledger, :class:`SqliteLedger` the SQLite one and
  :class:`PostgresLedger` the PostgreSQL one (with the optional dependency ``psycopg``:
  ``socialcredit[postgres]``); :func:`open_ledger` and :func:`create_ledger` pick the
  store from the target, a ``postgresql://`` URL or a file;
  :mod:`~socialcredit.store.chain` defines the hash chain.
"""

from typing import TYPE_CHECKING

from socialcredit.store.backends import create_ledger, open_ledger
from socialcredit.store.base import AppendResult, Batch, Ledger, SubjectsAdded, VerifyReport
from socialcredit.store.checks import (
    BatchCheck,
    SubjectsCheck,
    check_batch,
    check_rows,
    check_subjects,
)
from socialcredit.store.files import (
    FileInputs,
    Loaded,
    load_records,
    load_subjects,
    parse_records,
    parse_subjects,
    read_inputs,
    read_records,
    read_subjects,
)
from socialcredit.store.origin import Origin
from socialcredit.store.sqlite import SqliteLedger

if TYPE_CHECKING:
    from socialcredit.store.postgres import PostgresLedger

__all__ = [
    "AppendResult",
    "Batch",
    "BatchCheck",
    "FileInputs",
    "Ledger",
    "Loaded",
    "Origin",
    "PostgresLedger",
    "SqliteLedger",
    "SubjectsAdded",
    "SubjectsCheck",
    "VerifyReport",
    "check_batch",
    "check_rows",
    "check_subjects",
    "create_ledger",
    "load_records",
    "load_subjects",
    "open_ledger",
    "parse_records",
    "parse_subjects",
    "read_inputs",
    "read_records",
    "read_subjects",
]


def __getattr__(name: str) -> object:
    # PostgresLedger is imported when first used, so that psycopg stays optional.
    if name == "PostgresLedger":
        from socialcredit.store.postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
