"""Subjects and records (Arrow tables of the canonical schema) as kernel columns.

Preparation depends on the scheme but not on the date of evaluation, so prepared columns
can be evaluated at many dates (the simulator does). It keeps the subjects the scheme
scores, sorted by code in byte order (the output order), and the records of those subjects
sorted by subject, so that a partition of subjects is a range of records. It computes, once,
the day each record is ended by a ``ref`` record (``NEVER`` if none is).

Records already sorted by subject, with a dictionary-encoded subject column whose
dictionary is the sorted codes (the compact form of the benchmarks and the simulator), are
used in place: no hash lookups, no copies. Other inputs (plain string codes, as the ledger
and the file readers give) are mapped to subject indices by one hash lookup and sorted.
Record types stay in their own dictionary order; small lookup tables indexed by it carry
each type's notice delay, band cuts and slot.
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

from socialcredit.engine.compiled import NEVER, CompiledScheme

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_FLOAT_EXACT = 2**53
_CHUNK = 1 << 22
_LOOKUP_CHUNK = 1 << 20


@dataclass(frozen=True)
class TypeTables:
    """Lookup tables indexed by a record's position in the records' type dictionary."""

    names: tuple[str, ...]  # the dictionary
    code: I32  # scheme type code (len(compiled.types) for unknown)
    delay: I32  # notice delay
    cuts: I32  # [K, D] band cuts (NEVER: none)
    amount: Bools  # an amount rule reads this type
    days_since: Bools  # a days_since rule reads this type
    slot_table: I64  # [(K + 1) * D + 1]: slot of (band b, type t) at b * D + t; last: dump


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
    recorded_after_occurred: bool  # no record has recorded_at before occurred_at
    amount_rows: I64  # rows of the records whose type an amount rule reads, ascending
    amount_float: npt.NDArray[np.float64]  # their amounts, as float64
    amount_exact: I64 | None  # their amounts as integers, when float64 would round a sum
    ended: I32 | None  # first day a ref record ends the record (None: no refs at all)
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
    wanted = pa.array(list(compiled.scheme.subjects), pa.string())
    mask = pc.is_in(kinds, value_set=wanted)
    chosen = subjects if pc.all(mask).as_py() is not False else subjects.filter(mask)
    codes = _one(chosen.column("code")).cast(pa.string())
    if len(codes) > 1 and pc.any(pc.less(codes[1:], codes[:-1])).as_py():
        order = pc.sort_indices(codes)
        codes = codes.take(order)
        chosen = chosen.take(order)
    if len(codes) > 1:
        same = pc.equal(codes[1:], codes[:-1])
        if pc.any(same).as_py():
            dup = codes[int(np.flatnonzero(_numpy(same, np.bool_))[0])].as_py()
            raise ValueError(f"subject code {dup!r} appears twice")
    return codes, _one(chosen.column("kind")).cast(pa.string())


def ended_days(records: pa.Table, workers: int = 2) -> I32 | None:
    """For each record, the first day a record whose ``ref`` names it was recorded.

    None when no record has a ``ref``. Integer ids in a compact range use a lookup table;
    other ids a hash table of the referenced ids, probed with every id.
    """
    refs = _one(records.column("ref"))
    if refs.null_count == len(refs):
        return None
    n = records.num_rows
    enders = np.flatnonzero(_numpy(refs.is_valid(), np.bool_))
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
        id_values = _numpy(ids, np.int64)
        bounds = pc.min_max(ids)
        low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
        if high - low < 4 * n + 1024:
            table = np.full(high - low + 1, NEVER, dtype=np.int32)
            target = _numpy(ref_values, np.int64)
            inside = (target >= low) & (target <= high)
            np.minimum.at(table, target[inside] - low, recorded[inside])
            out = np.empty(n, dtype=np.int32)

            def look_up(lo: int) -> None:
                part = id_values[lo : lo + _LOOKUP_CHUNK]
                np.take(table, part - low if low else part, out=out[lo : lo + len(part)])

            _chunked(look_up, n, _LOOKUP_CHUNK, workers)
            return out

    targets = pc.unique(ref_values)
    which = _numpy(pc.index_in(ref_values, value_set=targets), np.int64)
    first = np.full(len(targets), NEVER, dtype=np.int32)
    np.minimum.at(first, which, recorded)
    ended = np.full(n, NEVER, dtype=np.int32)

    def probe(lo: int) -> None:
        found = pc.index_in(ids.slice(lo, _CHUNK), value_set=targets).fill_null(-1)
        part = _numpy(found, np.int64)
        hit = part >= 0
        ended[lo : lo + len(part)][hit] = first[part[hit]]

    _chunked(probe, n, _CHUNK, workers)
    return ended


def _chunked(work: Callable[[int], None], n: int, chunk: int, workers: int) -> None:
    """Run ``work(start)`` for every chunk start of ``range(n)``, on threads when it pays."""
    starts = range(0, n, chunk)
    if workers > 1 and n > chunk:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, starts))
    else:
        for lo in starts:
            work(lo)


def type_tables(compiled: CompiledScheme, names: pa.Array) -> TypeTables:
    """Lookup tables for the record types of a records' type dictionary."""
    known = {t: i for i, t in enumerate(compiled.types)}
    labels = tuple(str(x) for x in names.to_pylist())
    code = np.array([known.get(x, len(compiled.types)) for x in labels], dtype=np.int32)
    amount_types = {t for r in compiled.scheme.rules if r.measure == "amount" for t in r.types}
    days_types = {t for r in compiled.scheme.rules if r.measure == "days_since" for t in r.types}
    pair_base = compiled.slot_base[code]
    bands = compiled.cuts.shape[1] + 1
    d = len(labels)
    slot_table = np.full(bands * d + 1, compiled.n_slots, dtype=np.int64)
    n_pairs = len(compiled.slot_map)
    for b in range(bands):
        pairs = pair_base.astype(np.int64) + b
        ok = pairs < n_pairs
        slot_table[b * d : (b + 1) * d][ok] = compiled.slot_map[pairs[ok]]
    return TypeTables(
        names=labels,
        code=code,
        delay=compiled.delay[code],
        cuts=np.ascontiguousarray(compiled.cuts[code].T),
        amount=np.array([x in amount_types for x in labels], dtype=np.bool_),
        days_since=np.array([x in days_types for x in labels], dtype=np.bool_),
        slot_table=slot_table,
    )


T = TypeVar("T")


def _over_chunks(fn: Callable[[int, int], T], n: int, chunk: int = _CHUNK) -> list[T]:
    """``fn(lo, hi)`` over the chunks of ``range(n)``, in order, on two threads when large."""
    bounds = [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    if len(bounds) <= 1:
        return [fn(lo, hi) for lo, hi in bounds]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda b: fn(*b), bounds))


def _ascending(values: I32) -> bool:
    """Whether ``values`` never decrease (checked chunk by chunk, without a full temporary)."""
    n = len(values)
    if n < 2:
        return True
    return not any(_over_chunks(
        lambda lo, hi: bool(np.any(values[max(lo, 1) : hi] < values[max(lo, 1) - 1 : hi - 1])),
        n,
    ))


def _rows_of_types(type_index: npt.NDArray[Any], wanted: npt.NDArray[np.intp]) -> I64:
    """The rows whose type (dictionary index) is one of ``wanted``, ascending."""
    if not len(wanted) or not len(type_index):
        return np.zeros(0, dtype=np.int64)

    def part(lo: int, hi: int) -> I64:
        chunk = type_index[lo:hi]
        hit = chunk == wanted[0]
        for k in wanted[1:]:
            hit |= chunk == k
        found: I64 = np.flatnonzero(hit).astype(np.int64) + lo
        return found

    return np.concatenate(_over_chunks(part, len(type_index)))


def prepare(compiled: CompiledScheme, subjects: pa.Table, records: pa.Table) -> Prepared:
    """Prepare kernel columns for ``compiled`` from canonical subjects and records tables."""
    codes, kinds = scored_subjects(compiled, subjects)
    subject = _subject_index(records.column("subject"), codes)
    type_index, type_names = _dictionary(records.column("type"))
    ended = ended_days(records)
    n = len(subject)
    rows: I64 | None = None
    if n and min(_over_chunks(lambda lo, hi: int(subject[lo:hi].min()), n)) < 0:
        rows = np.flatnonzero(subject >= 0).astype(np.int64)
        subject = subject[rows]
    dropped = n - len(subject)
    if not _ascending(subject):
        order = np.argsort(subject, kind="stable")
        rows = order.astype(np.int64) if rows is None else rows[order]
        subject = subject[order]

    def take(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a[rows]

    type_index = take(type_index)
    occurred = take(_numpy(records.column("occurred_at"), np.int32))
    recorded = take(_numpy(records.column("recorded_at"), np.int32))
    tables = type_tables(compiled, type_names)
    amount_rows = _rows_of_types(type_index, np.flatnonzero(tables.amount))
    source = amount_rows if rows is None else rows[amount_rows]
    amounts = _numpy(records.column("amount"), np.int64)[source]
    exact = int(amounts.max()) * len(amounts) < _FLOAT_EXACT if len(amounts) else True
    in_order = all(_over_chunks(
        lambda lo, hi: bool(np.all(recorded[lo:hi] >= occurred[lo:hi])), len(recorded)))
    return Prepared(
        compiled=compiled,
        codes=codes,
        kinds=kinds,
        subject=subject,
        type_index=type_index,
        tables=tables,
        occurred=occurred,
        recorded=recorded,
        recorded_after_occurred=in_order,
        amount_rows=amount_rows,
        amount_float=amounts.astype(np.float64),
        amount_exact=None if exact else amounts,
        ended=None if ended is None else take(ended),
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
    amount_rows = _rows_of_types(type_index, np.flatnonzero(tables.amount))
    amounts = amount[amount_rows]
    exact = int(amounts.max()) * len(amounts) < _FLOAT_EXACT if len(amounts) else True
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
        recorded_after_occurred=bool(np.all(recorded >= occurred)),
        amount_rows=amount_rows,
        amount_float=amounts.astype(np.float64),
        amount_exact=None if exact else amounts,
        ended=ended,
        row=None,
        records=pa.table({}),
        dropped=0,
    )
