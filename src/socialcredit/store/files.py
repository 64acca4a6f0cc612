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

import csv
import difflib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from socialcredit.errors import InvalidInput, Problem
from socialcredit.records import RECORD_FIELDS, RECORDS_SCHEMA, SUBJECT_FIELDS
from socialcredit.store.checks import (
    as_mask,
    check_batch,
    check_rows,
    check_subjects,
    find_repeats,
    sort_problems,
)
from socialcredit.store.origin import Origin

__all__ = [
    "FileInputs",
    "Loaded",
    "load_records",
    "load_subjects",
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
_TEXT = ("id", "subject", "type", "ref")
_BOM = b"\xef\xbb\xbf"
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_AMOUNT_DIGITS = 18


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


def read_subjects(path: PathLike, *, opaque_codes: bool = False) -> pa.Table:
    """Read and check a subjects file (``.csv`` or ``.parquet``); return a canonical table.

    Every code is checked for its kind with :func:`socialcredit.ids.validate_code` (with
    ``opaque_codes``, any short printable code is accepted) and returned normalized.
    """
    return load_subjects(path, opaque_codes=opaque_codes).table


def load_records(path: PathLike) -> Loaded:
    """As :func:`read_records`, keeping the line of each row for later checks."""
    source, fmt = _source(path)
    return _records(_raw(Path(path), fmt, source, RECORD_FIELDS, _RECORD_REQUIRED))


def load_subjects(path: PathLike, *, opaque_codes: bool = False) -> Loaded:
    """As :func:`read_subjects`, keeping the line of each row for later checks."""
    source, fmt = _source(path)
    return _subjects(_raw(Path(path), fmt, source, SUBJECT_FIELDS, SUBJECT_FIELDS), opaque_codes)


def parse_records(data: bytes, *, fmt: Format = "csv", source: str = "<bytes>") -> Loaded:
    """As :func:`load_records`, for the contents of a file held in memory."""
    return _records(_raw(data, fmt, source, RECORD_FIELDS, _RECORD_REQUIRED))


def parse_subjects(
    data: bytes, *, fmt: Format = "csv", source: str = "<bytes>", opaque_codes: bool = False
) -> Loaded:
    """As :func:`load_subjects`, for the contents of a file held in memory."""
    return _subjects(_raw(data, fmt, source, SUBJECT_FIELDS, SUBJECT_FIELDS), opaque_codes)


def read_inputs(
    subjects_path: PathLike, records_path: PathLike, *, opaque_codes: bool = False
) -> FileInputs:
    """Read a subjects file and a records file that are scored together, without a ledger.

    Both files are checked as by :func:`read_subjects` and :func:`read_records`; then the
    records are checked against each other: every ``ref`` must name a record of the file
    about the same subject. A record whose subject is not in the subjects file is kept
    (it scores nobody) and counted in ``unknown_subjects``.
    """
    subjects = read_subjects(subjects_path, opaque_codes=opaque_codes)
    loaded = load_records(records_path)
    check = check_batch(
        loaded.table, origin=loaded.origin, subjects=subjects, unknown_subjects="keep"
    )
    if check.problems:
        raise InvalidInput(check.problems, what=loaded.origin.source)
    keep = pa.array(check.keep, pa.int64())
    return FileInputs(
        subjects, loaded.table.take(keep), check.unknown_subjects, check.unknown_codes
    )


# -- from file to text columns -----------------------------------------------------------


@dataclass
class _Raw:
    """Columns as found in a file (text from CSV, any type from Parquet), with places."""

    columns: dict[str, pa.ChunkedArray]
    origin: Origin
    problems: list[Problem] = field(default_factory=list)


def _source(path: PathLike) -> tuple[str, Format]:
    source = str(path)
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise InvalidInput(
            [Problem(source, 0, "", f"unsupported file type {suffix or '(none)'!r}: "
                     "use a .csv or .parquet file")],
            what=source,
        )
    if not Path(path).is_file():
        raise InvalidInput([Problem(source, 0, "", "no such file")], what=source)
    return source, _FORMATS[suffix]


def _raw(
    data: bytes | Path, fmt: Format, source: str, fields: tuple[str, ...],
    required: tuple[str, ...],
) -> _Raw:
    if fmt == "csv":
        return _read_csv(data if isinstance(data, bytes) else data.read_bytes(), source,
                         fields, required)
    return _read_parquet(data, source, fields, required)


def _header_problems(
    names: list[str], fields: tuple[str, ...], required: tuple[str, ...], source: str,
    line: int,
) -> list[Problem]:
    problems = []
    expected = ",".join(fields)
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(Problem(source, line, name, "column appears twice"))
        elif name not in fields:
            close = difflib.get_close_matches(name.strip().lower(), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(Problem(
                source, line, name, f"unknown column{hint}; the columns are {expected}"))
    for name in required:
        if name not in names:
            problems.append(Problem(source, line, name, f"missing column; required: "
                                    f"{','.join(required)}"))
    return problems


def _read_csv(
    data: bytes, source: str, fields: tuple[str, ...], required: tuple[str, ...]
) -> _Raw:
    start = len(_BOM) if data.startswith(_BOM) else 0
    end = data.find(b"\n", start)
    first = data[start:end if end >= 0 else len(data)].rstrip(b"\r")
    if not first.strip():
        raise InvalidInput([Problem(
            source, 1, "", f"no header: the first line must name the columns, such as "
            f"{','.join(fields)}")], what=source)
    try:
        names = next(csv.reader([first.decode("utf-8")]))
    except UnicodeDecodeError:
        raise InvalidInput([Problem(source, 1, "", "the header is not UTF-8 text; save the "
                                    "file as UTF-8")], what=source) from None
    problems = _header_problems(names, fields, required, source, 1)
    if problems:
        raise InvalidInput(problems, what=source)
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            parse_options=pcsv.ParseOptions(newlines_in_values=data.find(b'"', end) >= 0),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return _read_csv_slowly(data, source, names)
    lines = _row_lines(data, table.num_rows)
    if lines is None:
        return _read_csv_slowly(data, source, names)
    return _Raw({name: table.column(name) for name in names}, Origin(source, lines))


def _row_lines(data: bytes, n_rows: int) -> npt.NDArray[np.int64] | None:
    """The physical line of each data row of a CSV file, or None when unsure.

    Rows are the non-empty records after the header; a record ends at a line break
    outside double quotes.
    """
    header_end = data.find(b"\n") + 1
    if header_end and data.find(b'"', header_end) < 0 and b"\r" not in data:
        # Without quotes every line break ends a line; without blank lines every line
        # after the header is a row.
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        if lines == n_rows + 1:
            return np.arange(2, n_rows + 2, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    size = len(buf)
    breaks = np.flatnonzero(buf == 10)
    returns = np.flatnonzero(buf == 13)
    if len(returns):
        after = np.minimum(returns + 1, size - 1)
        lone = returns[(returns + 1 == size) | (buf[after] != 10)]
        breaks = np.union1d(breaks, lone)
    quotes = np.flatnonzero(buf == 34)
    ends = breaks[np.searchsorted(quotes, breaks) % 2 == 0] if len(quotes) else breaks
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [size]))
    length = stops - starts
    first_byte = buf[np.minimum(starts, max(size - 1, 0))] if size else np.zeros(0, np.uint8)
    empty = (length == 0) | ((length == 1) & (first_byte == 13))
    line = 1 + np.searchsorted(breaks, starts)
    rows: npt.NDArray[np.int64] = line[~empty][1:].astype(np.int64)
    if len(rows) != n_rows:
        return None
    return rows


def _read_csv_slowly(data: bytes, source: str, names: list[str]) -> _Raw:
    """Read a CSV file that pyarrow refused, row by row, to name each broken line."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    values: list[list[str]] = [[] for _ in names]
    lines: list[int] = []
    problems: list[Problem] = []
    last = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(source, last + 1, "", f"cannot be read as CSV: {exc}"))
            break
        start, last = last + 1, reader.line_num
        if not row:
            continue
        if len(row) != len(names):
            problems.append(Problem(
                source, start, "", f"has {len(row)} fields, the header names {len(names)}"))
            continue
        try:
            "".join(row).encode("utf-8")
        except UnicodeEncodeError:
            problems.append(Problem(source, start, "", "is not UTF-8 text; save the file as "
                                    "UTF-8"))
            continue
        for column, value in zip(values, row, strict=True):
            column.append(value)
        lines.append(start)
    columns = {name: pa.chunked_array([pa.array(v, pa.string())]) for name, v in
               zip(names, values, strict=True)}
    return _Raw(columns, Origin(source, np.array(lines, dtype=np.int64)), problems)


def _read_parquet(
    data: bytes | Path, source: str, fields: tuple[str, ...], required: tuple[str, ...]
) -> _Raw:
    try:
        handle = pa.BufferReader(data) if isinstance(data, bytes) else str(data)
        table = pq.read_table(handle)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            [Problem(source, 0, "", f"is not a readable Parquet file: {exc}")], what=source
        ) from None
    problems = _header_problems(table.column_names, fields, required, source, 0)
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        if not _parquet_type_ok(name, column.type):
            problems.append(Problem(source, 0, name, f"column of type {column.type}; expected "
                                    f"{_expected_type(name)}"))
        columns[name] = column
    if problems:
        raise InvalidInput(problems, what=source)
    return _Raw(columns, Origin.rows(source, table.num_rows))


def _parquet_type_ok(name: str, type_: pa.DataType) -> bool:
    if pa.types.is_string(type_) or pa.types.is_null(type_):
        return True
    if name in ("occurred_at", "recorded_at"):
        return bool(pa.types.is_date(type_))
    if name == "amount":
        return bool(pa.types.is_integer(type_))
    return False


def _expected_type(name: str) -> str:
    if name in ("occurred_at", "recorded_at"):
        return "date or text (YYYY-MM-DD)"
    if name == "amount":
        return "integer or text"
    return "text"


# -- from text columns to checked tables -------------------------------------------------


def _records(raw: _Raw) -> Loaded:
    origin = raw.origin
    n = len(origin)
    problems: list[Problem] = list(raw.problems)
    cols = raw.columns

    def text(name: str) -> pa.ChunkedArray:
        if name not in cols:
            return pa.chunked_array([pa.nulls(n, pa.string())])
        return cols[name].cast(pa.string())

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
    repeat, found = find_repeats(table, origin, ~bad)
    problems += found
    if problems:
        raise InvalidInput(sort_problems(problems), what=origin.source)
    keep = np.flatnonzero(~repeat)
    if len(keep) == n:
        return Loaded(table.combine_chunks(), origin)
    return Loaded(table.take(pa.array(keep, pa.int64())).combine_chunks(), origin.take(keep),
                  n - len(keep))


def _subjects(raw: _Raw, opaque_codes: bool) -> Loaded:
    table = pa.table({name: raw.columns[name].cast(pa.string()) for name in SUBJECT_FIELDS})
    check = check_subjects(table, raw.origin, opaque_codes=opaque_codes)
    if check.problems or raw.problems:
        problems = sort_problems(raw.problems + check.problems)
        raise InvalidInput(problems, what=raw.origin.source)
    return Loaded(check.table, check.origin, check.repeats)


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return pc.and_(pc.is_valid(column), pc.not_equal(column, ""))
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
        why = ("is not a valid calendar date" if shaped[i]
               else "is not a date of the form YYYY-MM-DD")
        problems.append(origin.problem(int(i), name, f"{value!r} {why}"))
    fine[wrong] = True
    dates = pc.if_else(pa.array(valid), clean, pa.scalar(None, pa.string())).cast(pa.date32())
    return dates, fine


def _amounts(
    column: pa.ChunkedArray | None, n: int, origin: Origin, problems: list[Problem]
) -> tuple[pa.ChunkedArray | pa.Array, npt.NDArray[np.bool_]]:
    """Parse a column of whole numbers >= 0; an empty cell becomes 0.

    Returns the amounts and a mask of the malformed cells (null), each reported.
    """
    bad = np.zeros(n, dtype=np.bool_)
    if column is None:
        return pa.array(np.zeros(n, dtype=np.int64)), bad
    if not pa.types.is_string(column.type):
        if pa.types.is_unsigned_integer(column.type):
            too_big = np.flatnonzero(as_mask(pc.greater(column, 2**63 - 1)))
            for i in too_big:
                problems.append(origin.problem(int(i), "amount", "is too large"))
            bad[too_big] = True
            column = pc.if_else(pa.array(~bad), column, 0)
        return pc.fill_null(column.cast(pa.int64()), 0), bad
    present = _present(column)
    digits = pc.and_(pc.ascii_is_decimal(column),
                     pc.less_equal(pc.utf8_length(column), _AMOUNT_DIGITS))
    wrong = np.flatnonzero(as_mask(present) & ~as_mask(digits))
    for i in wrong:
        value = column[int(i)].as_py()
        if value.isascii() and value.isdigit():
            message = f"{value} is too large: at most {_AMOUNT_DIGITS} digits"
        elif value.startswith("-") and value[1:].isascii() and value[1:].isdigit():
            message = f"must be a whole number >= 0; got {value}"
        else:
            message = f"{value!r} is not a whole number >= 0: write digits only, such as 250"
        problems.append(origin.problem(int(i), "amount", message))
    bad[wrong] = True
    parsed = pc.if_else(digits, column, pa.scalar(None, pa.string())).cast(pa.int64())
    return pc.if_else(present, parsed, 0), bad
