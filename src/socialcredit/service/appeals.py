"""Appeals: a subject contests a record; a reviewer upholds or rejects; time voids it.

* A subject contests one of their records within the ``appeal_days`` of the schemes that
  know its type (the longest of them), counted from the day it was recorded. From then on
  the record is *contested* in every view: the subject's records and explanations, the
  public lookup, the reviewer's queue and decisions that rest on it.
* A reviewer (a key of role ``reviewer``) upholds an appeal -- a voiding record (type
  ``void_type``, ``ref`` the contested record) is appended to the ledger, so the state is
  recomputed from the next read on -- or rejects it with a reason. Either way a notice goes
  to the subject.
* An appeal not decided within ``review_days`` lapses in the subject's favour: the record
  is voided as if upheld. :func:`sweep` does it; the service runs it on the first request
  of each day, and ``socialcredit appeals sweep`` runs it at once.

Appeals and their decisions are append-only rows: an appeal is open while it has no
decision.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from socialcredit.errors import LedgerError
from socialcredit.records import RECORDS_SCHEMA
from socialcredit.service.access import declared, log_read
from socialcredit.service.activation import refuse_outdated
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Outdated,
)
from socialcredit.service.notices import appeal_until, write_notice
from socialcredit.store import Ledger

__all__ = [
    "VOID_PREFIX",
    "Appeal",
    "appeal_of",
    "appeals_of",
    "contest",
    "contested_ids",
    "decide_appeal",
    "queue",
    "repair",
    "sweep",
    "sweep_if_due",
]

log = logging.getLogger(__name__)

MAX_REASON = 2000
MAX_FORM_REASON = 2 * MAX_REASON
"""A form's reason may hold up to this many characters: a browser sends each line break of
a text area as two (CR LF), and they are counted as one (:data:`MAX_REASON`)."""
_COLUMNS = (
    "a.id, a.subject, a.record_id, a.reason, a.filed_on, a.filed_at, d.outcome, "
    "d.reason, d.reviewer, d.decided_at, d.void_record"
)
_FROM = "svc_appeals AS a LEFT JOIN svc_appeal_decisions AS d ON d.appeal_id = a.id"


@dataclass(frozen=True)
class Appeal:
    """An appeal and, once decided, its decision."""

    id: int
    subject: str
    record: str
    reason: str
    filed_on: str
    filed_at: str
    status: str  # open | upheld | rejected | lapsed
    decision_reason: str | None
    reviewer: str | None
    decided_at: str | None
    void_record: str | None
    review_by: str


def _appeal(svc: Service, row: tuple[Any, ...]) -> Appeal:
    filed = dt.date.fromisoformat(str(row[4]))
    # the last day a reviewer may decide: the appeal lapses the day after, ``review_days``
    # after it was filed (see :func:`sweep`)
    due = filed + dt.timedelta(days=svc.settings.review_days - 1)
    return Appeal(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        str(row[6] or "open"),
        row[7],
        row[8],
        row[9],
        row[10],
        due.isoformat(),
    )


def contested_ids(svc: Service, subject: str) -> set[str]:
    """The subject's records under an open appeal (kept in memory while no appeal is
    filed or decided: :meth:`~socialcredit.service.states.States.contested`)."""
    return set(svc.states.contested(subject))


def _reason(text: str, what: str) -> str:
    """The reason, its ends stripped and its line breaks as one character each (a form
    sends CR LF); refused when empty or longer than :data:`MAX_REASON`."""
    text = text.replace("\r\n", "\n").strip()
    if not text or len(text) > MAX_REASON:
        raise InvalidRequest(f"{what} must be 1 to {MAX_REASON} characters")
    return text


def contest(svc: Service, subject: str, record_id: str, reason: str) -> Appeal:
    """The subject contests one of their records; a record that is not theirs, or does
    not exist, is not found (the same answer)."""
    reason = _reason(reason, "the reason")
    svc.refuse_if_outdated()  # its deadline is that of the schemes in force
    found = [r for r in svc.states.records_of(subject).to_pylist() if r["id"] == record_id]
    if not found:
        raise NotFound("not found")
    record = found[0]
    until = appeal_until(svc, record)
    if until is None:  # as the notices of its records said
        raise Conflict(
            f"record {record_id} cannot be contested: the schemes that read records of type "
            f"{record['type']} allow no appeal (appeal_days)"
        )
    if svc.today() > until:
        raise Conflict(
            f"record {record_id} could be contested until {until.isoformat()} (the "
            "appeal_days of its schemes from the day it was recorded, or from the day its "
            "notice was given when its scheme came into force); that time has passed"
        )
    with svc.db.transaction() as db:
        refuse_outdated(svc, db)  # its deadline was that of the schemes in force
        if db.one("SELECT 1 FROM svc_appeals WHERE record_id = ?", (record_id,)):
            raise Conflict(f"record {record_id} is contested already: see your appeals")
        new = db.insert(
            "INSERT INTO svc_appeals (subject, record_id, reason, filed_on, "
            "filed_at) VALUES (?, ?, ?, ?, ?)",
            (subject, record_id, reason, svc.today().isoformat(), svc.stamp()),
        )
    return appeal_of(svc, subject, new)


def appeals_of(svc: Service, subject: str) -> list[Appeal]:
    """The subject's appeals, newest first."""
    rows = svc.db.query(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.subject = ? ORDER BY a.id DESC", (subject,)
    )
    return [_appeal(svc, r) for r in rows]


def appeal_of(svc: Service, subject: str, appeal_id: int) -> Appeal:
    """One of the subject's appeals; another's reads as not found."""
    row = svc.db.one(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.id = ? AND a.subject = ?", (appeal_id, subject)
    )
    if row is None:
        raise NotFound("not found")
    return _appeal(svc, row)


def _reviewer(who: Principal) -> None:
    if who.role != "reviewer":
        raise Forbidden("appeals are worked by the keys of reviewers")


def queue(
    svc: Service, who: Principal, purpose: str | None, *, status: str = "open"
) -> list[Appeal]:
    """The reviewer's queue (oldest first); each appeal shown is a logged read."""
    _reviewer(who)
    why = declared(purpose)
    where = "d.appeal_id IS NULL" if status == "open" else "d.outcome = ?"
    params: tuple[Any, ...] = () if status == "open" else (status,)
    rows = svc.db.query(f"SELECT {_COLUMNS} FROM {_FROM} WHERE {where} ORDER BY a.id", params)
    appeals = [_appeal(svc, r) for r in rows]
    for appeal in appeals:
        log_read(svc, appeal.subject, who, why, f"appeal {appeal.id} in the review queue")
    return appeals


def review(svc: Service, who: Principal, appeal_id: int, purpose: str | None) -> Appeal:
    """One appeal, for a reviewer (a logged read)."""
    _reviewer(who)
    why = declared(purpose)
    row = svc.db.one(f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.id = ?", (appeal_id,))
    if row is None:
        raise NotFound(f"no appeal {appeal_id}")
    appeal = _appeal(svc, row)
    log_read(svc, appeal.subject, who, why, f"appeal {appeal.id}")
    return appeal


def decide_appeal(
    svc: Service, who: Principal, appeal_id: int, outcome: str, reason: str, purpose: str | None
) -> Appeal:
    """Uphold (``upheld``) or reject (``rejected``, with a reason) an open appeal; the
    reviewer's declared ``purpose`` goes to the subject's access log."""
    _reviewer(who)
    why = declared(purpose)
    if outcome not in ("upheld", "rejected"):
        raise Conflict(f"{outcome!r} is not a decision: upheld or rejected")
    if outcome == "rejected" or reason.strip():
        reason = _reason(
            reason, "the reason of a rejection" if outcome == "rejected" else "the reason"
        )
    row = svc.db.one(f"SELECT {_COLUMNS} FROM {_FROM} WHERE a.id = ?", (appeal_id,))
    if row is None:
        raise NotFound(f"no appeal {appeal_id}")
    appeal = _appeal(svc, row)
    if appeal.status != "open" or not _close(svc, appeal, outcome, reason.strip(), who.name):
        decided = appeal_of(svc, appeal.subject, appeal_id).status
        raise Conflict(f"appeal {appeal_id} was decided already: {decided}")
    log_read(svc, appeal.subject, who, why, f"decided appeal {appeal_id}: {outcome}")
    svc.outbox_written()
    return appeal_of(svc, appeal.subject, appeal_id)


VOID_PREFIX = "void-appeal-"
"""The ids of the records that void upheld and lapsed appeals' records begin with it; an
agency may not send such an id (:mod:`socialcredit.service.ingest`)."""


def _void_id(svc: Service, appeal: Appeal) -> str:
    """The id of the record that voids the appeal's record: ``void-appeal-<appeal>-<record>``,
    unless a record that this appeal's write did not append holds that id (a ledger
    imported with one): then the first of ``...~2``, ``...~3``, ... that is free or this
    appeal's own."""
    base = f"{VOID_PREFIX}{appeal.id}-{appeal.record}"
    tried = [base, *(f"{base}~{k}" for k in range(2, 10))]
    held = svc.ledger.read(lambda ledger: ledger.sources(tried))
    for void_id in tried:
        if held.get(void_id, _source(appeal.id)) == _source(appeal.id):
            return void_id
    raise Conflict(
        f"the ids {base} to {tried[-1]} are all held by records the service did not write; "
        "the record cannot be voided until an operator resolves it"
    )


def _source(appeal: int) -> str:
    """The source the ledger's log gives the write of an appeal's voiding record."""
    return f"appeal:{appeal}"


def _close(svc: Service, appeal: Appeal, outcome: str, reason: str, reviewer: str) -> bool:
    """Decide an appeal: whether this call decided it (another decider may have first).

    The decision row is written first, with the subject's notice, in one transaction; the
    decision's primary key is the appeal, so of two deciders at once (two processes, a
    reviewer and the sweep) exactly one writes it and the other is told. Then, for an
    upheld or lapsed appeal, the voiding record is appended (its id is fixed by the appeal,
    so it is never appended twice); a crash in between is repaired by :func:`repair`. A
    server that is outdated (:func:`~socialcredit.service.activation.refuse_outdated`)
    decides nothing; one that became outdated once the decision was written still appends
    its voiding record, which ends the record under any scheme."""
    void_id = _void_id(svc, appeal) if outcome != "rejected" else None
    stamp = svc.stamp()
    text = {
        "upheld": f"your appeal against record {appeal.record} was upheld: the record is "
        f"voided by record {void_id} and no longer counts",
        "lapsed": f"your appeal against record {appeal.record} was not decided within "
        f"{svc.settings.review_days} days: the record is voided by record {void_id}",
        "rejected": f"your appeal against record {appeal.record} was rejected: {reason}",
    }[outcome]
    with svc.db.transaction() as db:
        refuse_outdated(svc, db)  # nothing decided by a server outdated meanwhile
        claimed = db.execute(
            "INSERT INTO svc_appeal_decisions (appeal_id, outcome, reason, reviewer, "
            "decided_at, void_record) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (appeal_id) DO NOTHING",
            (appeal.id, outcome, reason, reviewer, stamp, void_id),
        )
        if claimed != 1:
            return False
        write_notice(
            db,
            subject=appeal.subject,
            record=appeal.record,
            scheme="",
            kind=f"appeal_{outcome}",
            created_at=stamp,
            effective_on=svc.today().isoformat(),
            body={
                "notice": f"appeal {outcome}",
                "appeal": appeal.id,
                "record": appeal.record,
                "reason": reason,
                "decision": text,
            },
        )
    if void_id is not None:
        _append_void(svc, appeal.subject, appeal.record, void_id, appeal.id)
    return True


def _append_void(svc: Service, subject: str, record: str, void_id: str, appeal: int) -> None:
    """Append the record that voids ``record`` (unless it is there already)."""

    def void(ledger: Ledger) -> None:
        held = ledger.sources([void_id]).get(void_id)
        if held == _source(appeal):
            return
        if held is not None:  # taken since the decision chose it: an import meanwhile
            raise LedgerError(
                f"record {void_id}, chosen to void record {record} (appeal {appeal}), was "
                f"written by {held}; the record is not voided"
            )
        original = ledger.find([record]).to_pylist()[0]
        today = svc.today()
        ledger.append(
            pa.Table.from_pylist(
                [
                    {
                        "id": void_id,
                        "subject": subject,
                        "type": svc.settings.void_type,
                        "occurred_at": max(today, original["occurred_at"]),
                        "recorded_at": today,
                        "amount": 0,
                        "ref": record,
                    }
                ],
                schema=RECORDS_SCHEMA,
            ),
            source=_source(appeal),
        )

    svc.ledger.call(void)


def repair(svc: Service) -> int:
    """Append the voiding records of upheld and lapsed appeals that a crash left without
    them; how many it appended (one it cannot append is logged)."""
    rows = svc.db.query(
        "SELECT d.void_record, a.subject, a.record_id, a.id FROM svc_appeal_decisions AS d "
        "JOIN svc_appeals AS a ON a.id = d.appeal_id WHERE d.void_record IS NOT NULL"
    )
    if not rows:
        return 0
    held = svc.ledger.read(lambda ledger: ledger.sources([str(r[0]) for r in rows]))
    missing = [r for r in rows if held.get(str(r[0])) != _source(int(r[3]))]
    done = 0
    for void_id, subject, record, appeal in missing:
        try:
            _append_void(svc, str(subject), str(record), str(void_id), int(appeal))
        except LedgerError:  # named in the log; the other repairs go on
            log.exception("appeal %s: the voiding record cannot be appended", appeal)
            continue
        done += 1
    return done


def sweep(svc: Service) -> int:
    """Void the records of appeals undecided for ``review_days``, and repair what a crash
    left half done (:func:`repair`); how many lapsed."""
    svc.refuse_if_outdated()
    repair(svc)
    limit = (svc.today() - dt.timedelta(days=svc.settings.review_days)).isoformat()
    rows = svc.db.query(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE d.appeal_id IS NULL "
        "AND a.filed_on <= ? ORDER BY a.id",
        (limit,),
    )
    lapsed = sum(
        _close(svc, _appeal(svc, row), "lapsed", "not decided in time", "the service")
        for row in rows
    )
    svc.swept_on = svc.day()
    if lapsed:
        svc.outbox_written()
    return lapsed


def sweep_if_due(svc: Service) -> None:
    """Run :func:`sweep` once a day (on the first request of the day); not on a service
    whose schemes are outdated (:class:`Outdated`): a server running those in force
    sweeps."""
    if svc.swept_on != svc.day():
        with contextlib.suppress(Outdated):
            sweep(svc)
