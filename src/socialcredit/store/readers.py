"""Reading a CSV or Parquet file into its columns, with the place of each row.

The first step of :mod:`socialcredit.store.files`: columns come out as found (all text
from CSV; any type from Parquet), with the header checked, and with an
:class:`~socialcredit.store.origin.Origin` giving each row's physical line (CSV: the
header is line 1, blank lines and line breaks inside quotes counted) or row number
(Parquet). Values are checked afterwards, by the caller.

CSV is parsed by ``pyarrow.csv``. When pyarrow refuses a file (a row with the wrong
number of fields, text that is not UTF-8, a quote never closed), the file is read again
row by row with Python's ``csv`` module, to name each broken line and still check the
others. Lines end in LF or CRLF: a carriage return alone is refused before anything else,
as the lines of such a file cannot be told apart.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from socialcredit.errors import InvalidInput, Problem
from socialcredit.store.origin import Origin

ColumnKind = Literal["date", "integer"]
"""A column that Parquet may hold typed, besides as text."""

__all__ = ["RawColumns", "read_csv_columns", "read_parquet_columns"]

_BOM = b"\xef\xbb\xbf"
_LONE_CR = (
    "has a carriage return (CR) without a line feed (LF) after it: lines must end in LF "
    "or CRLF, and no value holds a CR; nothing else was checked"
)
_FIELD_END = re.compile(r"[,\r\n]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class RawColumns:
    """Columns as found in a file (text from CSV, any type from Parquet), with places."""

    columns: dict[str, pa.ChunkedArray]
    origin: Origin
    problems: list[Problem] = field(default_factory=list)


def _header_problems(
    names: list[str],
    fields: tuple[str, ...],
    required: tuple[str, ...],
    source: str,
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
            problems.append(
                Problem(source, line, name, f"unknown column{hint}; the columns are {expected}")
            )
    for name in required:
        if name not in names:
            problems.append(
                Problem(source, line, name, f"missing column; required: {','.join(required)}")
            )
    return problems


def read_csv_columns(
    data: bytes, source: str, fields: tuple[str, ...], required: tuple[str, ...]
) -> RawColumns:
    """The text columns of a CSV file's contents, named by its header.

    The header may name ``fields`` in any order and must name the ``required`` ones; a
    bad header raises :class:`InvalidInput` at once. Broken rows are left out and
    reported in the result's ``problems``.
    """
    lone = _lone_cr_lines(data)
    if len(lone):
        raise InvalidInput([Problem(source, int(n), "", _LONE_CR) for n in lone], what=source)
    start = len(_BOM) if data.startswith(_BOM) else 0
    end = data.find(b"\n", start)
    first = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    if not first.strip():
        raise InvalidInput(
            [
                Problem(
                    source,
                    1,
                    "",
                    f"no header: the first line must name the columns, such as {','.join(fields)}",
                )
            ],
            what=source,
        )
    try:
        header = first.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            [Problem(source, 1, "", "the header is not UTF-8 text; save the file as UTF-8")],
            what=source,
        ) from None
    if _open_quote(header, 0) is not None:
        raise InvalidInput(
            [Problem(source, 1, "", "the header opens a quote it does not close")], what=source
        )
    try:
        names = next(csv.reader([header]))
    except csv.Error as exc:
        raise InvalidInput(
            [Problem(source, 1, "", f"the header cannot be read as CSV: {exc}")], what=source
        ) from None
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
    return RawColumns({name: table.column(name) for name in names}, Origin(source, lines))


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
    breaks = np.flatnonzero(buf == 10)  # no carriage return alone: read_csv_columns refused it
    quotes = np.flatnonzero(buf == 34)
    if len(quotes) % 2:
        # a quote never closed (pyarrow reads the rest of the file into its field), or a
        # quote inside an unquoted value: the slow reading tells them apart
        return None
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


def _lone_cr_lines(data: bytes) -> npt.NDArray[np.int64]:
    """The lines (counted by their LF) holding a carriage return not followed by LF."""
    returns = data.count(b"\r")
    if not returns or returns == data.count(b"\r\n"):
        return np.zeros(0, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    at = np.flatnonzero(buf == 13)
    lone = at[(at + 1 == len(buf)) | (buf[np.minimum(at + 1, len(buf) - 1)] != 10)]
    lines = 1 + np.searchsorted(np.flatnonzero(buf == 10), lone)
    return np.unique(lines).astype(np.int64)


def _open_quote(text: str, pos: int) -> int | None:
    """Where a quote that is never closed opens, in the record that begins at ``pos``, or
    None when that record ends (as Python's ``csv`` reads it: a quote opens a value only
    at its start, and is written twice inside it)."""
    at_start = True
    while pos < len(text):
        if at_start and text[pos] == '"':
            close = pos + 1
            while True:
                close = text.find('"', close)
                if close < 0:
                    return pos
                if not text.startswith('"', close + 1):
                    break
                close += 2
            pos, at_start = close + 1, False
            continue
        end = _FIELD_END.search(text, pos)
        if end is None or end.group() != ",":
            return None
        pos, at_start = end.end(), True
    return None


def _unclosed(source: str, text: str, quote: int, record: int, line: int) -> Problem:
    """The problem of a quote opened at offset ``quote`` and never closed, in the record
    that begins at offset ``record``, on ``line``."""
    line += len(_LINE_BREAK.findall(text, record, quote))
    message = (
        "a quote opened on this line is never closed, so the rest of the file is read as "
        'one value (a quote inside a value is written twice: "")'
    )
    last = line + len(_LINE_BREAK.findall(text.rstrip("\r\n"), quote))
    if last == line + 1:
        message += f"; line {last} is not checked"
    elif last > line:
        message += f"; lines {line + 1} to {last} are not checked"
    return Problem(source, line, "", message)


def _read_csv_slowly(data: bytes, source: str, names: list[str]) -> RawColumns:
    """Read a CSV file that pyarrow refused, row by row, to name each broken line."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream)
    next(reader)
    values: list[list[str]] = [[] for _ in names]
    lines: list[int] = []
    problems: list[Problem] = []
    last = reader.line_num
    while True:
        record = stream.tell()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            quote = _open_quote(text, record)
            if quote is not None:
                problems.append(_unclosed(source, text, quote, record, last + 1))
            else:
                message = f"cannot be read as CSV ({exc}); the lines after it are not checked"
                problems.append(Problem(source, last + 1, "", message))
            break
        start, last = last + 1, reader.line_num
        if not row:
            continue
        if stream.tell() == len(text) and (quote := _open_quote(text, record)) is not None:
            problems.append(_unclosed(source, text, quote, record, start))
            break
        if len(row) != len(names):
            problems.append(
                Problem(source, start, "", f"has {len(row)} fields, the header names {len(names)}")
            )
            continue
        try:
            "".join(row).encode("utf-8")
        except UnicodeEncodeError:
            problems.append(Problem(source, start, "", "is not UTF-8 text; save the file as UTF-8"))
            continue
        for column, value in zip(values, row, strict=True):
            column.append(value)
        lines.append(start)
    columns = {
        name: pa.chunked_array([pa.array(v, pa.string())])
        for name, v in zip(names, values, strict=True)
    }
    return RawColumns(columns, Origin(source, np.array(lines, dtype=np.int64)), problems)


RECORD_KINDS: Mapping[str, ColumnKind] = {
    "occurred_at": "date",
    "recorded_at": "date",
    "amount": "integer",
}
"""The columns of a records file that Parquet may hold as other than text."""


def read_parquet_columns(
    data: bytes | Path,
    source: str,
    fields: tuple[str, ...],
    required: tuple[str, ...],
    kinds: Mapping[str, ColumnKind] = RECORD_KINDS,
) -> RawColumns:
    """The columns of a Parquet file (a path, or its contents), checked as for CSV; a
    column of a type that cannot hold its field (text, or the kind ``kinds`` gives it)
    raises :class:`InvalidInput`."""
    try:
        handle = pa.BufferReader(data) if isinstance(data, bytes) else str(data)
        with pq.ParquetFile(handle) as parquet:  # as is: read_table refuses a name twice
            table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            [Problem(source, 0, "", f"is not a readable Parquet file: {exc}")], what=source
        ) from None
    problems = _header_problems(table.column_names, fields, required, source, 0)
    columns = {}
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        kind = kinds.get(name)
        if not _parquet_type_ok(kind, column.type):
            expected = _EXPECTED[kind] if kind is not None else "text"
            problems.append(
                Problem(source, 0, name, f"column of type {column.type}; expected {expected}")
            )
        columns[name] = column
    if problems:
        raise InvalidInput(problems, what=source)
    return RawColumns(columns, Origin.rows(source, table.num_rows))


_EXPECTED: dict[ColumnKind, str] = {
    "date": "date or text (YYYY-MM-DD)",
    "integer": "integer or text",
}


def _parquet_type_ok(kind: ColumnKind | None, type_: pa.DataType) -> bool:
    if pa.types.is_string(type_) or pa.types.is_null(type_):
        return True
    if kind == "date":
        return bool(pa.types.is_date(type_))
    if kind == "integer":
        return bool(pa.types.is_integer(type_))
    return False
