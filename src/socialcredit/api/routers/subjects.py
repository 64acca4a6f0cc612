"""Subjects: sign in, then read their own record (``/v1/me/...``) and contest it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from socialcredit.api.deps import Subject, Svc
from socialcredit.api.errors import responses
from socialcredit.api.models import (
    AccessEntryOut,
    AppealIn,
    AppealOut,
    NoticeOut,
    OwnRecordOut,
    SchemeStateOut,
    SessionOut,
    SignInIn,
)
from socialcredit.service import appeals, notices, portal
from socialcredit.service.access import entries_of
from socialcredit.service.identity import sign_in

router = APIRouter(prefix="/v1", tags=["subjects"])

Id = Annotated[int, Path(ge=1, le=2**62)]
_READ = responses(401, 404, 422, 503)


@router.post("/session", response_model=SessionOut, responses=responses(401, 422, 503))
def post_session(body: SignInIn, svc: Svc) -> SessionOut:
    """Sign in with a credential of the identity provider (a one-time token by default)."""
    return SessionOut.model_validate(sign_in(svc, body.token))


@router.get("/me/records", response_model=list[OwnRecordOut], responses=_READ)
def my_records(svc: Svc, me: Subject) -> list[OwnRecordOut]:
    """All my records, with who sent them and whether they are contested."""
    return [OwnRecordOut.model_validate(r) for r in portal.own_records(svc, me)]


@router.get("/me/records/{record_id:path}", response_model=OwnRecordOut, responses=_READ)
def my_record(
    svc: Svc, me: Subject, record_id: Annotated[str, Path(min_length=1, max_length=192)]
) -> OwnRecordOut:
    """One of my records (an id may hold ``/``; up to 192 characters: an agency's ids
    have at most 128, the service's voiding records' ids more)."""
    return OwnRecordOut.model_validate(portal.own_record(svc, me, record_id))


@router.get("/me/states", response_model=list[SchemeStateOut], responses=_READ)
def my_states(svc: Svc, me: Subject) -> list[SchemeStateOut]:
    """My state under each active scheme, with its explanation."""
    return [SchemeStateOut.model_validate(s) for s in portal.own_states(svc, me)]


@router.get("/me/notices", response_model=list[NoticeOut], responses=_READ)
def my_notices(svc: Svc, me: Subject) -> list[NoticeOut]:
    """The notices sent to me."""
    return [NoticeOut.model_validate(n) for n in notices.notices_of(svc, me)]


@router.get("/me/notices/{notice_id}", response_model=NoticeOut, responses=_READ)
def my_notice(svc: Svc, me: Subject, notice_id: Id) -> NoticeOut:
    """One of my notices."""
    return NoticeOut.model_validate(notices.notice_of(svc, me, notice_id))


@router.get("/me/access-log", response_model=list[AccessEntryOut], responses=_READ)
def my_access_log(svc: Svc, me: Subject) -> list[AccessEntryOut]:
    """Who read my record in the last 12 months, and for what declared purpose."""
    return [AccessEntryOut.model_validate(e) for e in entries_of(svc, me)]


@router.get("/me/appeals", response_model=list[AppealOut], responses=_READ)
def my_appeals(svc: Svc, me: Subject) -> list[AppealOut]:
    """My appeals."""
    return [AppealOut.model_validate(a) for a in appeals.appeals_of(svc, me)]


@router.get("/me/appeals/{appeal_id}", response_model=AppealOut, responses=_READ)
def my_appeal(svc: Svc, me: Subject, appeal_id: Id) -> AppealOut:
    """One of my appeals."""
    return AppealOut.model_validate(appeals.appeal_of(svc, me, appeal_id))


@router.post(
    "/me/appeals",
    response_model=AppealOut,
    status_code=201,
    responses=responses(401, 404, 409, 422, 503),
)
def contest(body: AppealIn, svc: Svc, me: Subject) -> AppealOut:
    """Contest one of my records, within the scheme's appeal_days."""
    return AppealOut.model_validate(appeals.contest(svc, me, body.record, body.reason))
