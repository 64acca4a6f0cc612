"""Turn subjects and records (Arrow tables of the canonical schema) into kernel columns.

Preparation depends on the scheme but not on the date of evaluation, so a prepared ledger
can be evaluated at many dates (the simulator does). It:

- keeps the subjects the scheme scores, sorted by code in byte order (the output order);
- gives each record its subject's index, its type code, the day it takes effect
  (``max(occurred_at, recorded_at + delay)``), the day it is ended by a ``ref`` record
  (``NEVER`` if it is not), and the days on which it leaves each age band;
- sorts records by subject, so that partitions of subjects are ranges of records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.engine.compiled import NEVER, CompiledScheme

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prepared:
    """Kernel columns for one scheme: subjects, and records sorted by subject."""

    compiled: CompiledScheme
    codes: pa.Array  # scored subject codes, sorted (string)
    kinds: pa.Array  # their kinds
    offsets: I64  # records of subject i are rows offsets[i]:offsets[i+1]
    subject: I32  # per record: subject index
    type_code: I32
    occurred: I32
    effective: I32  # first day the record may count
    ended: I32  # first day it no longer counts because a ref record ended it
    band_ends: tuple[I32, ...]  # per band cut k: first day the record is past cut k
    pair_base: I32  # per record: slot_base of its type
    amount: I64
    row: I64  # per record: its row in the records table given to prepare
    ids: pa.ChunkedArray  # the ``id`` column of that table
    dropped: int  # records of subjects that are not scored (or unknown)

    @property
    def n_subjects(self) -> int:
        """How many subjects are scored."""
        return len(self.codes)

    @property
    def n_records(self) -> int:
        """How many records belong to scored subjects."""
        return len(self.subject)


def _as_days(col: pa.ChunkedArray | pa.Array) -> I32:
    if pa.types.is_date32(col.type):
        return np.asarray(col.cast(pa.int32()).to_numpy(zero_copy_only=False), dtype=np.int32)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int32)


def _dict_index(values: pa.ChunkedArray | pa.Array, keys: pa.Array) -> I32:
    """Index of each value in ``keys`` (-1 where absent); cheap for dictionary arrays."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        dict_idx = pc.index_in(values.dictionary, value_set=keys).fill_null(-1)
        lut = np.asarray(dict_idx.to_numpy(zero_copy_only=False), dtype=np.int32)
        idx = values.indices.fill_null(0).to_numpy(zero_copy_only=False)
        out = lut[idx]
        if values.null_count:
            out[np.asarray(values.is_null().to_numpy(zero_copy_only=False))] = -1
        return out
    found = pc.index_in(values, value_set=keys).fill_null(-1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32)


def scored_subjects(compiled: CompiledScheme, subjects: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The codes and kinds of the subjects the scheme scores, sorted by code."""
    kinds = subjects.column("kind")
    mask = pc.is_in(kinds, value_set=pa.array(list(compiled.scheme.subjects), pa.string()))
    chosen = subjects.filter(mask)
    order = pc.sort_indices(chosen.column("code"))
    chosen = chosen.take(order)
    codes = chosen.column("code").combine_chunks()
    if len(codes) > 1:
        same = pc.equal(codes[1:], codes[:-1])
        if pc.any(same).as_py():
            dup = codes[int(np.flatnonzero(same.to_numpy(zero_copy_only=False))[0])].as_py()
            raise ValueError(f"subject code {dup!r} appears twice")
    return codes, chosen.column("kind").combine_chunks()


def ended_days(records: pa.Table) -> I32:
    """For each record, the first day a record whose ``ref`` names it was recorded."""
    n = records.num_rows
    ended = np.full(n, NEVER, dtype=np.int32)
    refs = records.column("ref")
    if refs.null_count == len(refs):
        return ended
    enders = np.flatnonzero(np.asarray(refs.is_valid().to_numpy(zero_copy_only=False)))
    ref_values = refs.take(pa.array(enders))
    target = _dict_index(ref_values, records.column("id").combine_chunks())
    rec = _as_days(records.column("recorded_at"))[enders]
    ok = target >= 0
    np.minimum.at(ended, target[ok], rec[ok])
    return ended


def prepare(compiled: CompiledScheme, subjects: pa.Table, records: pa.Table) -> Prepared:
    """Prepare kernel columns for ``compiled`` from canonical subjects and records tables."""
    codes, kinds = scored_subjects(compiled, subjects)
    subject = _dict_index(records.column("subject"), codes)
    ended = ended_days(records)
    keep = subject >= 0
    dropped = int(len(subject) - np.count_nonzero(keep))
    rows = np.flatnonzero(keep) if dropped else np.arange(len(subject), dtype=np.int64)
    subject = subject[rows] if dropped else subject
    if len(subject) > 1 and np.any(subject[1:] < subject[:-1]):
        order = np.argsort(subject, kind="stable")
        rows = rows[order]
        subject = subject[order]
    ended = ended[rows]

    type_code = _dict_index(records.column("type"), pa.array(compiled.types, pa.string()))
    type_code = np.where(type_code < 0, len(compiled.types), type_code).astype(np.int32)[rows]
    occurred = _as_days(records.column("occurred_at"))[rows]
    recorded = _as_days(records.column("recorded_at"))[rows]
    effective = np.maximum(occurred, recorded + compiled.delay[type_code])
    amount = np.asarray(records.column("amount").to_numpy(zero_copy_only=False), dtype=np.int64)[
        rows
    ]
    band_ends = tuple(
        _saturating_add(occurred, compiled.cuts[type_code, k])
        for k in range(compiled.cuts.shape[1])
    )
    offsets = np.searchsorted(subject, np.arange(len(codes) + 1)).astype(np.int64)
    return Prepared(
        compiled=compiled,
        codes=codes,
        kinds=kinds,
        offsets=offsets,
        subject=subject,
        type_code=type_code,
        occurred=occurred,
        effective=effective.astype(np.int32),
        ended=ended,
        band_ends=band_ends,
        pair_base=compiled.slot_base[type_code],
        amount=amount,
        row=rows.astype(np.int64),
        ids=records.column("id"),
        dropped=dropped,
    )


def _saturating_add(days: I32, cut: I32) -> I32:
    total = days.astype(np.int64) + cut
    return np.minimum(total, NEVER).astype(np.int32)
