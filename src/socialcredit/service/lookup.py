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
limited per client. A lookup of a registered person is a read of their record: it needs a
declared purpose, as every lookup does, and is written to their access log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from socialcredit.engine.explain import explain
from socialcredit.ids import mask, normal_code, ric, uscc
from socialcredit.service.access import declared, log_read
from socialcredit.service.appeals import contested_ids
from socialcredit.service.core import Service
from socialcredit.service.errors import RateLimited

__all__ = ["PUBLIC_FIELDS", "PublicList", "PublicRecord", "PublicView", "lookup"]

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
    """How a code is shown when nothing is published: by its shape alone."""
    return code if uscc.is_valid(code) and not ric.is_valid(code) else mask(code, "person")


def lookup(svc: Service, code: str, purpose: str | None, client: str) -> PublicView:
    """What the public may see of ``code``; ``client`` is who asks, for the rate limit."""
    wait = svc.limiter.take(client)
    if wait:
        raise RateLimited(wait)
    why = declared(purpose)
    code = normal_code(code)
    today = svc.today()
    kind = svc.states.kind_of(code)
    lists: list[PublicList] = []
    records: list[PublicRecord] = []
    for active in svc.schemes.values():
        scheme = active.scheme
        if (
            kind is None
            or kind not in scheme.subjects
            or not any(spec.publish for spec in scheme.lists)
        ):
            continue
        states = svc.states.scored(active.id, svc.day()).states
        i = states.index(code)
        if i is None:
            continue
        member = states.raw.lists[:, i]  # the lists are read off the cached states
        lists += [
            PublicList(active.id, spec.id, spec.kind)
            for k, spec in enumerate(scheme.lists)
            if member[k] and spec.publish
        ]
        if kind == "organization":  # only an organization's records are shown: explain them
            e = explain(states, code)
            counted = {rid for rule in e.rules for rid in rule.records}
            if counted:
                contested = contested_ids(svc, code)
                for row in svc.states.records_of(code).to_pylist():
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
    if kind == "person":
        log_read(svc, code, None, why, "public lookup")
    if kind is None or not (lists or records):
        return PublicView(_display(code), False, None, today.isoformat())
    records.sort(key=lambda r: (r.occurred_at, r.type, r.scheme))
    return PublicView(
        mask(code, kind),
        True,
        kind,
        today.isoformat(),
        tuple(lists),
        tuple(records) if kind == "organization" else (),
    )
