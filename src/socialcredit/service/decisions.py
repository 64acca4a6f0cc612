"""Operators of joint measures ask: may this subject do this action, today?

The answer is read off the cached states of the scheme (SCHEME.md section 6): ``denied``
with the measures that deny it, ``granted`` with those that grant it, or ``allowed``. A
code the scheme does not score has no state, so nothing applies to it: ``allowed``. Each
question is a read of the subject's record, so it needs a declared purpose and writes an
entry in the access log before it is answered.

:func:`decide` does it all, blocking; the HTTP API answers the same question in three
steps that never block its event loop (:func:`ask`, the entry written by
:meth:`~socialcredit.service.access.AccessLogWriter.write` and awaited, :func:`answer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from socialcredit.engine.explain import explain
from socialcredit.service.access import WAIT_SECONDS, Entry, declared, entry
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import Forbidden, NotFound
from socialcredit.service.states import Snapshot, code_of

__all__ = ["Asked", "DecisionView", "answer", "ask", "decide"]


@dataclass(frozen=True)
class DecisionView:
    """The answer, with the measures behind it and whether it rests on a contested record."""

    subject: str
    action: str
    scheme: str
    at: str
    outcome: str
    allowed: bool
    reasons: tuple[str, ...]
    contested: bool


@dataclass(frozen=True)
class Asked:
    """A question that may be answered: who asks, about whom, and the entry it writes in
    the access log before it is answered (None for a code that is not registered)."""

    code: str
    action: str
    scheme: str
    entry: Entry | None


def ask(
    svc: Service,
    snap: Snapshot,
    who: Principal,
    subject: str,
    action: str,
    scheme: str,
    purpose: str | None,
) -> Asked:
    """Check the question (role, purpose, scheme) against the snapshot; nothing blocks."""
    if who.role not in ("operator", "auditor"):
        raise Forbidden("decisions are for the keys of operators (and auditors)")
    why = declared(purpose)
    if scheme not in svc.schemes:
        raise NotFound(f"no active scheme {scheme!r}; active: {', '.join(sorted(svc.schemes))}")
    code = code_of(subject)
    logged = None
    if snap.kind_of(code) is not None:
        logged = entry(svc, code, who, why, f"decision: {action} under {scheme}")
    return Asked(code, action, scheme, logged)


def answer(
    snap: Snapshot, asked: Asked, contested: frozenset[str] | None, *, may_block: bool = True
) -> DecisionView | None:
    """The answer to a checked question, once its entry is durable. ``contested`` are the
    subject's records under an open appeal, None when they are not known without reading
    the database. Without ``may_block``, the answer is None when it needs what is not at
    hand (the open appeals, or an explanation): ask again off the event loop."""
    view = snap.scheme(asked.scheme)
    decision = view.decide(asked.code, asked.action)
    if decision is None:
        return DecisionView(
            asked.code, asked.action, asked.scheme, view.date, "allowed", True, (), False
        )
    flagged = False
    if decision.reasons:
        if contested is None:
            return None
        if contested:
            if not may_block:
                return None
            states = view.states_of(asked.code)
            if states is None:
                return None
            counted = {rid for rule in explain(states, asked.code).rules for rid in rule.records}
            flagged = bool(counted & contested)
    return DecisionView(
        asked.code,
        asked.action,
        asked.scheme,
        view.date,
        decision.outcome,
        decision.allowed,
        decision.reasons,
        flagged,
    )


def decide(
    svc: Service, who: Principal, subject: str, action: str, scheme: str, purpose: str | None
) -> DecisionView:
    """Decide ``action`` for ``subject`` under ``scheme`` at today's date."""
    if who.role not in ("operator", "auditor"):
        raise Forbidden("decisions are for the keys of operators (and auditors)")
    declared(purpose)
    if scheme not in svc.schemes:
        raise NotFound(f"no active scheme {scheme!r}; active: {', '.join(sorted(svc.schemes))}")
    snap = svc.states.current(svc.day())
    asked = ask(svc, snap, who, subject, action, scheme, purpose)
    if asked.entry is not None:
        svc.access_log.write(asked.entry).result(WAIT_SECONDS)
    view = answer(snap, asked, svc.states.contested(asked.code))
    assert view is not None
    return view
