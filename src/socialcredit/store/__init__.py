"""The store: reading input files, the registry of subjects and the hash-chained ledger.

* :mod:`~socialcredit.store.files` reads subjects and records from CSV or Parquet,
  checked whole, into the canonical Arrow tables of :mod:`socialcredit.records`;
* :mod:`~socialcredit.store.checks` holds the checks of a batch, shared by the ledger and
  by scoring straight from files;
* :class:`Ledger` is the interface of a ledger, :class:`SqliteLedger` the SQLite one;
  :mod:`~socialcredit.store.chain` defines the hash chain.
"""

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

__all__ = [
    "AppendResult",
    "Batch",
    "BatchCheck",
    "FileInputs",
    "Ledger",
    "Loaded",
    "Origin",
    "SqliteLedger",
    "SubjectsAdded",
    "SubjectsCheck",
    "VerifyReport",
    "check_batch",
    "check_rows",
    "check_subjects",
    "load_records",
    "load_subjects",
    "parse_records",
    "parse_subjects",
    "read_inputs",
    "read_records",
    "read_subjects",
]
