"""Webhooks: operators subscribe to changes of a published list instead of polling.

An operator's key subscribes (:func:`subscribe`) to one list of one active scheme (the
dishonest-debtor list, say), with the URL to call and a declared purpose; the answer
carries a secret, shown once. From then on, whenever the members of the list change (a
record took effect, a record was voided, a day turned), :func:`watch_lists` writes one
*event* naming the codes added and removed, and one *delivery* per live subscription, in
one transaction with the new membership and with an access-log entry for every subject
named (the subscription's purpose, as for any other read). Events go out through the
outbox like notices: :func:`deliver_webhooks` POSTs each pending delivery, signed, and
marks it delivered on a 2xx answer; a failure is retried after 2, 4, 8, ... seconds (at
most an hour apart). A delivery marked delivered is never sent again.

Signature: ``Socialcredit-Signature: t=UNIX_SECONDS,v1=HEX``, where ``HEX`` is the
HMAC-SHA256, keyed with the subscription's secret, of ``f"{t}.{body}"``. A receiver
recomputes it, compares in constant time, and refuses a ``t`` more than five minutes from
its clock, so a captured request cannot be replayed later. ``Socialcredit-Event`` carries
the event id: delivery is at least once (a crash after the receiver answered and before
the delivery was marked sends it again), and the id lets the receiver drop a repeat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from socialcredit.service.access import declared
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import Forbidden, InvalidRequest, NotFound

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = [
    "SIGNATURE_HEADER",
    "Subscription",
    "deliver_webhooks",
    "post_signed",
    "sign",
    "subscribe",
    "subscriptions_of",
    "unsubscribe",
    "watch_lists",
]

SIGNATURE_HEADER = "Socialcredit-Signature"
EVENT_HEADER = "Socialcredit-Event"
MAX_BACKOFF = 3600
TIMEOUT_SECONDS = 5.0
BATCH = 100
POSTERS = 8  # subscriptions posted to at once
ROUND_SECONDS = 2.0  # after them a round starts no new post


@dataclass(frozen=True)
class Subscription:
    """A subscription; ``secret`` only in the answer that created it."""

    id: int
    scheme: str
    list: str
    url: str
    purpose: str
    created_at: str
    secret: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _operator(who: Principal) -> None:
    if who.role != "operator":
        raise Forbidden("subscriptions are for the keys of operators")


def subscribe(
    svc: Service, who: Principal, scheme: str, list_id: str, url: str, purpose: str | None
) -> Subscription:
    """Subscribe ``who`` to the changes of a published list; the secret is in the answer."""
    _operator(who)
    why = declared(purpose)
    active = svc.schemes.get(scheme)
    if active is None:
        raise NotFound(f"no active scheme {scheme!r}")
    spec = next((lst for lst in active.scheme.lists if lst.id == list_id), None)
    if spec is None or not spec.publish:
        raise NotFound(f"scheme {scheme!r} has no published list {list_id!r}")
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise InvalidRequest("the url must be an http:// or https:// URL")
    secret = "scw_" + secrets.token_urlsafe(32)
    stamp = svc.stamp()
    members = _members(svc, scheme, list_id)
    with svc.db.transaction() as db:
        first = db.one(
            "SELECT 1 FROM svc_subscriptions WHERE scheme = ? AND list = ?", (scheme, list_id)
        )
        new = db.insert(
            "INSERT INTO svc_subscriptions (owner, scheme, list, url, purpose, secret, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (who.name, scheme, list_id, url, why, secret, stamp),
        )
        if first is None:  # the members now are where the changes start from
            db.many(
                "INSERT INTO svc_list_members (scheme, list, subject) VALUES (?, ?, ?)",
                [(scheme, list_id, c) for c in sorted(members)],
            )
    return Subscription(new, scheme, list_id, url, why, stamp, secret)


def subscriptions_of(svc: Service, who: Principal) -> list[Subscription]:
    """The live subscriptions of ``who`` (without their secrets)."""
    _operator(who)
    rows = svc.db.query(
        "SELECT id, scheme, list, url, purpose, created_at FROM svc_subscriptions "
        "WHERE owner = ? AND deleted_at IS NULL ORDER BY id",
        (who.name,),
    )
    return [Subscription(int(r[0]), *map(str, r[1:])) for r in rows]


def unsubscribe(svc: Service, who: Principal, subscription: int) -> None:
    """End a subscription of ``who``; nothing is delivered to it any more."""
    _operator(who)
    n = svc.db.execute(
        "UPDATE svc_subscriptions SET deleted_at = ? WHERE id = ? AND owner = ? "
        "AND deleted_at IS NULL",
        (svc.stamp(), subscription, who.name),
    )
    if not n:
        raise NotFound("not found")


def _members(svc: Service, scheme: str, list_id: str) -> set[str]:
    k = [lst.id for lst in svc.schemes[scheme].scheme.lists].index(list_id)
    return svc.states.current(svc.day()).scheme(scheme).members(k)


def watch_lists(svc: Service) -> int:
    """Compare the members of every subscribed list with those last announced, and write
    an event (with its deliveries and access-log entries) for each list that changed;
    how many events were written."""
    watched = svc.db.query(
        "SELECT DISTINCT scheme, list FROM svc_subscriptions WHERE deleted_at IS NULL"
    )
    written = 0
    for scheme, list_id in watched:
        if scheme not in svc.schemes:
            continue
        now = _members(svc, str(scheme), str(list_id))
        with svc.db.transaction() as db:
            if db.dialect == "postgres":  # one process at a time compares a list
                db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"{scheme}/{list_id}",))
            known = db.query(
                "SELECT subject FROM svc_list_members WHERE scheme = ? AND list = ?",
                (scheme, list_id),
            )
            before = {str(r[0]) for r in known}
            added, removed = sorted(now - before), sorted(before - now)
            if not added and not removed:
                continue
            db.many(
                "INSERT INTO svc_list_members (scheme, list, subject) VALUES (?, ?, ?)",
                [(scheme, list_id, c) for c in added],
            )
            db.many(
                "DELETE FROM svc_list_members WHERE scheme = ? AND list = ? AND subject = ?",
                [(scheme, list_id, c) for c in removed],
            )
            written += _event(svc, db, str(scheme), str(list_id), added, removed)
    return written


def _event(
    svc: Service, db: Any, scheme: str, list_id: str, added: list[str], removed: list[str]
) -> int:
    stamp = svc.stamp()
    body = {
        "scheme": scheme,
        "list": list_id,
        "at": svc.today().isoformat(),
        "added": added,
        "removed": removed,
    }
    event = db.insert(
        "INSERT INTO svc_events (scheme, list, created_at, body) VALUES (?, ?, ?, ?)",
        (scheme, list_id, stamp, json.dumps(body, ensure_ascii=False, sort_keys=True)),
    )
    subs = db.query(
        "SELECT id, owner, purpose FROM svc_subscriptions WHERE scheme = ? AND list = ? "
        "AND deleted_at IS NULL",
        (scheme, list_id),
    )
    for sub, owner, purpose in subs:
        db.execute(
            "INSERT INTO svc_deliveries (event_id, subscription_id, created_at, next_at) "
            "VALUES (?, ?, ?, ?)",
            (event, sub, stamp, stamp),
        )
        db.many(
            "INSERT INTO svc_access_log (at, subject, actor, role, purpose, what) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    stamp,
                    code,
                    owner,
                    "operator",
                    purpose,
                    f"webhook: {scheme}/{list_id} event {event}",
                )
                for code in (*added, *removed)
            ],
        )
    return 1


def deliver_webhooks(svc: Service) -> tuple[int, int]:
    """Look for list changes, then POST the deliveries that are due; (delivered, failed).

    The deliveries of one subscription go in order, one after the other, and stop at its
    first failure: the later ones wait, unattempted, until the failed one is retried and
    delivered (a receiver that is down costs one timeout a round, not one per delivery,
    and gets the events in order). Those of different subscriptions go at once, up to
    :data:`POSTERS`, each marked as soon as its subscription's turn ends; a subscription
    starts no post after :data:`ROUND_SECONDS` of the round (the rest wait for the next),
    so that a slow receiver holds up the others by one post at most."""
    watch_lists(svc)
    now = svc.stamp()
    rows = svc.db.query(
        "SELECT d.id, d.event_id, d.attempts, e.body, s.url, s.secret, s.id "
        "FROM svc_deliveries AS d JOIN svc_events AS e ON e.id = d.event_id "
        "JOIN svc_subscriptions AS s ON s.id = d.subscription_id WHERE d.delivered_at IS NULL "
        "AND d.next_at <= ? AND s.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM "
        "svc_deliveries AS p WHERE p.subscription_id = d.subscription_id AND p.id < d.id "
        "AND p.delivered_at IS NULL AND p.next_at > ?) ORDER BY d.id LIMIT ?",
        (now, now, BATCH),
    )
    queues: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        queues.setdefault(int(row[6]), []).append(row[:6])
    if not queues:
        return 0, 0
    done = failed = 0
    deadline = time.monotonic() + ROUND_SECONDS
    with ThreadPoolExecutor(min(POSTERS, len(queues)), "webhook-post") as pool:
        turns = [pool.submit(_post_in_order, queue, deadline) for queue in queues.values()]
        for turn in as_completed(turns):
            d, f = _mark(svc, turn.result())
            done, failed = done + d, failed + f
    return done, failed


def _mark(svc: Service, posted: list[tuple[Any, Any, str | None]]) -> tuple[int, int]:
    """Mark the deliveries posted (delivered, or due again after a back-off); how many of
    each."""
    done = failed = 0
    for delivery, attempts, error in posted:
        if error is None:
            svc.db.execute(
                "UPDATE svc_deliveries SET attempts = attempts + 1, delivered_at = ?, "
                "last_error = NULL WHERE id = ?",
                (svc.stamp(), delivery),
            )
            done += 1
        else:
            wait = min(2 ** (int(attempts) + 1), MAX_BACKOFF)
            later = (svc.now() + dt.timedelta(seconds=wait)).astimezone(dt.UTC)
            svc.db.execute(
                "UPDATE svc_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? "
                "WHERE id = ?",
                (later.isoformat(timespec="seconds"), error[:500], delivery),
            )
            failed += 1
    return done, failed


def _post_in_order(
    queue: list[tuple[Any, ...]], deadline: float
) -> list[tuple[Any, Any, str | None]]:
    """POST one subscription's deliveries in order, up to its first failure, starting none
    after ``deadline`` (but the first); (delivery, attempts, error) of each one tried."""
    out: list[tuple[Any, Any, str | None]] = []
    for delivery, event, attempts, body, url, secret in queue:
        if out and time.monotonic() > deadline:
            break
        payload = json.dumps(
            {"event": int(event), **json.loads(body)}, ensure_ascii=False, sort_keys=True
        ).encode()
        error = post_signed(str(url), str(secret), int(event), payload)
        out.append((delivery, attempts, error))
        if error is not None:
            break
    return out


def post_signed(url: str, secret: str, event: int, payload: bytes) -> str | None:
    """POST one signed payload; None when the receiver answered 2xx, else the error."""
    request = urllib.request.Request(url, data=payload, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header(SIGNATURE_HEADER, sign(secret, int(time.time()), payload))
    request.add_header(EVENT_HEADER, str(event))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            return None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError, http.client.HTTPException) as exc:  # no HTTP answer
        return f"{type(exc).__name__}: {exc}"
