"""Agencies send records: checked against the agency's scope, idempotent by record id,
acknowledged only once durable in the ledger.

:func:`ingest` takes a batch (subjects to register, and records), and:

1. refuses the whole batch (:class:`Forbidden`) when any record's type is outside the
   agency's scope, and (:class:`TooLarge`) when it has more records than ``max_batch``;
2. looks the record ids up in the ledger: a record already there with the same content is
   a repeat, acknowledged again and not written twice; a different record under the same
   id, or a record another agency sent, is a :class:`Conflict`, and nothing is written.
   Who sent a record is the ledger's own account: the source of the write that appended
   it, in its log of batches (``agency:`` and the agency's name);
3. refuses the batch (:class:`Forbidden`) when a ``ref`` names a record the agency did not
   send (a ref ends the record it names);
4. registers the subjects and appends the new records, with ``recorded_at`` set to today
   by the service (an agency cannot back-date a record past its notice period), in one
   durable transaction; the ledger's own checks refuse the whole batch on any problem, and
   then no subject is registered either (what 2 found is handed to the append: the ledger
   looks the ids up again only when another entry was appended since). In that
   transaction first, the batch is refused (:class:`Outdated`) when the schemes this
   server runs are no longer those in force on its database
   (:func:`~socialcredit.service.activation.outdated`): the notices it would write are
   not those the other servers follow;
5. writes the notices of its adverse records, in one transaction of the service tables,
   committed once the ledger's is (the notices' texts are made while the ledger appends,
   and on PostgreSQL, another connection, their rows are written meanwhile too). A crash
   between the two commits is repaired by sending the batch again: 2 finds the records,
   and 5 writes the notices missing;
6. hands the new notices to the sink (the notices table is the outbox: a failed delivery
   leaves them pending).

Only then is the batch acknowledged.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import to_day
from socialcredit.ids import normal_code
from socialcredit.records import RECORD_FIELDS, RECORDS_SCHEMA
from socialcredit.service.activation import guard, refuse_outdated
from socialcredit.service.appeals import VOID_PREFIX
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import Conflict, Forbidden, TooLarge
from socialcredit.service.notices import NOTICES_SCHEMA, NoticeTexts, write_notices
from socialcredit.store import Ledger
from socialcredit.store.base import AppendResult, Found
from socialcredit.store.files import AGENCY_PREFIX

__all__ = [
    "RECORDS_IN",
    "SUBJECTS_IN",
    "Ingested",
    "NewRecord",
    "NewSubject",
    "ingest",
    "ingest_table",
    "senders",
]

RECORDS_IN = pa.schema([f for f in RECORDS_SCHEMA if f.name != "recorded_at"])
SUBJECTS_IN = pa.schema([pa.field("code", pa.string()), pa.field("kind", pa.string())])

_lock = threading.Lock()  # one batch at a time per process: the id checks stay true


@dataclass(frozen=True)
class NewSubject:
    """A subject to register with a batch."""

    code: str
    kind: str


@dataclass(frozen=True)
class NewRecord:
    """A record as an agency sends it (``recorded_at`` is the service's)."""

    id: str
    subject: str
    type: str
    occurred_at: dt.date
    amount: int = 0
    ref: str | None = None


@dataclass(frozen=True)
class Ingested:
    """The acknowledgement: records written now, and repeats of records already there."""

    appended: int
    repeated: int
    subjects_added: int
    notices: int
    recorded_at: str


def ingest(
    svc: Service,
    agency: Principal,
    records: list[NewRecord],
    subjects: list[NewSubject] | None = None,
) -> Ingested:
    """Write one agency's batch; see the module's description."""
    table = pa.table(
        {
            "id": pa.array([r.id for r in records], pa.string()),
            "subject": pa.array([r.subject for r in records], pa.string()),
            "type": pa.array([r.type for r in records], pa.string()),
            "occurred_at": pa.array([r.occurred_at for r in records], pa.date32()),
            "amount": pa.array([r.amount for r in records], pa.int64()),
            "ref": pa.array([r.ref for r in records], pa.string()),
        }
    )
    codes = None
    if subjects:
        codes = pa.table(
            {"code": [s.code for s in subjects], "kind": [s.kind for s in subjects]},
            schema=SUBJECTS_IN,
        )
    return ingest_table(svc, agency, table, codes)


def ingest_table(
    svc: Service, agency: Principal, records: pa.Table, subjects: pa.Table | None = None
) -> Ingested:
    """Write one agency's batch given as columns: ``records`` with the columns of
    :data:`RECORDS_IN` (no ``recorded_at``: the service sets it), ``subjects`` with
    ``code`` and ``kind``. No Python code runs per record, except for the notices' text."""
    if agency.role != "agency":
        raise Forbidden("only an agency's key may send records")
    if records.num_rows > svc.settings.max_batch:
        raise TooLarge(
            f"a batch may hold at most {svc.settings.max_batch} records, this one "
            f"holds {records.num_rows}: split it"
        )
    records = records.select(list(RECORDS_IN.names)).cast(RECORDS_IN)
    types = pc.unique(records["type"]).to_pylist()
    outside = sorted(set(types) - agency.types)
    if outside:
        raise Forbidden(
            f"agency {agency.name!r} may not send records of type(s) {', '.join(outside)} "
            f"(its scope: {', '.join(sorted(agency.types))}); nothing was written"
        )
    reserved = records["id"].filter(pc.starts_with(records["id"], VOID_PREFIX))
    if len(reserved):
        raise Forbidden(
            f"record ids beginning with {VOID_PREFIX!r} are the service's own (the records "
            f"that void upheld appeals' records); {len(reserved)} sent, such as "
            f"{reserved[0].as_py()!r}; nothing was written"
        )
    svc.refuse_if_outdated()
    today = svc.today()
    source = AGENCY_PREFIX + agency.name
    with _lock:
        # the ids in the ledger and who sent them (the source of their write in the
        # ledger's log); what the ledger found is given to its append, which then need not
        # look again
        found, owners = svc.ledger.read(partial(_look_up, records=records))
        mine = found.records().filter(pc.is_in(found.rows["id"], value_set=records["id"]))
        there = {row["id"]: row for row in mine.to_pylist()}
        _refuse_conflicts(agency.name, records, there, owners)
        _refuse_foreign_refs(agency.name, records, found.rows["id"], owners)
        is_there = pc.is_in(records["id"], value_set=pa.array(list(there), pa.string()))
        recorded = pa.array(np.full(records.num_rows, to_day(today), np.int32)).cast(pa.date32())
        full = records.append_column("recorded_at", recorded).select(list(RECORD_FIELDS))
        fresh = full.filter(pc.invert(is_there)).cast(RECORDS_SCHEMA)
        joining = subjects if subjects is not None and subjects.num_rows else None
        # the notices of the records new to the ledger, and of those this agency's own
        # writes appended (a batch sent again after a crash between the two transactions
        # gets the notices missing; those already written are not written again, see
        # write_notices); a record sent twice in the batch is one record
        mine_there = [rid for rid in there if owners.get(rid) == agency.name]
        rows = _first_of_each_id(
            full.filter(
                pc.or_(
                    pc.invert(is_there),
                    pc.is_in(full["id"], value_set=pa.array(mine_there, pa.string())),
                )
            )
        )
        if mine_there:
            rows = _with_recorded(rows, there)
        kinds = _kinds(svc, rows, joining)
        appending: Future[AppendResult] | None = None
        if fresh.num_rows or joining is not None:
            # the subjects are registered in the records' transaction: a refused batch
            # registers none of them
            appending = svc.ledger.submit(
                lambda ledger: ledger.append(
                    fresh,
                    source=source,
                    subjects=joining,
                    opaque_codes=svc.settings.opaque_codes,
                    found=found,
                    guard=guard(svc),
                )
            )
        try:
            # while the ledger appends: the notices' texts, and on PostgreSQL their rows
            # (another connection), committed once the records are
            stamp = svc.stamp()
            texts = _notices(svc, agency.name, rows, kinds, stamp)
            if svc.db.dialect == "postgres":
                with svc.db.transaction() as db:
                    if appending is None:  # else the append checked it (its guard)
                        refuse_outdated(svc, db)
                    notices = write_notices(db, texts)
                    result = _appended(appending)
            else:  # one writer at a time on SQLite: after the ledger's commit
                result = _appended(appending)
                with svc.db.transaction() as db:
                    if appending is None:
                        refuse_outdated(svc, db)
                    notices = write_notices(db, texts)
        except BaseException:
            if appending is not None:  # one batch at a time: the append ends first
                futures.wait([appending])
            raise
        added, appended = result.subjects_added, result.appended
        if svc.dispatcher is None and svc.wake is None:  # else the dispatcher does, woken
            svc.db.keep_statistics()
    if notices:
        svc.outbox_written()
    return Ingested(appended, records.num_rows - appended, added, notices, today.isoformat())


def _refuse_foreign_refs(
    agency: str, records: pa.Table, found: pa.ChunkedArray | pa.Array, owners: dict[str, str]
) -> None:
    """A ``ref`` ends the record it names (SCHEME.md section 3), so an agency may name only
    a record it sent itself: in this batch, or earlier. (A ref to a record of neither this
    batch nor the ledger, ``found``, is the ledger's to refuse, as invalid input.)"""
    named = pc.unique(records["ref"].drop_null())
    if not len(named):
        return
    outside = pc.filter(named, pc.invert(pc.is_in(named, value_set=records["id"])))
    outside = pc.filter(outside, pc.is_in(outside, value_set=found))
    foreign = [rid for rid in outside.to_pylist() if owners.get(rid) != agency]
    if foreign:
        shown = ", ".join(foreign[:20]) + (" ..." if len(foreign) > 20 else "")
        raise Forbidden(
            f"agency {agency!r} may end (ref) only records it sent itself; {len(foreign)} "
            f"ref(s) name other records: {shown}; nothing was written"
        )


def _first_of_each_id(rows: pa.Table) -> pa.Table:
    """``rows`` without the repeats of an id (the ledger keeps an identical record once)."""
    if rows.num_rows < 2:
        return rows
    first = pc.index_in(rows["id"], value_set=rows["id"])  # the row of each id's first
    return rows.filter(pc.equal(first, pa.array(np.arange(rows.num_rows, dtype=np.int32))))


def _refuse_conflicts(
    agency: str,
    records: pa.Table,
    there: dict[str, dict[str, Any]],
    owners: dict[str, str],
) -> None:
    sent = set(records["id"].to_pylist())
    taken = [rid for rid, o in owners.items() if o != agency and rid in sent]
    conflicts = [f"{rid} (sent by another agency)" for rid in taken]
    named = set(taken)
    if there:
        mine = records.filter(pc.is_in(records["id"], value_set=pa.array(list(there))))
        for row in mine.to_pylist():
            if _content(row) != _content(there[row["id"]]) and row["id"] not in named:
                named.add(row["id"])
                conflicts.append(f"{row['id']} (differs from the record of that id in the ledger)")
    if conflicts:
        shown = ", ".join(conflicts[:20]) + (" ..." if len(conflicts) > 20 else "")
        raise Conflict(f"{len(conflicts)} record id(s) are taken: {shown}; nothing was written")


def _with_recorded(rows: pa.Table, there: dict[str, dict[str, Any]]) -> pa.Table:
    """``rows`` with the ``recorded_at`` the ledger holds for records already there."""
    days = [
        there[rid]["recorded_at"] if rid in there else day
        for rid, day in zip(rows["id"].to_pylist(), rows["recorded_at"].to_pylist(), strict=True)
    ]
    return rows.set_column(
        rows.schema.get_field_index("recorded_at"), "recorded_at", pa.array(days, pa.date32())
    )


def _content(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["subject"], row["type"], row["occurred_at"], row["amount"], row["ref"])


def _look_up(ledger: Ledger, records: pa.Table) -> tuple[Found, dict[str, str]]:
    """What the ledger holds of a batch (:meth:`Ledger.look_up`), and the agency that
    sent each record found (a record written otherwise, by an import, has none)."""
    found = ledger.look_up(records)
    if not found.rows.num_rows:
        return found, {}
    sources = ledger.sources_of(found.rows["seq"]).to_pylist()
    return found, _agencies(dict(zip(found.rows["id"].to_pylist(), sources, strict=True)))


def senders(svc: Service, ids: list[str]) -> dict[str, str]:
    """The agency that sent each of ``ids`` that an agency sent, as the ledger's log of
    batches says (a record written otherwise, by an import, has none)."""
    if not ids:
        return {}
    return _agencies(svc.ledger.read(partial(Ledger.sources, ids=ids)))


def _agencies(sources: dict[str, str]) -> dict[str, str]:
    return {
        str(rid): source.removeprefix(AGENCY_PREFIX)
        for rid, source in sources.items()
        if source.startswith(AGENCY_PREFIX)
    }


def _appended(appending: Future[AppendResult] | None) -> AppendResult:
    """What the ledger's append did, once it is durable (nothing to append: nothing)."""
    return AppendResult(0, 0, 0) if appending is None else appending.result()


def _kinds(svc: Service, rows: pa.Table, joining: pa.Table | None) -> pa.Array:
    """The kind of each row's subject: registered, or registered with the batch (null
    for a subject neither, whose record the ledger refuses)."""
    if not rows.num_rows:
        return pa.array([], pa.string())
    subject = rows["subject"].combine_chunks()
    codes = pc.unique(subject)
    kinds = svc.ledger.read(partial(Ledger.kinds_of, codes=codes))
    if joining is not None:
        sent_codes = joining["code"].combine_chunks()
        sent_kinds = joining["kind"].combine_chunks()
        other = pc.invert(pc.is_in(sent_codes, value_set=codes))
        if pc.any(other).as_py():
            # registered as typed, in another form than the records name them ("9111 0000
            # ... 3b"): the registry keeps the normal form, which the records' codes match
            normal = [normal_code(c) for c in sent_codes.filter(other).to_pylist()]
            sent_codes = pa.concat_arrays([sent_codes, pa.array(normal, pa.string())])
            sent_kinds = pa.concat_arrays([sent_kinds, sent_kinds.filter(other)])
        sent = sent_kinds.take(pc.index_in(codes, value_set=sent_codes))
        kinds = pc.coalesce(kinds, sent)
    return kinds.take(pc.index_in(subject, value_set=codes))


def _notices(svc: Service, agency: str, rows: pa.Table, kinds: pa.Array, stamp: str) -> pa.Table:
    """The notices of the adverse records among ``rows``, under each active scheme that
    scores their subject's kind."""
    texts = NoticeTexts(svc, agency)
    notices = [NOTICES_SCHEMA.empty_table()]
    for active in svc.schemes.values():
        scheme = active.scheme
        adverse = [name for name, spec in scheme.records.items() if spec.adverse]
        mask = pc.is_in(rows["type"], value_set=pa.array(adverse, pa.string()))
        if not pc.any(mask).as_py():
            continue
        mask = pc.and_(mask, pc.is_in(kinds, value_set=pa.array(list(scheme.subjects))))
        notices.append(texts.adverse(rows.filter(mask), scheme, stamp))
    return pa.concat_tables(notices)
