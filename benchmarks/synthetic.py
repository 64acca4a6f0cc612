"""Large synthetic ledgers for benchmarks: Arrow columns sorted by subject.

Subjects are dictionary-encoded (int32 indices into the sorted codes), types are
dictionary-encoded too, ids and refs are int64: the compact in-memory form a production
pipeline would hold. One record in a hundred of the judgments is resolved by a later
record that refs it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from socialcredit.scheme.model import Scheme

START_DAY = 20089  # 2025-01-01


def ledger_columns(
    scheme: Scheme, n_records: int, n_subjects: int, *, seed: int = 1, days: int = 730
) -> tuple[pa.Table, pa.Table]:
    """Subjects (code, kind) and records for ``scheme``'s person types, sorted by subject."""
    rng = np.random.default_rng(seed)
    codes = pa.array(np.char.add("P", np.char.zfill(np.arange(n_subjects).astype(str), 9)))
    kinds = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n_subjects, dtype=np.int8)), pa.array(["person"])
    ).cast(pa.string())
    subjects = pa.table({"code": codes, "kind": kinds})

    types = list(scheme.records)
    subject = np.sort(rng.integers(0, n_subjects, size=n_records, dtype=np.int32))
    type_idx = rng.integers(0, len(types), size=n_records, dtype=np.int8)
    occurred = (START_DAY + rng.integers(0, days, size=n_records)).astype(np.int32)
    recorded = occurred + rng.integers(0, 5, size=n_records).astype(np.int32)
    amount = rng.integers(0, 500, size=n_records).astype(np.int64)
    ids = np.arange(n_records, dtype=np.int64)
    # refs: 1% of records resolve an earlier record of the same subject (the previous row)
    ref = np.full(n_records, -1, dtype=np.int64)
    pick = rng.random(n_records) < 0.01
    pick[0] = False
    same = np.zeros(n_records, dtype=bool)
    same[1:] = subject[1:] == subject[:-1]
    pick &= same
    ref[pick] = ids[np.flatnonzero(pick) - 1]
    ref_arr = pa.array(ref, mask=~pick)
    records = pa.table(
        {
            "id": pa.array(ids),
            "subject": pa.DictionaryArray.from_arrays(pa.array(subject), codes),
            "type": pa.DictionaryArray.from_arrays(pa.array(type_idx), pa.array(types)),
            "occurred_at": pa.array(occurred).cast(pa.date32()),
            "recorded_at": pa.array(recorded).cast(pa.date32()),
            "amount": pa.array(amount),
            "ref": ref_arr,
        }
    )
    return subjects, records
