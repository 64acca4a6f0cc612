"""What a signed-in subject sees of themselves: every record, their state under each
scheme with its explanation, their notices, appeals and who read their record.

Every function takes the subject's own code, which only a session gives
(:mod:`socialcredit.service.identity`); an id that is not the subject's reads as not found,
the same answer as an id that does not exist. A subject reading their own record writes
no access-log entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from socialcredit.engine.explain import explain
from socialcredit.service.appeals import contested_ids
from socialcredit.service.core import Service
from socialcredit.service.errors import NotFound
from socialcredit.service.ingest import senders
from socialcredit.service.notices import (
    appeal_until_column,
    noticed_when_in_force,
    stated_deadlines,
)

__all__ = ["OwnRecord", "SchemeState", "own_record", "own_records", "own_states"]


@dataclass(frozen=True)
class OwnRecord:
    """One of the subject's records, with who sent it and whether it is contested."""

    id: str
    type: str
    occurred_at: str
    recorded_at: str
    amount: int
    ref: str | None
    agency: str | None
    contested: bool
    appeal_until: str


@dataclass(frozen=True)
class SchemeState:
    """The subject's state under one scheme, explained."""

    scheme: str
    at: str
    score: int
    grade: str
    lists: list[str]
    denied: list[str]
    granted: list[str]
    contested: list[str]
    explanation: dict[str, Any]


def own_records(svc: Service, subject: str) -> list[OwnRecord]:
    """All the subject's records, in ledger order."""
    table = svc.states.records_of(subject)
    rows = table.to_pylist()
    contested = contested_ids(svc, subject)
    agencies = senders(svc, [str(r["id"]) for r in rows])
    ids = [str(r["id"]) for r in rows]
    noticed = noticed_when_in_force(svc, ids)
    stated = stated_deadlines(svc, ids)
    until = appeal_until_column(
        svc, table["type"], table["recorded_at"], noticed, stated
    ).to_pylist()
    return [
        OwnRecord(
            r["id"],
            r["type"],
            r["occurred_at"].isoformat(),
            r["recorded_at"].isoformat(),
            int(r["amount"]),
            r["ref"],
            agencies.get(r["id"]),
            r["id"] in contested,
            (u or r["recorded_at"]).isoformat(),
        )
        for r, u in zip(rows, until, strict=True)
    ]


def own_record(svc: Service, subject: str, record_id: str) -> OwnRecord:
    """One of the subject's records; another's reads as not found."""
    for record in own_records(svc, subject):
        if record.id == record_id:
            return record
    raise NotFound("not found")


def own_states(svc: Service, subject: str) -> list[SchemeState]:
    """The subject's state under every active scheme that scores them."""
    contested = contested_ids(svc, subject)
    snap = svc.states.current(svc.day())
    records: pa.Table | None = None
    out = []
    for active in svc.schemes.values():
        view = snap.scheme(active.id)
        if view.lists(subject) is None:
            continue
        if records is None:
            records = svc.states.records_of(subject)
        states = view.states_of(subject, records)
        assert states is not None
        e = explain(states, subject)
        counted = {rid for rule in e.rules for rid in rule.records}
        out.append(
            SchemeState(
                active.id,
                e.at,
                e.score,
                e.grade,
                [lst.id for lst in e.lists if lst.member],
                e.denied,
                e.granted,
                sorted(counted & contested),
                dataclasses.asdict(e),
            )
        )
    return out
