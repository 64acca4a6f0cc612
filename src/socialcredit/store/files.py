"""Reading subjects and records from CSV or Parquet files, checked whole.

The format follows the extension (``.csv`` or ``.parquet``). Columns are the fields of
SCHEME.md section 1, in any order; an unknown column is an error, and the optional record
columns (``recorded_at``, ``amount``, ``ref``) may be left out. An empty cell takes the
field's default: ``recorded_at`` = ``occurred_at``, ``amount`` = 0, ``ref`` none.

A file with problems raises :class:`~socialcredit.errors.InvalidInput` listing every
problem with its place: the physical line of a CSV file (the header is line 1), or the
row number of a Parquet file. A row repeated exactly is kept once, silently.

CSV is read by ``pyarrow.csv`` (every column as text) and checked with
``pyarrow.compute``; Python loops run only over rows with problems.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import InvalidInput, Problem
from socialcredit.ids import normal_code
from socialcredit.records import RECORD_FIELDS, RECORDS_SCHEMA, SUBJECT_FIELDS
from socialcredit.store.checks import (
    OpaqueCodes,
    as_mask,
    check_batch,
    check_rows,
    check_subjects,
    count_distinct,
    find_repeats,
    sort_problems,
)
from socialcredit.store.origin import Origin
from socialcredit.store.readers import RawColumns, read_csv_columns, read_parquet_columns

__all__ = [
    "FileInputs",
    "Loaded",
    "load_records",
    "load_subjects",
    "parse_record",
    "parse_records",
    "parse_subjects",
    "read_inputs",
    "read_records",
    "read_subjects",
]

Format = Literal["csv", "parquet"]
PathLike = str | os.PathLike[str]

_FORMATS: dict[str, Format] = {".csv": "csv", ".parquet": "parquet"}
_RECORD_REQUIRED = ("id", "subject", "type", "occurred_at")
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_AMOUNT_DIGITS = 18
_AMOUNT_MAX = 10**_AMOUNT_DIGITS - 1


@dataclass(frozen=True)
class Loaded:
    """A checked table read from a file, with the place of each row.

    ``table`` has exactly the canonical schema; ``origin`` gives the line (CSV) or row
    (Parquet) of each of its rows; ``repeats`` counts the rows dropped because they
    repeated an earlier row exactly.
    """

    table: pa.Table
    origin: Origin
    repeats: int = 0


@dataclass(frozen=True)
class FileInputs:
    """Subjects and records read from files for scoring without a ledger.

    ``unknown_subjects`` counts the records kept whose subject is not in the subjects
    file (they score nobody); ``unknown_codes`` lists those codes.
    """

    subjects: pa.Table
    records: pa.Table
    unknown_subjects: int = 0
    unknown_codes: list[str] = field(default_factory=list)


# -- public functions --------------------------------------------------------------------


def read_records(path: PathLike) -> pa.Table:
    """Read and check a records file (``.csv`` or ``.parquet``); return a canonical table.

    Raises :class:`InvalidInput` listing every problem. The records' subjects and refs are
    not checked here (a records file does not know the registry): see :func:`read_inputs`
    and the ledger's ``append``.
    """
    return load_records(path).table


def read_subjects(path: PathLike, *, opaque_codes: OpaqueCodes = False) -> pa.Table:
    """Read and check a subjects file (``.csv`` or ``.parquet``); return a canonical table.

    Every code is checked for its kind with :func:`socialcredit.ids.validate_code` and
    returned normalized, or accepted as it is as ``opaque_codes`` says
    (:data:`~socialcredit.store.checks.OpaqueCodes`).
    """
    return load_subjects(path, opaque_codes=opaque_codes).table


def load_records(path: PathLike) -> Loaded:
    """As :func:`read_records`, keeping the line of each row for later checks."""
    source, fmt = _source(path)
    return _records(_raw(Path(path), fmt, source, RECORD_FIELDS, _RECORD_REQUIRED))


def load_subjects(path: PathLike, *, opaque_codes: OpaqueCodes = False) -> Loaded:
    """As :func:`read_subjects`, keeping the line of each row for later checks."""
    source, fmt = _source(path)
    return _subjects(_raw(Path(path), fmt, source, SUBJECT_FIELDS, SUBJECT_FIELDS), opaque_codes)


def parse_records(data: bytes, *, fmt: Format = "csv", source: str = "<bytes>") -> Loaded:
    """As :func:`load_records`, for the contents of a file held in memory."""
    return _records(_raw(data, fmt, source, RECORD_FIELDS, _RECORD_REQUIRED))


def parse_record(fields: Mapping[str, str | None], *, source: str) -> Loaded:
    """Check one record given as text, field by field, exactly as a one-row CSV file.

    ``fields`` maps field names to the text of their cells; a field left out, or None, is
    a column left out (``id``, ``subject``, ``type`` and ``occurred_at`` are required).
    Problems name ``source`` with no line or row.
    """
    if any(name not in RECORD_FIELDS for name in fields) or any(
        fields.get(name) is None for name in _RECORD_REQUIRED
    ):
        raise ValueError(f"fields must be among {RECORD_FIELDS}, with {_RECORD_REQUIRED}")
    columns = {
        name: pa.chunked_array([pa.array([value], pa.string())])
        for name, value in fields.items()
        if value is not None
    }
    return _records(RawColumns(columns, Origin.one(source)))


def parse_subjects(
    data: bytes, *, fmt: Format = "csv", source: str = "<bytes>", opaque_codes: OpaqueCodes = False
) -> Loaded:
    """As :func:`load_subjects`, for the contents of a file held in memory."""
    return _subjects(_raw(data, fmt, source, SUBJECT_FIELDS, SUBJECT_FIELDS), opaque_codes)


def read_inputs(
    subjects_path: PathLike, records_path: PathLike, *, opaque_codes: OpaqueCodes = False
) -> FileInputs:
    """Read a subjects file and a records file that are scored together, without a ledger.

    Both files are checked as by :func:`read_subjects` and :func:`read_records`; then the
    records are checked against each other: every ``ref`` must name a record of the file
    about the same subject. The subjects file's codes are kept in normal form, and so are
    the records' subjects that name one of them in another form (``...1l`` for ``...1L``,
    spaces). A record whose subject is not in the subjects file is kept (it scores nobody)
    and counted in ``unknown_subjects``.
    """
    subjects = read_subjects(subjects_path, opaque_codes=opaque_codes)
    loaded = load_records(records_path)
    table = _subjects_in_normal_form(loaded.table, subjects.column("code"))
    check = check_batch(table, origin=loaded.origin, subjects=subjects, unknown_subjects="keep")
    if check.problems:
        raise InvalidInput(check.problems, what=loaded.origin.source)
    keep = pa.array(check.keep, pa.int64())
    return FileInputs(subjects, table.take(keep), check.unknown_subjects, check.unknown_codes)


def _subjects_in_normal_form(records: pa.Table, codes: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``records`` with each subject that is not among ``codes`` but whose normal form is
    (only a code with lower-case letters or white space can have another normal form)."""
    subject = records.column("subject")
    other = pc.unique(pc.filter(subject, pc.invert(pc.is_in(subject, value_set=codes))))
    other = pc.filter(other, pc.match_substring_regex(other, r"[a-z\s]"))
    if not len(other):
        return records
    normal = pa.array([normal_code(c) for c in other.to_pylist()], pa.string())
    known = pc.is_in(normal, value_set=codes)
    at = pc.index_in(subject, value_set=pc.filter(other, known))
    renamed = pc.if_else(pc.is_valid(at), pc.filter(normal, known).take(at), subject)
    return records.set_column(records.schema.get_field_index("subject"), "subject", renamed)


# -- from file to text columns -----------------------------------------------------------


AGENCY_PREFIX = "agency:"
"""How the service names an agency's writes in the log of batches (reserved: a file's
source never begins with it)."""


def _source(path: PathLike) -> tuple[str, Format]:
    source = str(path)
    if source.startswith(AGENCY_PREFIX):  # the same file, never read as an agency's write
        source = f"./{source}"
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise InvalidInput(
            [
                Problem(
                    source,
                    0,
                    "",
                    f"unsupported file type {suffix or '(none)'!r}: use a .csv or .parquet file",
                )
            ],
            what=source,
        )
    if not Path(path).is_file():
        raise InvalidInput([Problem(source, 0, "", "no such file")], what=source)
    return source, _FORMATS[suffix]


def _raw(
    data: bytes | Path,
    fmt: Format,
    source: str,
    fields: tuple[str, ...],
    required: tuple[str, ...],
) -> RawColumns:
    if fmt == "csv":
        text = data if isinstance(data, bytes) else data.read_bytes()
        return read_csv_columns(text, source, fields, required)
    return read_parquet_columns(data, source, fields, required)


# -- from text columns to checked tables -------------------------------------------------


def _records(raw: RawColumns) -> Loaded:
    origin, cols, n = raw.origin, raw.columns, len(raw.origin)

    def text(name: str) -> pa.ChunkedArray:
        if name not in cols:
            return pa.chunked_array([pa.nulls(n, pa.string())])
        return cols[name].cast(pa.string())

    # Counting distinct ids is the longest step: it runs in another thread (Arrow works
    # outside the GIL) while the values are parsed and checked here.
    with ThreadPoolExecutor(1) as pool:
        ids = pool.submit(count_distinct, text("id"))
        table, problems, bad = _parse_records(raw, text)
        distinct_ids = ids.result()
    repeat, found = find_repeats(table, origin, ~bad, distinct_ids=distinct_ids)
    problems += found
    if problems:
        raise InvalidInput(sort_problems(problems), what=origin.source)
    keep = np.flatnonzero(~repeat)
    if len(keep) == n:
        return Loaded(table.combine_chunks(), origin)
    return Loaded(
        table.take(pa.array(keep, pa.int64())).combine_chunks(), origin.take(keep), n - len(keep)
    )


def _parse_records(
    raw: RawColumns, text: Callable[[str], pa.ChunkedArray]
) -> tuple[pa.Table, list[Problem], npt.NDArray[np.bool_]]:
    """Parse the columns into a canonical table; the problems, and a mask of bad rows."""
    origin, cols, n = raw.origin, raw.columns, len(raw.origin)
    problems: list[Problem] = list(raw.problems)
    ref = text("ref")
    ref = pc.if_else(pc.equal(ref, ""), pa.scalar(None, pa.string()), ref)
    occurred, wrong = _dates(cols["occurred_at"], "occurred_at", origin, problems)
    reported = {"occurred_at": wrong, "recorded_at": wrong}
    recorded = occurred
    if "recorded_at" in cols:
        parsed, wrong = _dates(cols["recorded_at"], "recorded_at", origin, problems)
        recorded = pc.coalesce(parsed, occurred)
        reported["recorded_at"] = reported["recorded_at"] | wrong
    amount, reported["amount"] = _amounts(cols.get("amount"), n, origin, problems)
    table = pa.Table.from_arrays(
        [text("id"), text("subject"), text("type"), occurred, recorded, amount, ref],
        schema=RECORDS_SCHEMA,
    )
    found, bad = check_rows(table, origin, reported=reported)
    problems += found
    for wrong in reported.values():
        bad |= wrong
    return table, problems, bad


def _subjects(raw: RawColumns, opaque_codes: OpaqueCodes) -> Loaded:
    table = pa.table({name: raw.columns[name].cast(pa.string()) for name in SUBJECT_FIELDS})
    check = check_subjects(table, raw.origin, opaque_codes=opaque_codes)
    if check.problems or raw.problems:
        problems = sort_problems(raw.problems + check.problems)
        raise InvalidInput(problems, what=raw.origin.source)
    return Loaded(check.table, check.origin, check.repeats)


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        # a null cell is an empty one (not_equal of a null is null: filled as not there)
        return pc.fill_null(pc.and_(pc.is_valid(column), pc.not_equal(column, "")), False)
    return pc.is_valid(column)


def _dates(
    column: pa.ChunkedArray, name: str, origin: Origin, problems: list[Problem]
) -> tuple[pa.ChunkedArray, npt.NDArray[np.bool_]]:
    """Parse a column of ``YYYY-MM-DD`` dates; an empty cell becomes null.

    Returns the dates and a mask of the malformed cells (null too), each reported.
    """
    fine = np.zeros(len(column), dtype=np.bool_)
    if not pa.types.is_string(column.type):
        return column.cast(pa.date32()), fine
    present = _present(column)
    clean = pc.if_else(present, column, pa.scalar(None, pa.string()))
    try:
        return clean.cast(pa.date32()), fine
    except pa.ArrowInvalid:
        pass
    shaped = as_mask(pc.match_substring_regex(clean, _DATE_SHAPE))
    candidates = pc.if_else(pa.array(shaped), clean, pa.scalar(None, pa.string()))

    def part(start: int, stop: int) -> npt.NDArray[np.int64]:
        piece = pc.utf8_slice_codeunits(candidates, start, stop).cast(pa.int64())
        return np.asarray(pc.fill_null(piece, 0).to_numpy(zero_copy_only=False), np.int64)

    year, month, day = part(0, 4), part(5, 7), part(8, 10)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + (leap & (month == 2))
    valid = shaped & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days) & (year >= 1)
    wrong = np.flatnonzero(as_mask(present) & ~valid)
    for i in wrong:
        value = column[int(i)].as_py()
        why = (
            "is not a valid calendar date" if shaped[i] else "is not a date of the form YYYY-MM-DD"
        )
        problems.append(origin.problem(int(i), name, f"{value!r} {why}"))
    fine[wrong] = True
    dates = pc.if_else(pa.array(valid), clean, pa.scalar(None, pa.string())).cast(pa.date32())
    return dates, fine


def _amounts(
    column: pa.ChunkedArray | None, n: int, origin: Origin, problems: list[Problem]
) -> tuple[pa.ChunkedArray | pa.Array, npt.NDArray[np.bool_]]:
    """Parse a column of whole numbers >= 0 of at most 18 digits (text, or integers of
    any type); an empty cell becomes 0.

    Returns the amounts and a mask of the malformed cells (0), each reported. A negative
    integer is left for :func:`~socialcredit.store.checks.check_rows` to report.
    """
    bad = np.zeros(n, dtype=np.bool_)
    if column is None:
        return pa.array(np.zeros(n, dtype=np.int64)), bad
    if not pa.types.is_string(column.type):
        wide = pa.uint64() if pa.types.is_unsigned_integer(column.type) else pa.int64()
        column = column.cast(wide)
        too_big = np.flatnonzero(as_mask(pc.greater(column, pa.scalar(_AMOUNT_MAX, wide))))
        for i in too_big:
            problems.append(origin.problem(int(i), "amount", _too_large(column[int(i)])))
        bad[too_big] = True
        column = pc.if_else(pa.array(~bad), column, pa.scalar(0, wide))
        return pc.fill_null(column.cast(pa.int64()), 0), bad
    present = _present(column)
    digits = pc.and_(
        pc.ascii_is_decimal(column), pc.less_equal(pc.utf8_length(column), _AMOUNT_DIGITS)
    )
    wrong = np.flatnonzero(as_mask(present) & ~as_mask(digits))
    for i in wrong:
        value = column[int(i)].as_py()
        if value.isascii() and value.isdigit():
            message = _too_large(value)
        elif value.startswith("-") and value[1:].isascii() and value[1:].isdigit():
            message = f"must be a whole number >= 0; got {value}"
        else:
            message = f"{value!r} is not a whole number >= 0: write digits only, such as 250"
        problems.append(origin.problem(int(i), "amount", message))
    bad[wrong] = True
    parsed = pc.if_else(digits, column, pa.scalar(None, pa.string())).cast(pa.int64())
    return pc.if_else(present, parsed, 0), bad


def _too_large(value: object) -> str:
    return f"{value} is too large: at most {_AMOUNT_DIGITS} digits"
