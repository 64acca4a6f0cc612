"""What the ledger holds past a mark: the subjects and records of the entries after it.

The states cache (:mod:`socialcredit.service.states`) scores again only the subjects a
write touched, so after a write it needs only the entries past the mark it last read,
not the whole ledger. :class:`Delta` reads them on a connection of its own, in one read
transaction with the new mark, so that the entries it returns are exactly those of
``(mark, new mark]``.

The ledger's interface has no read "since a mark" yet; this reads the tables both stores
lay out alike (``subjects``, ``types``, ``records`` numbered in one sequence of entries,
``batches`` whose ``last_seq`` is the mark). Anything unexpected -- another layout, an
error -- answers None, and the cache reads the whole ledger instead, as it always could.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA
from socialcredit.store.service_db import ServiceDB

__all__ = ["Delta", "Entries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entries:
    """The subjects and records of the entries in ``(after, mark]``."""

    after: int
    mark: int
    subjects: pa.Table
    records: pa.Table


class Delta:
    """Reads the entries past a mark, on a connection of its own to ``target``."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._db: ServiceDB | None = None

    def since(self, after: int, *, most: int) -> Entries | None:
        """The entries after ``after`` up to the mark now, or None: more than ``most``
        records, or a ledger this cannot read (then read it whole)."""
        try:
            if self._db is None:
                self._db = ServiceDB.connect(self._target)
            return self._since(self._db, after, most)
        except Exception:  # another layout, a lost connection: the whole ledger instead
            log.warning("reading the ledger past mark %d failed", after, exc_info=True)
            if self._db is not None:
                self._db.close()
                self._db = None
            return None

    def _since(self, db: ServiceDB, after: int, most: int) -> Entries | None:
        days = "{0}" if db.dialect == "sqlite" else "({0} - DATE '1970-01-01')"
        with db.reading():
            row = db.one("SELECT coalesce(max(last_seq), 0) FROM batches")
            mark = int(row[0]) if row else 0
            if mark <= after:
                return Entries(
                    after, after, SUBJECTS_SCHEMA.empty_table(), RECORDS_SCHEMA.empty_table()
                )
            counted = db.one(
                "SELECT count(*) FROM records WHERE seq > ? AND seq <= ?", (after, mark)
            )
            if counted is None or int(counted[0]) > most:
                return None
            subjects = db.query(
                "SELECT code, kind FROM subjects WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after, mark),
            )
            records = db.query(
                "SELECT r.id, s.code, t.name, "
                f"{days.format('r.occurred_at')}, {days.format('r.recorded_at')}, "
                "r.amount, rr.id FROM records AS r JOIN subjects AS s ON s.seq = r.subject "
                "JOIN types AS t ON t.code = r.type LEFT JOIN records AS rr ON rr.seq = r.ref "
                "WHERE r.seq > ? AND r.seq <= ? ORDER BY r.seq",
                (after, mark),
            )
        return Entries(after, mark, _subjects(subjects), _records(records))

    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _subjects(rows: list[tuple[object, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [(), ()]
    return pa.table(
        {"code": pa.array(columns[0], pa.string()), "kind": pa.array(columns[1], pa.string())},
        schema=SUBJECTS_SCHEMA,
    )


def _records(rows: list[tuple[object, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(7)]
    return pa.Table.from_arrays(
        [
            pa.array(columns[0], pa.string()),
            pa.array(columns[1], pa.string()),
            pa.array(columns[2], pa.string()),
            pa.array(columns[3], pa.int32()).cast(pa.date32()),
            pa.array(columns[4], pa.int32()).cast(pa.date32()),
            pa.array(columns[5], pa.int64()),
            pa.array(columns[6], pa.string()),
        ],
        schema=RECORDS_SCHEMA,
    )
