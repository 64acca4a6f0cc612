"""PostgreSQL's binary COPY format, written and read column-wise with numpy.

A binary COPY stream is a signature, then one row after another -- a 16-bit field count,
then each field as a 32-bit length (-1 for NULL) and its bytes -- then a 16-bit -1. Values
are in network byte order: ``bigint`` 8 bytes, ``integer`` 4, ``date`` 4 (days since
2000-01-01), ``text`` and ``bytea`` their bytes.

Writing: :func:`encode` lays out every row of a batch at once with numpy (no Python object
per row or per value). Reading: the fixed-width columns of a query come back as one array
of records (:func:`fixed_rows`); the text and bytea columns of the same rows come back from
a second COPY, and :func:`varying_rows` cuts them out with the lengths the first one gave
(``octet_length``), so neither is parsed row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.errors import LedgerError

__all__ = [
    "PG_EPOCH_DAYS",
    "SIGNATURE",
    "TRAILER",
    "Column",
    "encode",
    "fixed",
    "fixed_rows",
    "strings",
    "varying",
    "varying_rows",
]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
"""The start of a binary COPY stream: signature, flags, length of the header extension."""

TRAILER = b"\xff\xff"
"""The end of a binary COPY stream."""

PG_EPOCH_DAYS = 10957
"""Days from 1970-01-01 (Arrow's dates) to 2000-01-01 (PostgreSQL's)."""

_Bytes = npt.NDArray[np.uint8]
_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Column:
    """One field of every row to write: ``sizes`` bytes each (``data`` laid end to end),
    or NULL where ``valid`` is false."""

    sizes: _Ints
    data: _Bytes
    valid: npt.NDArray[np.bool_] | None = None
    width: int = 0  # bytes of every value when fixed, else 0


def fixed(values: npt.ArrayLike, dtype: str, valid: npt.NDArray[np.bool_] | None = None) -> Column:
    """A fixed-width column: ``values`` as ``dtype`` (big-endian, e.g. ``>i8``; ``V32`` for
    32 raw bytes each); NULL where ``valid`` is false."""
    array = np.ascontiguousarray(np.asarray(values).astype(dtype, copy=False))
    width = array.dtype.itemsize
    n = len(array)
    sizes = np.full(n, width, dtype=np.int64)
    if valid is not None:
        sizes[~valid] = 0
        array = array[valid]
    return Column(sizes, array.view(np.uint8).reshape(-1), valid, width)


def varying(array: pa.Array | pa.ChunkedArray) -> Column:
    """A text or bytea column from an Arrow string or binary array (nulls are NULL)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_binary())
    n = len(array)
    validity, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset:array.offset + n + 1]
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.zeros(0, np.uint8))[offsets[0]:offsets[-1]]
    sizes = np.diff(offsets)
    valid = None
    if validity is not None and array.null_count:
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    return Column(sizes, data, valid)


def encode(columns: Sequence[Column], n: int) -> bytes:
    """The rows of these columns (``n`` each), in binary COPY format, without signature
    and trailer."""
    lengths = np.full(n, 2, dtype=np.int64)
    for column in columns:
        lengths += 4 + column.sizes
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]) if n else 0, dtype=np.uint8)
    position = ends - lengths
    _scatter(out, position, np.full(n, len(columns), dtype=">i2").view(np.uint8), 2)
    position = position + 2
    for column in columns:
        header = column.sizes.astype(">i4")
        if column.valid is not None:
            header[~column.valid] = -1
        _scatter(out, position, header.view(np.uint8), 4)
        position += 4
        rows = position if column.valid is None else position[column.valid]
        if column.width:
            _scatter(out, rows, column.data, column.width)
        elif len(column.data):
            sizes = column.sizes if column.valid is None else column.sizes[column.valid]
            starts = np.cumsum(sizes) - sizes
            out[np.repeat(rows - starts, sizes) + np.arange(len(column.data))] = column.data
        position += column.sizes
    return out.tobytes()


def _scatter(out: _Bytes, rows: _Ints, data: _Bytes, width: int) -> None:
    """Write ``width`` bytes of ``data`` at each of ``rows``."""
    if len(rows):
        out[rows[:, None] + np.arange(width)] = data.reshape(len(rows), width)


def _body(data: bytes) -> memoryview:
    """The rows of a binary COPY stream, without signature, header extension and trailer."""
    view = memoryview(data)
    if view[:11] != SIGNATURE[:11] or view[-2:] != TRAILER:
        raise LedgerError("unexpected data from PostgreSQL: not a binary COPY stream")
    extension = int.from_bytes(view[15:19], "big")
    return view[19 + extension:-2]


def fixed_rows(data: bytes, dtypes: Sequence[str]) -> list[npt.NDArray[np.int64]]:
    """The columns of a COPY of fixed-width, never-NULL fields (big-endian ``dtypes``),
    as int64 arrays."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, dtype in enumerate(dtypes):
        fields += [(f"size{i}", ">i4"), (f"value{i}", dtype)]
    layout = np.dtype(fields)
    body = _body(data)
    if len(body) % layout.itemsize:
        raise LedgerError("unexpected data from PostgreSQL: a value of a fixed-width column "
                          "is missing (NULL) or of another width")
    rows = np.frombuffer(body, dtype=layout)
    if not (rows["count"] == len(dtypes)).all() or any(
        not (rows[f"size{i}"] == np.dtype(dtype).itemsize).all()
        for i, dtype in enumerate(dtypes)
    ):
        raise LedgerError("unexpected data from PostgreSQL: a value of a fixed-width column "
                          "is missing (NULL) or of another width")
    return [np.asarray(rows[f"value{i}"], dtype=np.int64) for i in range(len(dtypes))]


def varying_rows(data: bytes, sizes: Sequence[_Ints]) -> list[tuple[_Ints, _Bytes]]:
    """The fields of a COPY of never-NULL text or bytea columns whose lengths are known:
    for each column, its offsets (n + 1) and its values laid end to end."""
    body = np.frombuffer(_body(data), dtype=np.uint8)
    n = len(sizes[0]) if sizes else 0
    lengths = np.full(n, 2, dtype=np.int64)
    for column in sizes:
        lengths += 4 + column
    ends = np.cumsum(lengths)
    if (ends[-1] if n else 0) != len(body):
        raise LedgerError("unexpected data from PostgreSQL: the rows changed while read")
    position = ends - lengths
    counts = body[position[:, None] + np.arange(2)].copy().view(">i2").reshape(-1)
    if not (counts == len(sizes)).all():
        raise LedgerError("unexpected data from PostgreSQL: the rows changed while read")
    position = position + 2
    out = []
    for column in sizes:
        header = body[position[:, None] + np.arange(4)].copy().view(">i4").reshape(-1)
        if not (header == column).all():
            raise LedgerError("unexpected data from PostgreSQL: the rows changed while read")
        position += 4
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(column, out=offsets[1:])
        values = body[np.repeat(position - offsets[:-1], column) + np.arange(offsets[-1])]
        out.append((offsets, values))
        position += column
    return out


def strings(offsets: _Ints, values: _Bytes) -> pa.Array:
    """An Arrow string array of values laid end to end; UTF-8 is checked."""
    n = len(offsets) - 1
    array = pa.Array.from_buffers(pa.large_string(), n, [
        None, pa.py_buffer(offsets), pa.py_buffer(values)])
    try:
        array.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise LedgerError(f"unexpected data from PostgreSQL: text that is not UTF-8 ({exc})"
                          ) from None
    out: pa.Array = array.cast(pa.string())
    return out
