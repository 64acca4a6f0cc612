"""Turn subjects and records (Arrow tables of the canonical schema) into kernel columns.

Preparation depends on the scheme but not on the date of evaluation, so a prepared ledger
can be evaluated at many dates (the simulator does). It:

- keeps the subjects the scheme scores, sorted by code in byte order (the output order);
- keeps the records of those subjects whose type some rule uses (other records cannot
  count), sorted by subject, so that partitions of subjects are ranges of records;
- gives each record its cell key base (``subject * (n_slots + 1)``), its type's first age
  band, the day it takes effect (``max(occurred_at, recorded_at + delay)``), the day a
  ``ref`` record ends it (``NEVER`` if none does), and the days it leaves each age band.

Records already sorted by subject with dictionary-encoded subjects whose dictionary is the
sorted codes (the form the ledger and the simulator produce) take the fast path: no hash
lookups and no gathers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.engine.compiled import NEVER, CompiledScheme

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_FLOAT_EXACT = 2**53
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Prepared:
    """Kernel columns for one scheme: subjects, and the records that can count."""

    compiled: CompiledScheme
    codes: pa.Array  # scored subject codes, sorted (string)
    kinds: pa.Array  # their kinds
    offsets: I64  # records of subject i are rows offsets[i]:offsets[i+1]
    cell: I64  # per record: subject * (n_slots + 1)
    pair_base: I32  # per record: slot_base of its type
    band_ends: tuple[I32, ...]  # per band cut k: first day the record is past cut k
    effective: I32  # first day the record may count
    ended: I32  # first day it no longer counts because a ref record ended it
    type_code: I32
    occurred: I32
    amount_rows: I64  # rows whose type an amount rule reads, ascending
    amount: F64  # their amounts (exact in float64: checked at preparation)
    amount_exact: I64 | None  # the amounts as integers, when float64 would not be exact
    row: I64  # per record: its row in the records table given to prepare
    records: pa.Table  # that table
    dropped: int  # records of subjects that are not scored (or unknown) or unused types

    @property
    def n_subjects(self) -> int:
        """How many subjects are scored."""
        return len(self.codes)

    @property
    def n_records(self) -> int:
        """How many records can count."""
        return len(self.cell)


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_date32(col.type):
        col = col.view(pa.int32())
    arr = col.to_numpy(zero_copy_only=False)
    return np.asarray(arr, dtype=dtype)


def _one(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _index_in(values: pa.ChunkedArray | pa.Array, keys: pa.Array) -> I32:
    """Index of each value in ``keys`` (-1 where absent); cheap for dictionary arrays."""
    values = _one(values)
    if pa.types.is_dictionary(values.type):
        dictionary = values.dictionary
        if dictionary.type != keys.type:
            dictionary = dictionary.cast(keys.type)
        if dictionary.equals(keys):
            lut = None
        else:
            lut = _numpy(pc.index_in(dictionary, value_set=keys).fill_null(-1), np.int32)
        idx = _numpy(values.indices.fill_null(0), np.int32)
        out = idx if lut is None else lut[idx]
        if values.null_count:
            out = out.copy()
            out[_numpy(values.is_null(), np.bool_)] = -1
        return out.astype(np.int32, copy=False)
    return _numpy(pc.index_in(values, value_set=keys).fill_null(-1), np.int32).astype(np.int32)


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


def ended_days(records: pa.Table, workers: int = 2) -> I32:
    """For each record, the first day a record whose ``ref`` names it was recorded."""
    n = records.num_rows
    ended = np.full(n, NEVER, dtype=np.int32)
    refs = _one(records.column("ref"))
    if refs.null_count == len(refs):
        return ended
    enders = np.flatnonzero(_numpy(refs.is_valid(), np.bool_))
    ref_values = refs.take(pa.array(enders))
    if pa.types.is_dictionary(ref_values.type):
        ref_values = ref_values.dictionary_decode()
    ids = _one(records.column("id"))
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if ref_values.type != ids.type:
        ref_values = ref_values.cast(ids.type)
    targets = pc.unique(ref_values)
    # the earliest recording of a ref to each target
    which = _numpy(pc.index_in(ref_values, value_set=targets), np.int64)
    first = np.full(len(targets), NEVER, dtype=np.int32)
    np.minimum.at(first, which, _numpy(records.column("recorded_at"), np.int32)[enders])

    def probe(lo: int) -> None:
        part = _numpy(pc.index_in(ids.slice(lo, _CHUNK), value_set=targets).fill_null(-1), np.int64)
        hit = part >= 0
        ended[lo : lo + len(part)][hit] = first[part[hit]]

    starts = range(0, n, _CHUNK)
    if workers > 1 and n > _CHUNK:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(probe, starts))
    else:
        for lo in starts:
            probe(lo)
    return ended


def prepare(compiled: CompiledScheme, subjects: pa.Table, records: pa.Table) -> Prepared:
    """Prepare kernel columns for ``compiled`` from canonical subjects and records tables."""
    codes, kinds = scored_subjects(compiled, subjects)
    subject = _index_in(records.column("subject"), codes)
    type_code = _index_in(records.column("type"), pa.array(compiled.types, pa.string()))
    used_type = np.zeros(len(compiled.types) + 1, dtype=np.bool_)
    for rule in compiled.scheme.rules:
        for t in rule.types:
            used_type[compiled.types.index(t)] = True
    keep = subject >= 0
    keep &= used_type[type_code]  # -1 (unknown) reads the last entry: False
    ended = ended_days(records)
    n = len(subject)
    kept = int(np.count_nonzero(keep))
    rows: I64 | None = None if kept == n else np.flatnonzero(keep)
    if rows is not None:
        subject = subject[rows]
    if len(subject) > 1 and np.any(subject[1:] < subject[:-1]):
        order = np.argsort(subject, kind="stable")
        rows = order if rows is None else rows[order]
        subject = subject[order]

    def take(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a[rows]

    type_code = take(type_code).astype(np.int32, copy=False)
    ended = take(ended)
    occurred = take(_numpy(records.column("occurred_at"), np.int32)).astype(np.int32)
    recorded = take(_numpy(records.column("recorded_at"), np.int32)).astype(np.int32)
    effective = np.maximum(occurred, recorded + compiled.delay[type_code])
    band_ends = tuple(
        _saturating_add(occurred, compiled.cuts[type_code, k])
        for k in range(compiled.cuts.shape[1])
    )
    cell = subject.astype(np.int64) * (compiled.n_slots + 1)
    amount_rows, amount, exact = _amounts(compiled, records, type_code, take)
    offsets = np.searchsorted(subject, np.arange(len(codes) + 1)).astype(np.int64)
    return Prepared(
        compiled=compiled,
        codes=codes,
        kinds=kinds,
        offsets=offsets,
        cell=cell,
        pair_base=compiled.slot_base[type_code],
        band_ends=band_ends,
        effective=effective.astype(np.int32, copy=False),
        ended=ended.astype(np.int32, copy=False),
        type_code=type_code,
        occurred=occurred,
        amount_rows=amount_rows,
        amount=amount,
        amount_exact=exact,
        row=np.arange(n, dtype=np.int64) if rows is None else rows.astype(np.int64),
        records=records,
        dropped=n - kept,
    )


def _amounts(
    compiled: CompiledScheme, records: pa.Table, type_code: I32, take: object
) -> tuple[I64, F64, I64 | None]:
    amount_types = np.zeros(len(compiled.types) + 1, dtype=np.bool_)
    for rule in compiled.scheme.rules:
        if rule.measure == "amount":
            for t in rule.types:
                amount_types[compiled.types.index(t)] = True
    rows = np.flatnonzero(amount_types[type_code]).astype(np.int64)
    if not len(rows):
        return rows, np.zeros(0, dtype=np.float64), None
    assert callable(take)
    values = np.asarray(take(_numpy(records.column("amount"), np.int64)), dtype=np.int64)[rows]
    top = int(values.max())
    if top * len(values) < _FLOAT_EXACT:
        return rows, values.astype(np.float64), None
    return rows, values.astype(np.float64), values


def _saturating_add(days: I32, cut: I32) -> I32:
    total = days.astype(np.int64) + cut
    out: I32 = np.minimum(total, NEVER).astype(np.int32)
    return out
