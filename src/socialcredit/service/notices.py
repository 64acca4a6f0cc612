"""Notices: every adverse record is announced to its subject before it takes effect.

When an agency's record of an adverse type (under an active scheme that scores its
subject's kind) enters the ledger, the service writes a notice naming the agency, the
record, its effect under the scheme, the day it takes effect (``recorded_at +
notice_days``) and how and until when to appeal. Decisions on appeals write notices too.
Notices go out through an outbox: each notice is written, in the same transaction, with an
outbox row; :func:`deliver` hands pending rows to the sink and marks them delivered, and a
failed delivery stays pending for the next round. The notices table is append-only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.engine.conditions import condition_parts
from socialcredit.records import RECORD_FIELDS
from socialcredit.scheme.model import Condition, RuleCondition, Scheme
from socialcredit.service.core import Service
from socialcredit.service.errors import NotFound
from socialcredit.store.service_db import ServiceDB

__all__ = [
    "DELIVER_BATCH",
    "NOTICES_SCHEMA",
    "NOTICE_COLUMNS",
    "Notice",
    "NoticeTexts",
    "adverse_notice",
    "deliver",
    "notice_of",
    "notice_table",
    "notices_of",
    "write_notice",
    "write_notices",
]


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
    reading = {r.id for r in scheme.rules if type_name in r.types}
    lists = [lst.id for lst in scheme.lists if _mentions(lst.when, reading)]
    text = "; ".join(parts) or "counts for no rule"
    if lists:
        text += "; it may place the subject on the list(s) " + ", ".join(lists)
    return text


def _mentions(condition: Condition, rules: set[str]) -> bool:
    """Whether a condition reads the measure of one of ``rules`` (lists read through
    earlier lists are not followed: the notice names the lists the record feeds directly)."""
    if isinstance(condition, RuleCondition) and condition.rule in rules:
        return True
    return any(_mentions(part, rules) for part in condition_parts(condition))


def adverse_notice(
    svc: Service, *, agency: str, record: dict[str, Any], scheme: Scheme
) -> tuple[str, dict[str, Any]]:
    """The effective day and body of the notice of an adverse record under a scheme."""
    recorded = dt.date.fromisoformat(str(record["recorded_at"]))
    effective = recorded + dt.timedelta(days=scheme.notice_days or 0)
    appeal_until = recorded + dt.timedelta(days=scheme.appeal_days or 0)
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
            f"{appeal_until.isoformat()}; a reviewer decides within "
            f"{svc.settings.review_days} days, or the record is voided"
            if scheme.appeal_days
            else "this scheme allows no appeal"
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
    """Write a notice and its outbox row, unless that notice exists; whether it was new.
    Call inside a transaction of ``db``."""
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
    if row is None:
        return False
    db.execute(
        "INSERT INTO svc_outbox (notice_id, created_at) VALUES (?, ?)", (int(row[0]), created_at)
    )
    return True


NoticeRow = tuple[str, str, str, str, str, str, str]
NOTICE_COLUMNS = ("subject", "record_id", "scheme", "kind", "created_at", "effective_on", "body")
NOTICES_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in NOTICE_COLUMNS])


def notice_table(rows: Sequence[NoticeRow]) -> pa.Table:
    """Notices given as rows, as the table :func:`write_notices` takes."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in NOTICE_COLUMNS]
    return pa.table([pa.array(column, pa.string()) for column in columns], schema=NOTICES_SCHEMA)


_text = json.JSONEncoder(ensure_ascii=False).encode


_CONTROL = "[\\x00-\\x1f]"  # characters JSON writes as escapes of their own


def _json_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each string as JSON text (quoted; backslash and quote escaped), as ``_text`` gives
    for strings without control characters."""
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _days_later(days: pa.Array | pa.ChunkedArray, n: int) -> pa.Array | pa.ChunkedArray:
    """Dates ``n`` days after ``days``, as ``YYYY-MM-DD``."""
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

    def adverse(self, rows: pa.Table, scheme: Scheme, stamp: str) -> pa.Table:
        """The notice of each row: :data:`NOTICE_COLUMNS`."""
        if not rows.num_rows:
            return NOTICES_SCHEMA.empty_table()
        if not self._columnar(rows):
            return self.adverse_rows(rows, scheme, stamp)
        svc, name = self._svc, scheme.scheme
        types = pc.unique(rows["type"])
        effects = pa.array([_text(effect_of(scheme, t)) for t in types.to_pylist()], pa.string())
        effect = effects.take(pc.index_in(rows["type"], value_set=types))
        rid, subject, type_ = rows["id"], rows["subject"], rows["type"]
        recorded = rows["recorded_at"]
        effective_on = _days_later(recorded, scheme.notice_days or 0)
        if scheme.appeal_days:
            until = _days_later(recorded, scheme.appeal_days)
            how = pc.binary_join_element_wise(
                '"sign in and contest record ',
                pc.replace_substring(pc.replace_substring(rid, "\\", "\\\\"), '"', '\\"'),
                " (POST /v1/me/appeals) until ",
                until,
                f"; a reviewer decides within {svc.settings.review_days} days, or the record "
                'is voided"',
                "",
            )
        else:
            how = pa.scalar(_text("this scheme allows no appeal"), pa.string())
        ref = pc.fill_null(_json_strings(rows["ref"]), "null")
        body = pc.binary_join_element_wise(
            f'{{"agency": {self._agency}, "effect": ',
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
            ],
            schema=NOTICES_SCHEMA,
        )

    @staticmethod
    def _columnar(rows: pa.Table) -> bool:
        """Whether the texts can be joined as columns (see the class)."""
        for name in ("id", "subject", "type", "ref"):
            if pc.any(pc.match_substring_regex(rows[name], _CONTROL)).as_py():
                return False
        for name in ("occurred_at", "recorded_at"):
            low, high = pc.min_max(rows[name]).values()
            if low.as_py() < dt.date(1000, 1, 1) or high.as_py() > dt.date(9990, 1, 1):
                return False
        return True

    def adverse_rows(self, rows: pa.Table, scheme: Scheme, stamp: str) -> pa.Table:
        """:meth:`adverse`, record by record."""
        svc, name = self._svc, scheme.scheme
        effects = {t: _text(effect_of(scheme, t)) for t in pc.unique(rows["type"]).to_pylist()}
        days: dict[dt.date, tuple[str, str]] = {}
        out: list[NoticeRow] = []
        head = f'{{"agency": {self._agency}, "effect": '
        tail = f', "scheme": {_text(name)}, "subject": '
        columns = [rows[c].to_pylist() for c in RECORD_FIELDS]
        for rid, subject, type_, occurred, recorded, amount, ref in zip(*columns, strict=True):
            found = days.get(recorded)
            if found is None:
                effective = recorded + dt.timedelta(days=scheme.notice_days or 0)
                until = recorded + dt.timedelta(days=scheme.appeal_days or 0)
                found = days[recorded] = (effective.isoformat(), until.isoformat())
            effective_on, until = found
            how = (
                f"sign in and contest record {rid} (POST /v1/me/appeals) until {until}; a "
                f"reviewer decides within {svc.settings.review_days} days, or the record is "
                "voided"
                if scheme.appeal_days
                else "this scheme allows no appeal"
            )
            body = (
                f'{head}{effects[type_]}, "how_to_appeal": {_text(how)}, '
                f'"notice": "adverse record", "record": {{"amount": "{amount}", '
                f'"id": {_text(rid)}, "occurred_at": "{occurred}", "recorded_at": '
                f'"{recorded}", "ref": {"null" if ref is None else _text(ref)}, "type": '
                f'{_text(type_)}}}{tail}{_text(subject)}, "takes_effect_on": "{effective_on}"}}'
            )
            out.append((subject, rid, name, "adverse", stamp, effective_on, body))
        return notice_table(out)


# The outbox rows of the notices numbered after a point (parameters: the time, and the
# point twice) that have none (SQLite; on PostgreSQL write_notices numbers the notices
# itself): another transaction may have given one to a notice of its own numbered after
# that point. The outbox rows after the point are read once, into a hash, so the plan
# stays linear even when the planner believes the outbox empty (PostgreSQL, with
# statistics taken before it filled, chose for NOT EXISTS a nested loop over a scan of the
# whole outbox for each notice: 30 s for a batch of 100,000).
OUTBOX_NEW = (
    "INSERT INTO svc_outbox (notice_id, created_at) SELECT n.id, ? FROM svc_notices AS n "
    "WHERE n.id > ? AND n.id NOT IN "
    "(SELECT o.notice_id FROM svc_outbox AS o WHERE o.notice_id > ?)"
)


def write_notices(db: ServiceDB, notices: pa.Table | Sequence[NoticeRow], stamp: str) -> int:
    """Write many notices (a table of :data:`NOTICE_COLUMNS`, or rows) and their outbox
    rows (call inside a transaction of ``db``); how many were new."""
    if not isinstance(notices, pa.Table):
        notices = notice_table(notices)
    if not notices.num_rows:
        return 0
    notices = notices.select(list(NOTICE_COLUMNS))
    if db.dialect == "postgres":
        # numbered here, from the table's sequence, so that the outbox rows are copied
        # too (the insert-select of OUTBOX_NEW took longer than the notices' own copy)
        row = db.one("SELECT pg_get_serial_sequence('svc_notices', 'id')")
        assert row is not None
        numbers = pa.array(
            [
                int(n)
                for (n,) in db.query(
                    "SELECT nextval(?::regclass) FROM generate_series(1, ?)",
                    (row[0], notices.num_rows),
                )
            ],
            pa.int64(),
        )
        db.copy_table("svc_notices", notices.add_column(0, "id", numbers))
        db.copy_table(
            "svc_outbox",
            pa.table({"notice_id": numbers, "created_at": pa.repeat(stamp, len(numbers))}),
        )
        return len(numbers)
    row = db.one("SELECT coalesce(max(id), 0) FROM svc_notices")
    before = int(row[0]) if row else 0
    db.many(
        "INSERT INTO svc_notices (subject, record_id, scheme, kind, created_at, "
        "effective_on, body) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (record_id, scheme, kind) DO NOTHING",
        list(zip(*(notices[name].to_pylist() for name in NOTICE_COLUMNS), strict=True)),
    )
    return db.execute(OUTBOX_NEW, (stamp, before, before))


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
    """The subject's notices, newest first."""
    rows = svc.db.query(
        f"SELECT {_COLUMNS} FROM svc_notices WHERE subject = ? ORDER BY id DESC", (subject,)
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
    """The message of one outbox row as the JSON line sinks write (keys sorted), from the
    notice's stored body as it is: the same text as ``json.dumps(message, sort_keys=True,
    ensure_ascii=False)``, without parsing the body again."""
    _, nid, subject, kind, record, scheme, created, effective, body = row
    return (
        f'{{"content": {body}, "created_at": {_text(created)}, "kind": {_text(kind)}, '
        f'"notice": {int(nid)}, "record": {_text(record)}, "scheme": {_text(scheme)}, '
        f'"takes_effect_on": {_text(effective)}, "to": {_text(subject)}}}'
    )


def _message(row: tuple[Any, ...]) -> dict[str, Any]:
    _, nid, subject, kind, record, scheme, created, effective, body = row
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


def deliver(svc: Service, *, limit: int = DELIVER_BATCH) -> tuple[int, int]:
    """Hand pending notices to the sink, oldest first, at most ``limit``; (delivered,
    failed). A sink with ``send_lines`` gets the JSON lines, one per notice."""
    # The pending rows taken first, then joined: PostgreSQL otherwise joined every pending
    # row to its notice and sorted them all (on disk) to keep the first (0.23 s a round
    # with 170,000 pending, instead of 0.05). The limit is written in the statement, not
    # a parameter: the plan PostgreSQL keeps for a prepared statement, made for any limit,
    # joined and sorted them all again (5 s a round with 300,000 pending).
    rows = svc.db.query(
        "SELECT o.id, n.id, n.subject, n.kind, n.record_id, n.scheme, n.created_at, "
        "n.effective_on, n.body FROM (SELECT id, notice_id FROM svc_outbox "
        f"WHERE delivered_at IS NULL ORDER BY id LIMIT {int(limit)}) AS o "
        "JOIN svc_notices AS n ON n.id = o.notice_id ORDER BY o.id"
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
    stamp = svc.stamp()
    with svc.db.transaction() as db:
        if sent:  # one statement for them all, not one per row
            among, params = db.one_of("id", [int(row[0]) for row in rows[:sent]], "bigint")
            db.execute(
                f"UPDATE svc_outbox SET attempts = attempts + 1, delivered_at = ? WHERE {among}",
                (stamp, *params),
            )
        if error is not None:
            among, params = db.one_of("id", [int(row[0]) for row in rows[sent:]], "bigint")
            db.execute(
                f"UPDATE svc_outbox SET attempts = attempts + 1, last_error = ? WHERE {among}",
                (str(error)[:500], *params),
            )
    return sent, len(rows) - sent
