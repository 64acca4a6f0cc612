"""Schemes newly in force: the records already in the ledger get their notices first.

Under SCHEME.md an adverse record takes effect ``notice_days`` after its ``recorded_at``,
and the service writes its notice when an agency sends it. A record that was in the
ledger before the service ran a scheme -- imported with ``socialcredit records import``,
or sent while other schemes were active -- got no notice of that scheme, and would count
under it at once. So the service keeps, in ``svc_schemes_in_force`` (append-only), the
day it first ran each scheme, and what it did then with the records already there, as
the ``existing_records`` setting says:

* ``notify`` (the default): the scheme is *in force from* that day. Each adverse record
  already there that could still take effect under it (its subject's kind is scored, its
  type is adverse and read by a rule whose window it has not left by then, and no record
  ends it) gets its notice now, and takes effect ``notice_days`` after that day: the
  engine is given the day (:class:`~socialcredit.engine.Engine`'s ``in_force``), and a
  record counts from ``max(recorded_at, in force) + notice_days``. Its subject may
  contest it for ``appeal_days`` from that day too.
* ``count``: the records already there count as recorded, at once, with no notice (a
  ledger whose subjects were notified otherwise). The choice is kept in the table.

The first process that opens the service with a scheme decides, in one transaction of
the service tables that takes the notices' turn (a second process waits, then finds the
row); later starts, with the same or another version of the scheme, change nothing.
Records imported into the ledger of a running service later are not noticed: agencies
send records through the API.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.scheme.model import Scheme
from socialcredit.service.core import Service
from socialcredit.service.notices import (
    NOTICE_WRITERS,
    NOTICES_SCHEMA,
    NoticeTexts,
    write_notices,
)
from socialcredit.store.files import AGENCY_PREFIX
from socialcredit.store.service_db import ServiceDB

IN_FORCE_VERSION = 7
"""The version of the service tables that made ``svc_schemes_in_force``."""

__all__ = ["Activation", "activate", "existing_notices", "in_force", "notifying"]


class Activation:
    """A scheme's row of ``svc_schemes_in_force``."""

    def __init__(
        self, scheme: str, version: str, since: str | None, existing: str, notices: int, at: str
    ) -> None:
        self.scheme = scheme
        self.version = version
        self.since = None if since is None else dt.date.fromisoformat(since)
        self.existing = existing  # notify, count, or before (ran before the table)
        self.notices = notices
        self.at = at

    def as_dict(self) -> dict[str, object]:
        """The row as JSON values."""
        return {
            "scheme": self.scheme,
            "version": self.version,
            "in_force_from": None if self.since is None else self.since.isoformat(),
            "existing_records": self.existing,
            "notices": self.notices,
            "at": self.at,
        }


def in_force(db: ServiceDB) -> dict[str, Activation]:
    """Every scheme the service has run, by id."""
    rows = db.query(
        "SELECT scheme, version, since, existing, notices, at FROM svc_schemes_in_force"
    )
    return {str(r[0]): Activation(*r) for r in rows}


def notifying(target: str | Path) -> dict[str, dt.date]:
    """The schemes a service runs on the ledger at ``target`` that gave notice of the
    records already there when they came into force (``existing_records = notify``), with
    that day; none when the ledger has no service tables."""
    db = ServiceDB.connect(target)
    try:
        if db.version() < IN_FORCE_VERSION:
            return {}
        return {a.scheme: a.since for a in in_force(db).values() if a.since is not None}
    finally:
        db.close()


def activate(svc: Service) -> int:
    """Record each active scheme the service runs for the first time (with the notices of
    the records already there, under ``existing_records = notify``), and give every active
    scheme its day in force; how many notices were written (the caller delivers them)."""
    written = 0
    known = in_force(svc.db)
    if any(sid not in known for sid in svc.schemes):
        today = svc.today()
        notify = svc.settings.existing_records == "notify"
        ledger: tuple[pa.Table, pa.Table] | None = None
        if notify:
            ledger = svc.ledger.read(lambda lg: (lg.subjects(), lg.records()))
        with svc.db.transaction() as db:
            db.take_turn(NOTICE_WRITERS)  # one process decides; the others find its rows
            known = in_force(db)
            new = [sid for sid in svc.schemes if sid not in known]
            # every scheme's day first: a notice states the appeal windows of them all
            _set_days(svc, known, today if notify else None)
            stamp = svc.stamp()
            for sid in new:
                active, count = svc.schemes[sid], 0
                if ledger is not None:
                    count = write_notices(db, existing_notices(svc, active.scheme, today, *ledger))
                    written += count
                db.execute(
                    "INSERT INTO svc_schemes_in_force (scheme, version, since, existing, "
                    "notices, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        sid,
                        active.version,
                        today.isoformat() if notify else None,
                        svc.settings.existing_records,
                        count,
                        stamp,
                    ),
                )
            known = in_force(db)
    _set_days(svc, known, None)
    return written


def _set_days(svc: Service, known: dict[str, Activation], new: dt.date | None) -> None:
    """Give each active scheme its day in force: its row's, or ``new`` for one without."""
    svc.schemes = {
        sid: active.since(known[sid].since if sid in known else new)
        for sid, active in svc.schemes.items()
    }


def existing_notices(
    svc: Service, scheme: Scheme, since: dt.date, subjects: pa.Table, records: pa.Table
) -> pa.Table:
    """The notices of the records already in the ledger that the scheme, in force from
    ``since``, would count ``notice_days`` later (:data:`NOTICES_SCHEMA`): adverse types,
    subjects of a kind it scores, inside the longest window of the rules that read the
    type on that day, and ended by no record."""
    if not records.num_rows:
        return NOTICES_SCHEMA.empty_table()
    effective = since + dt.timedelta(days=scheme.notice_days or 0)
    reach: dict[str, int | None] = {}  # per adverse type read by a rule: its longest window
    for rule in scheme.rules:
        for t in rule.types:
            if not scheme.records[t].adverse:
                continue
            old = reach.get(t, 0)
            reach[t] = (
                None if old is None or rule.window_days is None else max(old, rule.window_days)
            )
    if not reach:
        return NOTICES_SCHEMA.empty_table()
    kinds = subjects["kind"].take(pc.index_in(records["subject"], value_set=subjects["code"]))
    mask = pc.and_(
        pc.is_in(records["type"], value_set=pa.array(list(reach), pa.string())),
        pc.is_in(kinds, value_set=pa.array(list(scheme.subjects), pa.string())),
    )
    refs = pc.drop_null(records["ref"])
    mask = pc.and_(mask, pc.invert(pc.is_in(records["id"], value_set=refs)))
    windows = pa.array([reach[t] for t in reach], pa.int32())
    window = windows.take(pc.index_in(records["type"], value_set=pa.array(list(reach))))
    first = pc.subtract(pa.scalar(effective, pa.date32()).cast(pa.int32()), window)
    # inside the window on the day it takes effect: effective - occurred < window
    inside = pc.greater(records["occurred_at"].cast(pa.int32()), first)
    mask = pc.and_(mask, pc.fill_null(inside, True))  # null window: no window
    chosen = records.filter(pc.fill_null(mask, False))
    if not chosen.num_rows:
        return NOTICES_SCHEMA.empty_table()
    senders = svc.ledger.read(lambda lg: lg.sources(chosen["id"].to_pylist()))
    agency = pa.array([senders.get(rid, "") for rid in chosen["id"].to_pylist()], pa.string())
    agency = pc.replace_substring_regex(agency, f"^{AGENCY_PREFIX}", "")
    stamp = svc.stamp()
    parts = [NOTICES_SCHEMA.empty_table()]
    for name in pc.unique(agency).to_pylist():
        rows = chosen.filter(pc.equal(agency, name))
        parts.append(NoticeTexts(svc, name).adverse(rows, scheme, stamp, since))
    return pa.concat_tables(parts)
