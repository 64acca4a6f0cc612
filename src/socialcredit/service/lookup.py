"""The public lookup: what anyone may see of a code, and nothing more.

* An organization: the published lists it is on and its records that count today under
  an active scheme that publishes lists (records past their window, ended or voided, or
  still in their notice period are never shown), each with its type, date and amount and
  whether it is contested.
* A person: only the published lists that name them, with the code masked.
* Anything else -- a code not registered, a person on no published list, an organization
  with nothing published -- gets one and the same answer, which depends on the shape of the
  code alone, so the lookup cannot tell who is in the registry.

Every field of an answer is on an allow-list (:data:`PUBLIC_FIELDS`). Lookups are rate
limited per client. Every lookup needs a declared purpose and is written to the access log
under the code asked about, durably, before it is answered: for a registered person it is
a read of their record; for any other code it is written all the same, so that the time
of the answer, like its content, does not tell who is registered (a person registered
later finds the lookups of their code made before).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from socialcredit.engine.explain import explain
from socialcredit.ids import mask, mask_unknown
from socialcredit.service.access import WAIT_SECONDS, Entry, declared, entry, plain_code
from socialcredit.service.core import Service
from socialcredit.service.errors import RateLimited
from socialcredit.service.schemes import ActiveScheme
from socialcredit.service.states import Snapshot, code_of

__all__ = [
    "PUBLIC_FIELDS",
    "Looked",
    "PublicList",
    "PublicRecord",
    "PublicView",
    "look",
    "lookup",
    "shown",
]

PUBLIC_FIELDS = {
    "view": ("code", "published", "kind", "lists", "records", "at"),
    "list": ("scheme", "list", "kind"),
    "record": ("type", "occurred_at", "amount", "scheme", "contested"),
}


@dataclass(frozen=True)
class PublicList:
    """A published list the subject is on."""

    scheme: str
    list: str
    kind: str


@dataclass(frozen=True)
class PublicRecord:
    """An organization's record as the public sees it (no id, no agency)."""

    type: str
    occurred_at: str
    amount: int
    scheme: str
    contested: bool


@dataclass(frozen=True)
class PublicView:
    """The answer of the lookup."""

    code: str
    published: bool
    kind: str | None
    at: str
    lists: tuple[PublicList, ...] = field(default=())
    records: tuple[PublicRecord, ...] = field(default=())


def _display(code: str) -> str:
    """How a code is shown when nothing is published: by its shape alone (and the date:
    a resident number's birth date must be past). Remembered for the codes asked about
    most: the two checks cost more than the rest of a lookup."""
    key = (code, dt.date.today())
    shown = _DISPLAYED.get(key)
    if shown is None:
        shown = mask_unknown(code)
        if len(_DISPLAYED) >= REMEMBERED:
            _DISPLAYED.clear()
        _DISPLAYED[key] = shown
    return shown


_DISPLAYED: dict[tuple[str, dt.date], str] = {}


@dataclass(frozen=True)
class Looked:
    """A lookup that may be answered: the code in normal form, its kind (None when not
    registered), and the entry it writes in the access log first."""

    code: str
    kind: str | None
    entry: Entry


def look(svc: Service, snap: Snapshot, code: str, purpose: str | None) -> Looked:
    """Check a lookup (its purpose) against the snapshot, after the rate limit."""
    why = declared(purpose)
    code = plain_code(code_of(code))
    kind = snap.kind_of(code)
    return Looked(code, kind, entry(svc, code, None, why, "public lookup"))


def _published(svc: Service, kind: str | None) -> list[ActiveScheme]:
    """The active schemes that score ``kind`` and publish a list."""
    return [
        a
        for a in svc.schemes.values()
        if kind is not None
        and kind in a.scheme.subjects
        and any(spec.publish for spec in a.scheme.lists)
    ]


REMEMBERED = 100_000  # organizations' answers kept at most


def shown(
    svc: Service, snap: Snapshot, looked: Looked, today: str, *, may_block: bool = True
) -> PublicView | None:
    """What the public sees of a checked lookup, once its entry is durable. Without
    ``may_block``, None when the answer needs the ledger (an organization's records, not
    remembered for this ledger mark, day and appeals mark)."""
    if looked.kind != "organization" or not _published(svc, looked.kind):
        return _shown(svc, snap, looked, today)
    marks = svc.watch.marks() if may_block else svc.watch.fresh()
    if marks is None:
        return None
    key = ("public", snap.mark, marks.appeals, today, looked.code)
    found = svc.answers.get(key)
    if isinstance(found, PublicView):
        return found
    if not may_block:
        return None
    view = _shown(svc, snap, looked, today)
    if len(svc.answers) >= REMEMBERED:
        svc.answers.clear()
    svc.answers[key] = view
    return view


def _shown(svc: Service, snap: Snapshot, looked: Looked, today: str) -> PublicView:
    code, kind = looked.code, looked.kind
    lists: list[PublicList] = []
    records: list[PublicRecord] = []
    rows: list[dict[str, Any]] | None = None
    for active in _published(svc, kind):
        scheme = active.scheme
        view = snap.scheme(active.id)
        member = view.lists(code)  # the lists are read off the cached states
        if member is None:
            continue
        lists += [
            PublicList(active.id, spec.id, spec.kind)
            for k, spec in enumerate(scheme.lists)
            if member[k] and spec.publish
        ]
        if kind == "organization":  # only an organization's records are shown: explain them
            if rows is None:
                table = svc.states.records_of(code)
                rows = table.to_pylist()
            states = view.states_of(code, table)
            assert states is not None
            e = explain(states, code)
            counted = {rid for rule in e.rules for rid in rule.records}
            if counted:
                contested = svc.states.contested(code)
                for row in rows:
                    if row["id"] in counted:
                        records.append(
                            PublicRecord(
                                row["type"],
                                row["occurred_at"].isoformat(),
                                int(row["amount"]),
                                active.id,
                                row["id"] in contested,
                            )
                        )
    if kind is None or not (lists or records):
        return PublicView(_display(code), False, None, today)
    records.sort(key=lambda r: (r.occurred_at, r.type, r.scheme))
    return PublicView(
        mask(code, kind),
        True,
        kind,
        today,
        tuple(lists),
        tuple(records) if kind == "organization" else (),
    )


def lookup(svc: Service, code: str, purpose: str | None, client: str) -> PublicView:
    """What the public may see of ``code``; ``client`` is who asks, for the rate limit."""
    wait = svc.limiter.take(client)
    if wait:
        raise RateLimited(wait)
    declared(purpose)
    today = svc.today().isoformat()
    snap = svc.states.current(svc.day())
    looked = look(svc, snap, code, purpose)
    svc.access_log.write(looked.entry).result(WAIT_SECONDS)
    view = shown(svc, snap, looked, today)
    assert view is not None
    return view
