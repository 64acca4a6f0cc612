"""Notices: every adverse record is announced to its subject before it takes effect.

When an agency's record of an adverse type (under an active scheme that scores its
subject's kind) enters the ledger, the service writes a notice naming the agency, the
record, its effect under the scheme, the day it takes effect (``recorded_at +
notice_days``) and how and until when to appeal. Decisions on appeals write notices too.

The notices table is the outbox: a notice is written once, durably, in the transaction of
what caused it, and :func:`deliver` hands the notices numbered after the point delivery
has reached to the sink, in order, then appends a row to ``svc_notice_rounds`` with the
point it reached -- how many went, and the error of a failed sink (what it did not take
stays after that point, for the next round). Both tables are append-only: delivering
rewrites no row.

Numbers must follow the order of commits, or a round could pass over a notice numbered
before one it delivers but committed after it. The transactions that write notices take
turns (:meth:`~socialcredit.store.service_db.ServiceDB.take_turn`: on PostgreSQL an
advisory lock held from before the notices are numbered until the commit; SQLite's write
transactions take turns anyway), so every notice not yet committed is numbered after
every notice a round can see. A round appends its row only if no other round was
appended since it read the point (two deliverers at once never move the point back); a
notice two deliverers both took goes out twice: delivery is at least once, as it is when
a sink took a notice just before a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.days import LAST_DAY, to_day
from socialcredit.engine.conditions import condition_parts
from socialcredit.records import RECORD_FIELDS
from socialcredit.scheme.model import (
    Condition,
    GradeIn,
    OnList,
    RuleCondition,
    Scheme,
    ScoreAtLeast,
    ScoreBelow,
)
from socialcredit.service.core import Service
from socialcredit.service.errors import NotFound
from socialcredit.service.schemes import day_numbers
from socialcredit.store.service_db import ServiceDB

__all__ = [
    "DELIVER_BATCH",
    "NOTICES_SCHEMA",
    "NOTICE_COLUMNS",
    "NOTICE_WRITERS",
    "NO_APPEAL",
    "Notice",
    "NoticeTexts",
    "adverse_notice",
    "appeal_until",
    "appeal_until_column",
    "deliver",
    "lists_fed",
    "notice_of",
    "notice_table",
    "noticed_when_in_force",
    "notices_of",
    "pending_notices",
    "reads",
    "stated_deadlines",
    "whole",
    "write_notice",
    "write_notices",
]


log = logging.getLogger(__name__)

NOTICE_WRITERS = 0x5C1ED70C
"""The turn the transactions that write notices take (a lock class; see the module)."""


@dataclass(frozen=True)
class Notice:
    """A notice as the subject reads it."""

    id: int
    kind: str
    record: str
    scheme: str
    created_at: str
    effective_on: str
    body: dict[str, Any]


NO_APPEAL = "no active scheme allows an appeal of this record"


Noticed = Mapping[str, "npt.NDArray[np.bool_]"]
"""Per scheme id, whether each of some records got its notice under that scheme when the
scheme came into force (:mod:`socialcredit.service.activation`)."""

_NONE = np.iinfo(np.int64).min  # no window


def appeal_until_column(
    svc: Service,
    types: pa.Array | pa.ChunkedArray,
    recorded: pa.Array | pa.ChunkedArray,
    noticed: Noticed,
    stated: pa.Array | None = None,
) -> pa.Array:
    """The last day its subject may contest each record (its type, its ``recorded_at``),
    as dates; null where no scheme allows an appeal. Each active scheme that knows the type
    (each of them, for a type none knows) opens a window of its ``appeal_days`` on the day
    the record was recorded -- or, for a record recorded before the scheme came into force
    that got its notice then (``noticed``), on that day; the record's one deadline is the
    last of them, and of the deadlines its notices stated before (``stated``, dates or
    null: :func:`stated_deadlines`), which no later scheme or version shortens; each of
    its notices states it."""
    types, recorded = whole(types), whole(recorded)
    day = day_numbers(recorded)
    known = pa.array(sorted({t for a in svc.schemes.values() for t in a.scheme.records}))
    unknown = np.asarray(
        pc.invert(pc.is_in(types, value_set=known)).to_numpy(zero_copy_only=False), np.bool_
    )
    out = np.full(len(types), _NONE, np.int64)
    for active in svc.schemes.values():
        days = active.scheme.appeal_days or 0
        if not days:
            continue
        names = pa.array(list(active.scheme.records), pa.string())
        applies = unknown | np.asarray(
            pc.is_in(types, value_set=names).to_numpy(zero_copy_only=False), np.bool_
        )
        start = day
        given = noticed.get(active.id)
        if active.in_force is not None and given is not None:
            since = to_day(active.in_force)
            start = np.where(given & (day < since), since, day)
        end = np.minimum(start + days, LAST_DAY)
        out = np.where(applies, np.maximum(out, end), out)
    if stated is not None and stated.null_count < len(stated):
        given_day = pc.fill_null(stated.cast(pa.int32()).cast(pa.int64()), _NONE).to_numpy()
        out = np.maximum(out, np.asarray(given_day, np.int64))
    none = out == _NONE
    return pa.array(np.where(none, 0, out).astype(np.int32), pa.date32(), mask=none)


_WHOLE_TABLE = 20_000  # more record ids than this: the stated deadlines are read in one pass


def stated_deadlines(svc: Service, ids: Sequence[str]) -> pa.Array:
    """The last deadline to contest each of the records ``ids`` that a notice of it
    stated (dates; null where none did)."""
    found: dict[str, str] = {}
    if len(ids) > _WHOLE_TABLE:
        rows = svc.db.query(
            "SELECT record_id, max(appeal_until) FROM svc_notices WHERE appeal_until IS NOT "
            "NULL GROUP BY record_id"
        )
        found = {str(rid): str(day) for rid, day in rows}
    else:
        for lo in range(0, len(ids), _IDS_AT_ONCE):
            part = list(ids[lo : lo + _IDS_AT_ONCE])
            rows = svc.db.query(
                "SELECT record_id, max(appeal_until) FROM svc_notices WHERE appeal_until IS "
                f"NOT NULL AND record_id IN ({', '.join('?' for _ in part)}) GROUP BY record_id",
                part,
            )
            found.update((str(rid), str(day)) for rid, day in rows)
    days = pa.array([found.get(rid) for rid in ids], pa.string())
    return days.cast(pa.date32())


def noticed_when_in_force(
    svc: Service, ids: Sequence[str], *, but: Sequence[str] = ()
) -> dict[str, npt.NDArray[np.bool_]]:
    """For the records ``ids``, per active scheme in force from a day (but those named in
    ``but``), whether each got its (adverse) notice under it, as the notices table says."""
    schemes = [a.id for a in svc.schemes.values() if a.in_force is not None and a.id not in but]
    out = {sid: np.zeros(len(ids), np.bool_) for sid in schemes}
    if not schemes or not ids:
        return out
    where = {rid: i for i, rid in enumerate(ids)}
    marks = ", ".join("?" for _ in schemes)
    for lo in range(0, len(ids), _IDS_AT_ONCE):
        part = list(ids[lo : lo + _IDS_AT_ONCE])
        rows = svc.db.query(
            f"SELECT record_id, scheme FROM svc_notices WHERE kind = 'adverse' AND scheme IN "
            f"({marks}) AND record_id IN ({', '.join('?' for _ in part)})",
            (*schemes, *part),
        )
        for rid, sid in rows:
            out[str(sid)][where[str(rid)]] = True
    return out


_IDS_AT_ONCE = 900  # record ids a query names at most (SQLite takes 32,766 parameters)


def appeal_until(svc: Service, record: Mapping[str, Any]) -> dt.date | None:
    """:func:`appeal_until_column` of one record (a row of the ledger, its dates as dates
    or as ``YYYY-MM-DD``)."""
    recorded = record["recorded_at"]
    if not isinstance(recorded, dt.date):
        recorded = dt.date.fromisoformat(str(recorded))
    ids = [str(record["id"])]
    found = appeal_until_column(
        svc,
        pa.array([str(record["type"])], pa.string()),
        pa.array([recorded], pa.date32()),
        noticed_when_in_force(svc, ids),
        stated_deadlines(svc, ids),
    )[0].as_py()
    return found if isinstance(found, dt.date) else None


def whole(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An array in one chunk."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def effect_of(scheme: Scheme, type_name: str) -> str:
    """What a record of this type does under the scheme, in words."""
    parts = []
    for rule in scheme.rules:
        if type_name not in rule.types:
            continue
        if rule.points is not None:
            how = f"{rule.points:+d} points per {rule.per or 1} of its {rule.measure}"
            if rule.cap:
                how += f" (at most {rule.cap} in all)"
        else:
            how = "points from the table of the rule"
        window = f", for {rule.window_days} days" if rule.window_days else ""
        parts.append(f"rule {rule.id}: {how}{window}")
    lists = lists_fed(scheme, type_name)
    text = "; ".join(parts) or "counts for no rule"
    if lists:
        text += "; it may place the subject on the list(s) " + ", ".join(lists)
    return text


def lists_fed(scheme: Scheme, type_name: str) -> list[str]:
    """The lists a record of this type may place its subject on, as its notice names them:
    those whose condition reads a rule that reads the type, or the score or the grade when
    such a rule gives points, or a list named so (in the scheme's order)."""
    reading = {r.id for r in scheme.rules if type_name in r.types}
    scores = any(r.points != 0 for r in scheme.rules if r.id in reading)  # None: a table
    fed: set[str] = set()
    for lst in scheme.lists:  # a list reads only lists before it (SCHEME.md)
        if reads(lst.when, reading, fed, scores):
            fed.add(lst.id)
    return [lst.id for lst in scheme.lists if lst.id in fed]


def reads(
    condition: Condition,
    rules: set[str],
    lists: Collection[str] = (),
    scores: bool = False,
) -> bool:
    """Whether a condition reads the measure of one of ``rules``, one of ``lists``, or
    (with ``scores``) the score or the grade. Lists read through a related subject are
    not followed: the notice names the lists of the record's own subject."""
    if isinstance(condition, RuleCondition):
        return condition.rule in rules
    if isinstance(condition, OnList):
        return condition.list in lists
    if isinstance(condition, (ScoreAtLeast, ScoreBelow, GradeIn)):
        return scores
    return any(reads(part, rules, lists, scores) for part in condition_parts(condition))


def adverse_notice(
    svc: Service, *, agency: str, record: dict[str, Any], scheme: Scheme
) -> tuple[str, dict[str, Any]]:
    """The effective day and body of the notice of an adverse record under a scheme."""
    recorded = dt.date.fromisoformat(str(record["recorded_at"]))
    effective = recorded + dt.timedelta(days=scheme.notice_days or 0)
    until = appeal_until(svc, record)
    body = {
        "notice": "adverse record",
        "subject": record["subject"],
        "agency": agency,
        "record": {
            k: str(record[k]) if record[k] is not None else None
            for k in ("id", "type", "occurred_at", "recorded_at", "amount", "ref")
        },
        "scheme": scheme.scheme,
        "effect": effect_of(scheme, str(record["type"])),
        "takes_effect_on": effective.isoformat(),
        "how_to_appeal": (
            f"sign in and contest record {record['id']} (POST /v1/me/appeals) until "
            f"{until.isoformat()}; a reviewer decides within "
            f"{svc.settings.review_days} days, or the record is voided"
            if until is not None
            else NO_APPEAL
        ),
    }
    return effective.isoformat(), body


def write_notice(
    db: ServiceDB,
    *,
    subject: str,
    record: str,
    scheme: str,
    kind: str,
    created_at: str,
    effective_on: str,
    body: dict[str, Any],
) -> bool:
    """Write a notice, unless that notice exists; whether it was new. Call inside a
    transaction of ``db``."""
    db.take_turn(NOTICE_WRITERS)
    row = db.one(
        "INSERT INTO svc_notices (subject, record_id, scheme, kind, created_at, effective_on, "
        "body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_id, scheme, kind) DO NOTHING "
        "RETURNING id",
        (
            subject,
            record,
            scheme,
            kind,
            created_at,
            effective_on,
            json.dumps(body, ensure_ascii=False, sort_keys=True),
        ),
    )
    return row is not None


NoticeRow = tuple[str, str, str, str, str, str, str, str | None]
NOTICE_COLUMNS = (
    "subject",
    "record_id",
    "scheme",
    "kind",
    "created_at",
    "effective_on",
    "body",
    "appeal_until",  # the last day to contest the record it states (None: no appeal)
)
NOTICES_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in NOTICE_COLUMNS])


def notice_table(rows: Sequence[NoticeRow]) -> pa.Table:
    """Notices given as rows, as the table :func:`write_notices` takes."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in NOTICE_COLUMNS]
    return pa.table([pa.array(column, pa.string()) for column in columns], schema=NOTICES_SCHEMA)


_text = json.JSONEncoder(ensure_ascii=False).encode


_CONTROL = "[\\x00-\\x1f]"  # characters JSON writes as escapes of their own
_SENDER = "__sender"  # the column of senders given to NoticeTexts.adverse
_STATED = "__stated"  # and of the deadlines stated before


def _stated(rows: pa.Table) -> pa.Array | None:
    return whole(rows[_STATED]) if _STATED in rows.column_names else None


def _json_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each string as JSON text (quoted; backslash and quote escaped), as ``_text`` gives
    for strings without control characters."""
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _days_later(days: pa.Array | pa.ChunkedArray, n: int | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Dates ``n`` days after ``days`` (a number, or one per date), as ``YYYY-MM-DD``."""
    later = pc.add(days.cast(pa.int32()), n).cast(pa.int32()).cast(pa.date32())
    return later.cast(pa.string())


class NoticeTexts:
    """The notices of a batch of adverse records, written as text directly: the same JSON
    as :func:`adverse_notice` gives (keys sorted), with no dictionary per record: the
    bodies are joined column by column (Arrow), and only a batch with a control character
    in its texts, or a date outside the years 1000 to 9999, is written record by record."""

    def __init__(self, svc: Service, agency: str) -> None:
        self._svc = svc
        self._agency = _text(agency)

    def adverse(
        self,
        rows: pa.Table,
        scheme: Scheme,
        stamp: str,
        since: dt.date | None = None,
        noticed: Noticed | None = None,
        senders: pa.Array | None = None,
        stated: pa.Array | None = None,
    ) -> pa.Table:
        """The notice of each row: :data:`NOTICE_COLUMNS`. ``since``: the day the scheme
        came into force, for records recorded before it (their notice period starts then);
        ``noticed``: for such records, under which schemes they got a notice when those
        came into force (their appeal windows open then; :func:`appeal_until_column`);
        ``senders``: who each notice names as the record's sender, where not the agency
        given; ``stated``: the deadlines to contest them that notices stated before. A
        record whose notice period would end after the last day of the calendar never
        takes effect (SCHEME.md §2): it gets no notice."""
        if senders is not None:
            rows = rows.append_column(_SENDER, senders)
        if stated is not None:
            rows = rows.append_column(_STATED, stated)
        rows = self._taking_effect(rows, scheme, since)
        if not rows.num_rows:
            return NOTICES_SCHEMA.empty_table()
        if not self._columnar(rows):
            return self.adverse_rows(rows, scheme, stamp, since, noticed)
        svc, name = self._svc, scheme.scheme
        types = pc.unique(rows["type"])
        effects = pa.array([_text(effect_of(scheme, t)) for t in types.to_pylist()], pa.string())
        effect = effects.take(pc.index_in(rows["type"], value_set=types))
        rid, subject, type_ = rows["id"], rows["subject"], rows["type"]
        recorded = rows["recorded_at"]
        start = recorded if since is None else pc.max_element_wise(recorded, pa.scalar(since))
        effective_on = _days_later(start, scheme.notice_days or 0)
        deadline = appeal_until_column(svc, type_, recorded, noticed or {}, _stated(rows))
        if pc.any(pc.is_valid(deadline)).as_py():
            until = deadline.cast(pa.string())
            how = pc.binary_join_element_wise(
                '"sign in and contest record ',
                pc.replace_substring(pc.replace_substring(rid, "\\", "\\\\"), '"', '\\"'),
                " (POST /v1/me/appeals) until ",
                until,
                f"; a reviewer decides within {svc.settings.review_days} days, or the record "
                'is voided"',
                "",
            )
            how = pc.if_else(pc.is_valid(deadline), how, _text(NO_APPEAL))
        else:
            how = pa.scalar(_text(NO_APPEAL), pa.string())
        ref = pc.fill_null(_json_strings(rows["ref"]), "null")
        body = pc.binary_join_element_wise(
            '{"agency": ',
            _json_strings(rows[_SENDER]) if _SENDER in rows.column_names else self._agency,
            ', "effect": ',
            effect,
            ', "how_to_appeal": ',
            how,
            ', "notice": "adverse record", "record": {"amount": "',
            rows["amount"].cast(pa.string()),
            '", "id": ',
            _json_strings(rid),
            ', "occurred_at": "',
            rows["occurred_at"].cast(pa.string()),
            '", "recorded_at": "',
            recorded.cast(pa.string()),
            '", "ref": ',
            ref,
            ', "type": ',
            _json_strings(type_),
            f'}}, "scheme": {_text(name)}, "subject": ',
            _json_strings(subject),
            ', "takes_effect_on": "',
            effective_on,
            '"}',
            "",
        )
        n = rows.num_rows
        return pa.table(
            [
                subject,
                rid,
                pa.repeat(name, n),
                pa.repeat("adverse", n),
                pa.repeat(stamp, n),
                effective_on,
                body,
                deadline.cast(pa.string()),
            ],
            schema=NOTICES_SCHEMA,
        )

    @staticmethod
    def _taking_effect(rows: pa.Table, scheme: Scheme, since: dt.date | None) -> pa.Table:
        """``rows`` but those whose notice period ends after the last day of the calendar."""
        last = LAST_DAY - (scheme.notice_days or 0)  # the last day a notice period may start
        if not rows.num_rows or (since is not None and to_day(since) > last):
            return rows.slice(0, 0)
        if to_day(pc.max(rows["recorded_at"]).as_py()) <= last:
            return rows
        if last < to_day(pc.min(rows["recorded_at"]).as_py()):
            return rows.slice(0, 0)
        return rows.filter(pc.less_equal(rows["recorded_at"].cast(pa.int32()), last))

    @staticmethod
    def _columnar(rows: pa.Table) -> bool:
        """Whether the texts can be joined as columns (see the class)."""
        for name in ("id", "subject", "type", "ref", _SENDER):
            if name not in rows.column_names:
                continue
            if pc.any(pc.match_substring_regex(rows[name], _CONTROL)).as_py():
                return False
        for name in ("occurred_at", "recorded_at"):
            low, high = pc.min_max(rows[name]).values()
            if low.as_py() < dt.date(1000, 1, 1) or high.as_py() > dt.date(9990, 1, 1):
                return False
        return True

    def adverse_rows(
        self,
        rows: pa.Table,
        scheme: Scheme,
        stamp: str,
        since: dt.date | None = None,
        noticed: Noticed | None = None,
    ) -> pa.Table:
        """:meth:`adverse`, record by record."""
        svc, name = self._svc, scheme.scheme
        effects = {t: _text(effect_of(scheme, t)) for t in pc.unique(rows["type"]).to_pylist()}
        days: dict[dt.date, str] = {}
        out: list[NoticeRow] = []
        tail = f', "scheme": {_text(name)}, "subject": '
        columns = [rows[c].to_pylist() for c in RECORD_FIELDS]
        deadlines = appeal_until_column(
            svc, rows["type"], rows["recorded_at"], noticed or {}, _stated(rows)
        ).to_pylist()
        senders = (
            [_text(sender) for sender in rows[_SENDER].to_pylist()]
            if _SENDER in rows.column_names
            else [self._agency] * rows.num_rows
        )
        for rid, subject, type_, occurred, recorded, amount, ref, until, sender in zip(
            *columns, deadlines, senders, strict=True
        ):
            effective_on = days.get(recorded)
            if effective_on is None:
                start = recorded if since is None else max(recorded, since)
                effective = start + dt.timedelta(days=scheme.notice_days or 0)
                effective_on = days[recorded] = effective.isoformat()
            how = (
                f"sign in and contest record {rid} (POST /v1/me/appeals) until {until}; a "
                f"reviewer decides within {svc.settings.review_days} days, or the record is "
                "voided"
                if until is not None
                else NO_APPEAL
            )
            body = (
                f'{{"agency": {sender}, "effect": {effects[type_]}, "how_to_appeal": {_text(how)}, '
                f'"notice": "adverse record", "record": {{"amount": "{amount}", '
                f'"id": {_text(rid)}, "occurred_at": "{occurred}", "recorded_at": '
                f'"{recorded}", "ref": {"null" if ref is None else _text(ref)}, "type": '
                f'{_text(type_)}}}{tail}{_text(subject)}, "takes_effect_on": "{effective_on}"}}'
            )
            stated = None if until is None else until.isoformat()
            out.append((subject, rid, name, "adverse", stamp, effective_on, body, stated))
        return notice_table(out)


def write_notices(db: ServiceDB, notices: pa.Table | Sequence[NoticeRow]) -> int:
    """Write many notices (a table of :data:`NOTICE_COLUMNS`, or rows), call inside a
    transaction of ``db``; how many were new. A notice already written (the same record,
    scheme and kind: a batch sent again, or twice at once to two server processes) is not
    written again (:meth:`ServiceDB.copy_new`: on PostgreSQL one copy, and only if one of
    them exists a second pass that skips it)."""
    if not isinstance(notices, pa.Table):
        notices = notice_table(notices)
    if not notices.num_rows:
        return 0
    db.take_turn(NOTICE_WRITERS)  # numbered in the order of commits: see the module
    return db.copy_new(
        "svc_notices", notices.select(list(NOTICE_COLUMNS)), ("record_id", "scheme", "kind")
    )


_COLUMNS = "id, kind, record_id, scheme, created_at, effective_on, body"


def _notice(row: tuple[Any, ...]) -> Notice:
    return Notice(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        json.loads(row[6]),
    )


def notices_of(svc: Service, subject: str) -> list[Notice]:
    """The subject's notices, newest first. Every notice is about one of its subject's
    records: they are found by the ids of the subject's records in the ledger (the key of
    the notices by record), with no index of the notices by subject for each batch of
    notices to update."""
    ids = svc.states.records_of(subject)["id"].to_pylist()
    if not ids:
        return []
    among, params = svc.db.one_of("record_id", ids)
    rows = svc.db.query(
        f"SELECT {_COLUMNS} FROM svc_notices WHERE {among} AND subject = ? ORDER BY id DESC",
        (*params, subject),
    )
    return [_notice(r) for r in rows]


def notice_of(svc: Service, subject: str, notice_id: int) -> Notice:
    """One of the subject's notices; another's reads as not found."""
    row = svc.db.one(
        f"SELECT {_COLUMNS} FROM svc_notices WHERE id = ? AND subject = ?", (notice_id, subject)
    )
    if row is None:
        raise NotFound("not found")
    return _notice(row)


DELIVER_BATCH = 10_000


def _line(row: tuple[Any, ...]) -> str:
    """The message of one notice as the JSON line sinks write (keys sorted), from the
    notice's stored body as it is: the same text as ``json.dumps(message, sort_keys=True,
    ensure_ascii=False)``, without parsing the body again."""
    nid, subject, kind, record, scheme, created, effective, body = row
    return (
        f'{{"content": {body}, "created_at": {_text(created)}, "kind": {_text(kind)}, '
        f'"notice": {int(nid)}, "record": {_text(record)}, "scheme": {_text(scheme)}, '
        f'"takes_effect_on": {_text(effective)}, "to": {_text(subject)}}}'
    )


def _message(row: tuple[Any, ...]) -> dict[str, Any]:
    nid, subject, kind, record, scheme, created, effective, body = row
    return {
        "notice": int(nid),
        "to": subject,
        "kind": kind,
        "record": record,
        "scheme": scheme,
        "created_at": created,
        "takes_effect_on": effective,
        "content": json.loads(body),
    }


def _reached(db: ServiceDB) -> tuple[int, int, str | None]:
    """The last round: its number, the notice it reached, and its error."""
    row = db.one("SELECT id, up_to, error FROM svc_notice_rounds ORDER BY id DESC LIMIT 1")
    return (int(row[0]), int(row[1]), row[2]) if row else (0, 0, None)


def pending_notices(db: ServiceDB) -> int:
    """How many committed notices are not delivered yet."""
    row = db.one("SELECT count(*) FROM svc_notices WHERE id > ?", (_reached(db)[1],))
    return int(row[0]) if row else 0


def deliver(svc: Service, *, limit: int = DELIVER_BATCH) -> tuple[int, int]:
    """Hand pending notices to the sink, in order, at most ``limit``; (delivered, failed).
    A sink with ``send_lines`` gets the JSON lines, one per notice. A round that had
    notices to send is logged in ``svc_notice_rounds`` with the point it reached (a
    failure like the last round's, with nothing sent, is not logged again)."""
    db = svc.db
    last_round, point, last_error = _reached(db)
    # the limit is written in the statement: a parameter would let PostgreSQL keep one
    # plan for any limit, and a plan made for all rows sorts them all
    rows = db.query(
        "SELECT n.id, n.subject, n.kind, n.record_id, n.scheme, n.created_at, "
        f"n.effective_on, n.body FROM svc_notices AS n WHERE n.id > ? ORDER BY n.id "
        f"LIMIT {int(limit)}",
        (point,),
    )
    if not rows:
        return 0, 0
    sent = 0  # notices the sink took, in order: a sink sending one at a time may fail midway
    error: Exception | None = None
    try:
        send_lines = getattr(svc.sink, "send_lines", None)
        send_many = getattr(svc.sink, "send_many", None)
        if send_lines is not None:
            send_lines([_line(row) for row in rows])
            sent = len(rows)
        elif send_many is not None:
            send_many([_message(row) for row in rows])
            sent = len(rows)
        else:
            for row in rows:
                svc.sink.send(_message(row))
                sent += 1
    except Exception as exc:  # any failure of a sink leaves the notices not sent pending
        error = exc
    said = None if error is None else str(error)[:500]
    if said is not None and said != last_error:  # said once, until the failure changes
        log.warning(
            "the notice sink (%s) failed: %s; %d notice(s) stay pending",
            svc.settings.notice_sink,
            said,
            len(rows) - sent,
        )
    if sent or said != last_error:
        with db.transaction() as tx:  # only if no other round was appended meanwhile
            tx.execute(
                "INSERT INTO svc_notice_rounds (up_to, sent, failed, error, at) "
                "SELECT ?, ?, ?, ?, ? WHERE (SELECT coalesce(max(id), 0) FROM "
                "svc_notice_rounds) = ?",
                (
                    int(rows[sent - 1][0]) if sent else point,
                    sent,
                    len(rows) - sent,
                    said,
                    svc.stamp(),
                    last_round,
                ),
            )
    return sent, len(rows) - sent
