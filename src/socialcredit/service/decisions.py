"""Operators of joint measures ask: may this subject do this action, today?

The answer is read off the cached states of the scheme (SCHEME.md section 6): ``denied``
with the measures that deny it, ``granted`` with those that grant it, or ``allowed``. A
code the scheme does not score has no state, so nothing applies to it: ``allowed``. Each
question is a read of the subject's record, so it needs a declared purpose and writes an
entry in the access log before it is answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from socialcredit.engine.explain import explain
from socialcredit.ids import normal_code
from socialcredit.service.access import declared, log_read
from socialcredit.service.appeals import contested_ids
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import Forbidden, NotFound

__all__ = ["DecisionView", "decide"]


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


def decide(
    svc: Service, who: Principal, subject: str, action: str, scheme: str, purpose: str | None
) -> DecisionView:
    """Decide ``action`` for ``subject`` under ``scheme`` at today's date."""
    if who.role not in ("operator", "auditor"):
        raise Forbidden("decisions are for the keys of operators (and auditors)")
    why = declared(purpose)
    active = svc.schemes.get(scheme)
    if active is None:
        raise NotFound(f"no active scheme {scheme!r}; active: {', '.join(sorted(svc.schemes))}")
    code = normal_code(subject)
    scored = svc.states.scored(scheme, svc.day())
    if svc.states.kind_of(code) is not None:
        log_read(svc, code, who, why, f"decision: {action} under {scheme}")
    if scored.states.index(code) is None:
        return DecisionView(code, action, scheme, scored.states.date, "allowed", True, (), False)
    decision = scored.decider.may(code, action)
    contested = False
    if decision.reasons and contested_ids(svc, code):
        counted = {rid for rule in explain(scored.states, code).rules for rid in rule.records}
        contested = bool(counted & contested_ids(svc, code))
    return DecisionView(
        code,
        action,
        scheme,
        scored.states.date,
        decision.outcome,
        decision.allowed,
        decision.reasons,
        contested,
    )
