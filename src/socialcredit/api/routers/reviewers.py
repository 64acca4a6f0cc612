"""Reviewers work the appeal queue; auditors read the access log and verify the ledger."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from socialcredit.api.deps import Auditor, Reviewer, Svc
from socialcredit.api.errors import responses
from socialcredit.api.models import AccessEntryOut, AppealOut, RejectIn, UpholdIn, VerifyOut
from socialcredit.ids import normal_code
from socialcredit.service import appeals
from socialcredit.service.access import declared, entries_of, log_read, plain_code

router = APIRouter(prefix="/v1", tags=["reviewers and auditors"])

Id = Annotated[int, Path(ge=1, le=2**62)]
Purpose = Annotated[str | None, Query()]  # checked by the use case: 400 when bad or missing


@router.get(
    "/appeals", response_model=list[AppealOut], responses=responses(400, 401, 403, 422, 503)
)
def get_queue(
    svc: Svc,
    who: Reviewer,
    purpose: Purpose = None,
    status: Literal["open", "upheld", "rejected", "lapsed"] = "open",
) -> list[AppealOut]:
    """The appeals of a status (open by default), oldest first. Needs a purpose."""
    return [AppealOut.model_validate(a) for a in appeals.queue(svc, who, purpose, status=status)]


@router.get(
    "/appeals/{appeal_id}",
    response_model=AppealOut,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def get_appeal(svc: Svc, who: Reviewer, appeal_id: Id, purpose: Purpose = None) -> AppealOut:
    """One appeal. Needs a purpose."""
    return AppealOut.model_validate(appeals.review(svc, who, appeal_id, purpose))


@router.post(
    "/appeals/{appeal_id}/uphold",
    response_model=AppealOut,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
)
def uphold(
    svc: Svc,
    who: Reviewer,
    appeal_id: Id,
    purpose: Purpose = None,
    body: UpholdIn | None = None,
) -> AppealOut:
    """Uphold: a voiding record is appended and the subject is notified. Needs a purpose;
    the body (a reason) is optional."""
    reason = body.reason if body is not None else ""
    return AppealOut.model_validate(
        appeals.decide_appeal(svc, who, appeal_id, "upheld", reason, purpose)
    )


@router.post(
    "/appeals/{appeal_id}/reject",
    response_model=AppealOut,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
)
def reject(
    body: RejectIn, svc: Svc, who: Reviewer, appeal_id: Id, purpose: Purpose = None
) -> AppealOut:
    """Reject with a reason, which the subject is sent. Needs a purpose."""
    return AppealOut.model_validate(
        appeals.decide_appeal(svc, who, appeal_id, "rejected", body.reason, purpose)
    )


@router.get(
    "/access-log", response_model=list[AccessEntryOut], responses=responses(400, 401, 403, 422, 503)
)
def get_access_log(
    svc: Svc,
    who: Auditor,
    subject: Annotated[str, Query(min_length=1, max_length=64)],
    purpose: Purpose = None,
) -> list[AccessEntryOut]:
    """The access log of one subject (12 months). Needs a purpose; is itself logged."""
    why = declared(purpose)
    code = plain_code(normal_code(subject))
    entries = entries_of(svc, code)
    log_read(svc, code, who, why, "access log")
    return [AccessEntryOut.model_validate(e) for e in entries]


@router.get("/ledger/verify", response_model=VerifyOut, responses=responses(401, 403, 503))
def verify(svc: Svc, who: Auditor) -> VerifyOut:
    """Recompute the ledger's hash chain and report the first bad entry."""
    return VerifyOut.model_validate(svc.ledger.read(lambda ledger: ledger.verify()))
