"""The ledger of one partition of a run, as growing numpy columns.

A record's id is its row. Columns grow by doubling, so appending a week's records costs in
proportion to those records and a column is always one contiguous array (no concatenation
per week). Each subject's records are chained (``head`` per agent, ``next`` per record), so
the records of a few subjects are found without scanning the ledger: the cost of finding
them grows with their number, not with the ledger's size.

``ended`` is kept per record as the kernel wants it: the first day a record whose ``ref``
names it was recorded (``NEVER`` when none is). ``false`` marks records of conduct that
never happened; it is known to the simulator only and never enters the exported ledger.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.engine.compiled import NEVER
from socialcredit.records import RECORDS_SCHEMA

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_COLUMNS: dict[str, tuple[type[np.generic], int]] = {
    # name: (dtype, value of a new row when not given)
    "subject": (np.int32, 0),  # agent row in the partition
    "type": (np.int16, 0),  # index in the run's type names
    "occurred": (np.int32, 0),
    "recorded": (np.int32, 0),
    "amount": (np.int64, 0),
    "ref": (np.int64, -1),  # id of the ended record, -1 for none
    "ended": (np.int32, int(NEVER)),
    "false": (np.bool_, 0),
    "next": (np.int32, -1),  # the subject's next record (chain), -1 at the end
}


class Ledger:
    """The records of one partition (see the module doc)."""

    def __init__(self, agents: int, capacity: int = 1024) -> None:
        self.size = 0
        self.head = np.full(agents, -1, dtype=np.int32)  # per agent: first record, -1 none
        # rows are written whole when added, so room need not be filled
        self._cols: dict[str, npt.NDArray[Any]] = {
            name: np.empty(capacity, dtype=dtype) for name, (dtype, _) in _COLUMNS.items()
        }

    def column(self, name: str) -> npt.NDArray[Any]:
        """A column's rows (a view: valid until the next :meth:`add`)."""
        return self._cols[name][: self.size]

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns and the chains."""
        return int(self.head.nbytes + sum(c.nbytes for c in self._cols.values()))

    def _reserve(self, n: int) -> None:
        need = self.size + n
        capacity = len(self._cols["subject"])
        if need <= capacity:
            return
        capacity = max(need, capacity * 2)
        for name, (dtype, _) in _COLUMNS.items():
            grown = np.empty(capacity, dtype=dtype)
            grown[: self.size] = self._cols[name][: self.size]
            self._cols[name] = grown

    def add(
        self,
        subject: I64,
        type_code: int,
        occurred: I64,
        recorded: I64,
        *,
        amount: I64 | None = None,
        ref: I64 | None = None,
        false: bool = False,
    ) -> I64:
        """Append records of one type; return their ids. A ``ref`` ends the record it names
        from this record's ``recorded_at`` on."""
        n = len(subject)
        ids = np.arange(self.size, self.size + n, dtype=np.int64)
        if n == 0:
            return ids
        self._reserve(n)
        at = slice(self.size, self.size + n)
        c = self._cols
        c["subject"][at] = subject
        c["type"][at] = type_code
        c["occurred"][at] = occurred
        c["recorded"][at] = recorded
        c["amount"][at] = amount if amount is not None else 0
        c["ref"][at] = ref if ref is not None else -1
        c["ended"][at] = _COLUMNS["ended"][1]
        if ref is not None:
            np.minimum.at(c["ended"], ref, recorded.astype(np.int32))
        c["false"][at] = false
        self._chain(subject.astype(np.int32), ids.astype(np.int32))
        self.size += n
        return ids

    def _chain(self, subject: I32, ids: I32) -> None:
        """Put new records at the front of their subjects' chains (several may share one)."""
        if len(subject) > 1 and not bool(np.all(subject[1:] >= subject[:-1])):
            order = np.argsort(subject, kind="stable")
            s, r = subject[order], ids[order]
        else:  # drawn in agent order, as most records are
            s, r = subject, ids
        last_of_run = np.ones(len(s), dtype=np.bool_)
        last_of_run[:-1] = s[1:] != s[:-1]
        nxt = np.empty(len(s), dtype=np.int32)
        nxt[:-1] = r[1:]
        nxt[last_of_run] = self.head[s[last_of_run]]
        self._cols["next"][r] = nxt
        first_of_run = np.ones(len(s), dtype=np.bool_)
        first_of_run[1:] = s[1:] != s[:-1]
        self.head[s[first_of_run]] = r[first_of_run]

    def records_of(self, agents: I64) -> tuple[I64, I64]:
        """The records of ``agents``: (record ids, position in ``agents`` of each record's
        subject). Work grows with the records found."""
        rows: list[I64] = []
        owners: list[I64] = []
        frontier = self.head[agents].astype(np.int64)
        owner = np.arange(len(agents), dtype=np.int64)
        live = frontier >= 0
        frontier, owner = frontier[live], owner[live]
        nxt = self._cols["next"]
        while len(frontier):
            rows.append(frontier)
            owners.append(owner)
            frontier = nxt[frontier].astype(np.int64)
            live = frontier >= 0
            frontier, owner = frontier[live], owner[live]
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(rows), np.concatenate(owners)

    def canonical(
        self,
        codes: pa.Array,
        type_names: list[str],
        end: int,
        id_prefix: str,
    ) -> tuple[pa.Table, Bools]:
        """The records recorded by day ``end``, in recording order, in the canonical schema
        with string ids (``id_prefix`` and the row, zero-padded) and subjects' codes
        (``codes`` per agent); and the false-record flags, row by row."""
        recorded_all = self.column("recorded")
        keep = np.flatnonzero(recorded_all <= end)
        keep = keep[np.lexsort((keep, recorded_all[keep]))]
        width = max(9, len(str(max(self.size - 1, 0))))
        ids = np.char.add(id_prefix, np.char.zfill(np.arange(self.size).astype(str), width))
        ref = self.column("ref")[keep]
        has_ref = ref >= 0
        table = pa.Table.from_arrays(
            [
                pa.array(ids[keep], pa.string()),
                codes.take(pa.array(self.column("subject")[keep])),
                pa.array(type_names, pa.string()).take(
                    pa.array(self.column("type")[keep].astype(np.int32))
                ),
                pa.array(self.column("occurred")[keep]).view(pa.date32()),
                pa.array(recorded_all[keep]).view(pa.date32()),
                pa.array(self.column("amount")[keep], pa.int64()),
                pa.array(ids[np.maximum(ref, 0)], pa.string(), mask=~has_ref),
            ],
            schema=RECORDS_SCHEMA,
        )
        flags: Bools = self.column("false")[keep]
        return table, flags
