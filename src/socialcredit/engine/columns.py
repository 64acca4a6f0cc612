"""Subjects and records (Arrow tables of the canonical schema) as kernel columns.

Preparation depends on the scheme but not on the date of evaluation, so prepared columns
can be evaluated at many dates (the simulator and the service do). It keeps the subjects the
scheme scores, sorted by code in byte order (the output order), and the records of those
subjects sorted by subject, so that a partition of subjects is a range of records.

A record's place at a date ``at`` is decided by comparing its dates with per-type day
thresholds for ``at`` (:func:`~socialcredit.engine.kernel.cell_rows`): it counts when it
occurred by ``at``, was recorded by ``at`` less its type's notice delay, is younger than
the last window of the rules that read its type, and no ``ref`` record ended it; its cell
row is then its type's first row plus the band cuts its age has passed. Nothing per record
is stored for this: deriving it in the cache, partition by partition, costs less than the
memory traffic of storing it.

Records already sorted by subject, with a dictionary-encoded subject column whose
dictionary is the sorted codes (the compact form of the benchmarks and the simulator), are
used in place: no hash lookups, no copies. Other inputs (plain string codes, as the ledger
and the file readers give) are mapped to subject indices by one hash lookup and sorted.
Record types stay in their own dictionary order; small lookup tables indexed by it carry
each type's notice delay, band cuts and rows.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.engine import forked
from socialcredit.engine.compiled import NEVER, CompiledScheme

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_CHUNK = 1 << 22  # rows per chunk of the passes that gather or search
_SCAN = 1 << 18  # rows per chunk of the passes that stay in the cache
_WORKERS = 2


@dataclass(frozen=True)
class TypeTables:
    """Lookup tables indexed by a record's position in the records' type dictionary.

    A record's *cell row* is its slot plus one, or 0 (the dump) when it counts for no rule.
    The live bands of a type (those some rule reads) come first, since a band further out
    counts for a subset of the rules of the band before it, and their slots are
    consecutive: a record's row is its first band's row plus the band cuts its age has
    passed, until it passes ``stop_cut`` and counts for nothing.
    """

    names: tuple[str, ...]  # the dictionary
    code: I32  # scheme type code (len(compiled.types) for unknown)
    delay: I32  # notice delay
    floor: I32  # the earliest day a notice period starts (the scheme's in-force day)
    cuts: I32  # [K, D] band cuts (NEVER: none)
    amount: Bools  # an amount rule reads this type
    days_since: Bools  # a days_since rule reads this type
    first_row: npt.NDArray[Any]  # cell row of the first band (0: no rule reads the type)
    stop_cut: I32  # age at which a record leaves its last live band (NEVER: never)
    mid_cuts: I32  # [K', D] ages at which a record moves one live band further (NEVER: none)


def row_dtype(n_slots: int) -> type[np.signedinteger[Any]]:
    """The smallest integer type that holds every cell row (``0:n_slots + 1``)."""
    if n_slots < np.iinfo(np.int8).max:
        return np.int8
    if n_slots < np.iinfo(np.int16).max:
        return np.int16
    return np.int32


@dataclass(frozen=True)
class Prepared:
    """Kernel columns for one scheme: subjects, and their records sorted by subject."""

    compiled: CompiledScheme
    codes: pa.Array  # scored subject codes, sorted (string)
    kinds: pa.Array  # their kinds
    subject: I32  # per record: subject index, ascending
    type_index: npt.NDArray[Any]  # per record: position in tables.names (any int dtype)
    tables: TypeTables
    occurred: I32
    recorded: I32
    amount: I64  # per record: its amount
    ended_rows: I64  # rows of the records some ref record ends, ascending (may repeat) ...
    ended_on: I32  # ... and the day that ref record was recorded
    row: I64 | None  # per record: its row in the records table (None: the same row)
    records: pa.Table  # the records table given to prepare
    dropped: int  # records of subjects that are not scored, or unknown

    @property
    def n_subjects(self) -> int:
        """How many subjects are scored."""
        return len(self.codes)

    @property
    def n_records(self) -> int:
        """How many records belong to scored subjects."""
        return len(self.subject)

    def record_range(self, first: int, last: int) -> tuple[int, int]:
        """The rows of the records of subjects ``first:last``.

        The whole range of subjects is every row, sorted or not (see
        :func:`prepare_arrays`); other ranges need the records sorted by subject.
        """
        if first <= 0 and last >= self.n_subjects:
            return 0, self.n_records
        bounds = np.array((first, last), dtype=self.subject.dtype)
        lo, hi = self.subject.searchsorted(bounds)
        return int(lo), int(hi)

    def source_rows(self, lo: int, hi: int) -> I64:
        """Rows of the records table for kernel rows ``lo:hi``."""
        if self.row is None:
            return np.arange(lo, hi, dtype=np.int64)
        return self.row[lo:hi]

    def ended(self) -> I32:
        """For every record, the first day a ref record ends it (``NEVER``: none does)."""
        out = np.full(self.n_records, NEVER, dtype=np.int32)
        np.minimum.at(out, self.ended_rows, self.ended_on)
        return out

    def ended_day(self, row: int) -> int:
        """The first day a ref record ends the record in kernel row ``row`` (or ``NEVER``)."""
        a, b = np.searchsorted(self.ended_rows, (row, row + 1))
        return int(self.ended_on[a:b].min()) if b > a else int(NEVER)


def _one(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    col = _one(col)
    if pa.types.is_date32(col.type):
        col = col.view(pa.int32())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


def _dictionary(values: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[Any], pa.Array]:
    """Dictionary indices and dictionary of a column (encoding it when it is plain)."""
    values = _one(values)
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values)
    indices = values.indices
    if indices.null_count:
        raise ValueError("a required column has empty values")
    return np.asarray(indices.to_numpy(zero_copy_only=False)), values.dictionary


def _subject_index(values: pa.ChunkedArray | pa.Array, codes: pa.Array) -> I32:
    """Index of each record's subject in ``codes`` (-1 where not scored)."""
    values = _one(values)
    if pa.types.is_dictionary(values.type):
        dictionary = values.dictionary
        if dictionary.type != codes.type:
            dictionary = dictionary.cast(codes.type)
        idx = values.indices
        if dictionary.equals(codes) and idx.null_count == 0:
            return np.asarray(idx.to_numpy(zero_copy_only=False)).astype(np.int32, copy=False)
        lut = _numpy(pc.index_in(dictionary, value_set=codes).fill_null(-1), np.int32)
        mapped: I32 = lut[np.asarray(idx.fill_null(0).to_numpy(zero_copy_only=False))]
        return mapped
    return _numpy(pc.index_in(values, value_set=codes).fill_null(-1), np.int32)


def scored_subjects(compiled: CompiledScheme, subjects: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The codes and kinds of the subjects the scheme scores, sorted by code."""
    kinds = subjects.column("kind")
    mask = pc.equal(kinds, compiled.scheme.subjects[0])
    for kind in compiled.scheme.subjects[1:]:
        mask = pc.or_(mask, pc.equal(kinds, kind))
    chosen = subjects if pc.all(mask).as_py() is not False else subjects.filter(mask)
    codes = _one(chosen.column("code")).cast(pa.string())
    # one pass when the codes come sorted and distinct (the usual case)
    if len(codes) > 1 and pc.any(pc.less_equal(codes[1:], codes[:-1])).as_py():
        order = pc.sort_indices(codes)
        codes = codes.take(order)
        chosen = chosen.take(order)
        same = pc.equal(codes[1:], codes[:-1])
        if pc.any(same).as_py():
            dup = codes[int(np.flatnonzero(_numpy(same, np.bool_))[0])].as_py()
            raise ValueError(f"subject code {dup!r} appears twice")
    return codes, _one(chosen.column("kind")).cast(pa.string())


T = TypeVar("T")


def _over_chunks(
    fn: Callable[[int, int], T],
    n: int,
    chunk: int = _CHUNK,
    workers: int = _WORKERS,
    processes: bool = False,
) -> list[T]:
    """``fn(lo, hi)`` over the chunks of ``range(n)``, in order: on forked processes with
    ``processes`` (what ``fn`` writes must then be in shared memory, see
    :mod:`~socialcredit.engine.forked`), else on threads, when there are several."""
    bounds = [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    if len(bounds) <= 1 or workers <= 1:
        return [fn(lo, hi) for lo, hi in bounds]
    if processes and n >= forked.MIN_RECORDS and forked.available():
        return forked.map_forked(lambda b: fn(*b), bounds, workers)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda b: fn(*b), bounds))


def _scan(values: I32, processes: bool = False) -> tuple[int, bool]:
    """The least value and whether the values never decrease, in one pass of cached chunks."""
    n = len(values)
    if n == 0:
        return 0, True

    def part(lo: int, hi: int) -> tuple[int, bool]:
        a = max(lo, 1)
        return int(values[lo:hi].min()), not bool(np.any(values[a:hi] < values[a - 1 : hi - 1]))

    found = _over_chunks(part, n, _SCAN, processes=processes)
    return min(low for low, _ in found), all(up for _, up in found)


def valid_rows(values: pa.Array) -> I64:
    """Positions of the non-null entries of ``values``, ascending, read off its bitmap."""
    n = len(values)
    if values.null_count == 0:
        return np.arange(n, dtype=np.int64)
    if values.null_count == n:
        return np.zeros(0, dtype=np.int64)
    bitmap = values.buffers()[0]
    offset = values.offset
    lo, hi = offset // 8, (offset + n + 7) // 8
    packed = np.frombuffer(bitmap, dtype=np.uint8)[lo:hi]
    busy = np.flatnonzero(packed)
    byte, bit = np.nonzero(np.unpackbits(packed[busy], bitorder="little").reshape(-1, 8))
    pos = (busy[byte].astype(np.int64) + lo) * 8 + bit - offset
    out: I64 = pos[(pos >= 0) & (pos < n)]
    return out


def _int_values(values: pa.Array) -> I64:
    """An integer array without nulls as int64 (zero-copy when it is int64)."""
    if values.type == pa.int64() and values.null_count == 0:
        return np.frombuffer(values.buffers()[1], dtype=np.int64)[
            values.offset : values.offset + len(values)
        ]
    return _numpy(values, np.int64)


def ended_sparse(records: pa.Table) -> tuple[I64, I32]:
    """The rows of the records some ``ref`` record names, with the day that record was
    recorded (a row named by several refs appears once for each).

    Ids are unique (SCHEME.md section 1). Integer ids numbered by row (``id = first +
    row``, as the benchmarks and the simulator number them) are resolved by arithmetic,
    checked on the referenced rows alone; other integer ids in a compact range through a
    lookup table; any other ids through a hash table of the referenced ids, probed with
    every id.
    """
    none = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    refs = _one(records.column("ref"))
    n = records.num_rows
    if refs.null_count == len(refs):
        return none
    enders = valid_rows(refs)
    ref_values = refs.take(pa.array(enders))
    if pa.types.is_dictionary(ref_values.type):
        ref_values = ref_values.dictionary_decode()
    ids = _one(records.column("id"))
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if ref_values.type != ids.type:
        ref_values = ref_values.cast(ids.type)
    recorded = _numpy(records.column("recorded_at"), np.int32)[enders]

    if pa.types.is_integer(ids.type) and ids.null_count == 0 and n:
        id_values = _int_values(ids)
        target = _numpy(ref_values, np.int64)
        rows = target - id_values[0]
        if bool(((rows >= 0) & (rows < n)).all()) and np.array_equal(id_values[rows], target):
            return rows, recorded  # every referenced id is where its number says (ids unique)
        bounds = pc.min_max(ids)
        low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
        if high - low < 4 * n + 1024:
            table = np.full(high - low + 1, NEVER, dtype=np.int32)
            inside = (target >= low) & (target <= high)
            np.minimum.at(table, target[inside] - low, recorded[inside])

            def look_up(lo: int, hi: int) -> tuple[I64, I32]:
                days = table[id_values[lo:hi] - low]
                hit = np.flatnonzero(days != NEVER)
                return hit.astype(np.int64) + lo, days[hit]

            return _joined(_over_chunks(look_up, n))

    targets = pc.unique(ref_values)
    which = _numpy(pc.index_in(ref_values, value_set=targets), np.int64)
    first = np.full(len(targets), NEVER, dtype=np.int32)
    np.minimum.at(first, which, recorded)

    def probe(lo: int, hi: int) -> tuple[I64, I32]:
        found = _numpy(
            pc.index_in(ids.slice(lo, hi - lo), value_set=targets).fill_null(-1), np.int64
        )
        hit = np.flatnonzero(found >= 0)
        return hit.astype(np.int64) + lo, first[found[hit]]

    return _joined(_over_chunks(probe, n))


def _joined(parts: list[tuple[I64, I32]]) -> tuple[I64, I32]:
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def type_tables(compiled: CompiledScheme, names: pa.Array) -> TypeTables:
    """Lookup tables for the record types of a records' type dictionary."""
    known = {t: i for i, t in enumerate(compiled.types)}
    labels = tuple(str(x) for x in names.to_pylist())
    code = np.array([known.get(x, len(compiled.types)) for x in labels], dtype=np.int32)
    amount_types = {t for r in compiled.scheme.rules if r.measure == "amount" for t in r.types}
    days_types = {t for r in compiled.scheme.rules if r.measure == "days_since" for t in r.types}

    # per scheme type code (the last: unknown types), the rows of its live bands
    n_codes = len(compiled.types) + 1
    first = np.zeros(n_codes, dtype=row_dtype(compiled.n_slots))
    stop = np.full(n_codes, NEVER, dtype=np.int32)
    mids: list[list[int]] = [[] for _ in range(n_codes)]
    for c in range(len(compiled.types)):
        lo, hi = int(compiled.slot_base[c]), int(compiled.slot_base[c + 1])
        slots = compiled.slot_map[lo:hi].tolist()
        live = next((b for b, s in enumerate(slots) if s == compiled.n_slots), len(slots))
        if slots[live:] != [compiled.n_slots] * (len(slots) - live) or slots[:live] != list(
            range(slots[0], slots[0] + live)
        ):
            raise AssertionError(f"type {compiled.types[c]!r}: live bands are not consecutive")
        if live:
            first[c] = slots[0] + 1
            if live < len(slots):
                stop[c] = compiled.cuts[c, live - 1]
            mids[c] = compiled.cuts[c, : live - 1].tolist()
    mid_cuts = np.full((max(len(m) for m in mids), n_codes), NEVER, dtype=np.int32)
    for c, m in enumerate(mids):
        mid_cuts[: len(m), c] = m
    return TypeTables(
        names=labels,
        code=code,
        delay=compiled.delay[code],
        floor=compiled.floor[code],
        cuts=np.ascontiguousarray(compiled.cuts[code].T),
        amount=np.array([x in amount_types for x in labels], dtype=np.bool_),
        days_since=np.array([x in days_types for x in labels], dtype=np.bool_),
        first_row=first[code],
        stop_cut=stop[code],
        mid_cuts=np.ascontiguousarray(mid_cuts[:, code]),
    )


def _sorted_by_row(rows: I64, days: I32) -> tuple[I64, I32]:
    if len(rows) > 1 and bool(np.any(rows[1:] < rows[:-1])):
        order = np.argsort(rows, kind="stable")
        return rows[order], days[order]
    return rows, days


def prepare(
    compiled: CompiledScheme, subjects: pa.Table, records: pa.Table, *, processes: bool = False
) -> Prepared:
    """Prepare kernel columns for ``compiled`` from canonical subjects and records tables
    (the scan of the subject column on forked processes with ``processes``)."""
    codes, kinds = scored_subjects(compiled, subjects)
    subject = _subject_index(records.column("subject"), codes)
    type_index, type_names = _dictionary(records.column("type"))
    n = len(subject)
    rows: I64 | None = None
    low, ascending = _scan(subject, processes)
    if low < 0:
        rows = np.flatnonzero(subject >= 0).astype(np.int64)
        subject = subject[rows]
        ascending = _scan(subject, processes)[1]
    dropped = n - len(subject)
    if not ascending:
        order = np.argsort(subject, kind="stable")
        rows = order.astype(np.int64) if rows is None else rows[order]
        subject = subject[order]

    def take(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a[rows]

    ended_rows, ended_on = ended_sparse(records)
    if rows is not None and len(ended_rows):  # table rows to kernel rows
        kernel_row = np.full(n, -1, dtype=np.int64)
        kernel_row[rows] = np.arange(len(rows), dtype=np.int64)
        ended_rows = kernel_row[ended_rows]
        kept = ended_rows >= 0
        ended_rows, ended_on = ended_rows[kept], ended_on[kept]
    ended_rows, ended_on = _sorted_by_row(ended_rows, ended_on)
    return Prepared(
        compiled=compiled,
        codes=codes,
        kinds=kinds,
        subject=subject,
        type_index=take(type_index),
        tables=type_tables(compiled, type_names),
        occurred=take(_numpy(records.column("occurred_at"), np.int32)),
        recorded=take(_numpy(records.column("recorded_at"), np.int32)),
        amount=take(_numpy(records.column("amount"), np.int64)),
        ended_rows=ended_rows,
        ended_on=ended_on,
        row=rows,
        records=records,
        dropped=dropped,
    )


def prepare_arrays(
    compiled: CompiledScheme,
    tables: TypeTables,
    n_subjects: int,
    subject: I32,
    type_index: npt.NDArray[Any],
    occurred: I32,
    recorded: I32,
    amount: I64,
    ended: I32 | None,
) -> Prepared:
    """Kernel columns from arrays already in kernel form, for evaluation only.

    ``subject`` holds indices in ``0:n_subjects`` (every record belongs to a scored
    subject), ``type_index`` positions in ``tables.names``, ``ended`` the first day a
    ``ref`` record ends each record. The records need not be sorted by subject: the
    prepared columns are evaluated as one partition (all subjects at once), which is how
    the lab re-evaluates the few subjects whose records changed. There are no codes (the
    caller knows its subjects) and no records table, so explanations need :func:`prepare`.
    """
    if ended is None:
        ended_rows, ended_on = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    else:
        ended_rows = np.flatnonzero(ended != NEVER).astype(np.int64)
        ended_on = ended[ended_rows]
    nulls = pa.nulls(n_subjects, pa.string())
    return Prepared(
        compiled=compiled,
        codes=nulls,
        kinds=nulls,
        subject=subject,
        type_index=type_index,
        tables=tables,
        occurred=occurred,
        recorded=recorded,
        amount=amount,
        ended_rows=ended_rows,
        ended_on=ended_on,
        row=None,
        records=pa.table({}),
        dropped=0,
    )
