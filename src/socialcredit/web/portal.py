"""The subject's portal: sign in with a one-time token, read one's whole record, state,
notices, appeals and access log, and contest a record.

Everything shown is the signed-in subject's own, taken from the session and never from the
request; an id of someone else's record is refused exactly as an id that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import HTMLResponse, Response

from socialcredit.service import appeals, notices, portal
from socialcredit.service.access import entries_of
from socialcredit.service.core import Service
from socialcredit.service.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from socialcredit.service.identity import sign_in, subject_of_session
from socialcredit.web import render
from socialcredit.web.render import (
    FORGED,
    PageRoute,
    Refused,
    Sessions,
    Svc,
    Web,
    page,
    redirect,
)
from socialcredit.web.sessions import WebSession

__all__ = ["router", "signed_in_subject"]

router = APIRouter(prefix="/portal", route_class=PageRoute, include_in_schema=False)


def signed_in_subject(svc: Service, web: WebSession) -> str | None:
    """The code of the subject signed in on this browser session, if the service session
    behind it is still live."""
    if web.subject_token is None:
        return None
    code = subject_of_session(svc, web.subject_token)
    if code is None:
        web.subject_token = None
    return code


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request,
    web: Web,
    token: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """The sign-in form. A sign-in link (``/portal/sign-in?token=...``) fills the token in
    but does not use it: only pressing the button does, so a link scanner that opens the
    link does not use the token up."""
    return page(request, web, "signin.html", title="Sign in", token=token, error=None)


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in_post(
    request: Request,
    svc: Svc,
    web: Web,
    store: Sessions,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Use the one-time token; on success a new page session holds the service session."""
    if not web.csrf_ok(csrf):
        return page(
            request, web, "signin.html", status=403, title="Sign in", token="", error=FORGED
        )
    try:
        session = sign_in(svc, token.strip())
    except Unauthorized as exc:
        return page(
            request,
            web,
            "signin.html",
            status=401,
            title="Sign in",
            token="",
            error=f"Not signed in: {exc}.",
        )
    new = store.replace(web, svc.now().timestamp())
    new.subject_token = session.token
    return redirect(request, new, "/portal")


@router.post("/sign-out")
def sign_out(
    request: Request,
    svc: Svc,
    web: Web,
    store: Sessions,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """End the page session (the service session is left to expire)."""
    return render.sign_out(request, svc, web, store, csrf, "/portal/sign-in")


@router.get("", response_class=HTMLResponse)
def portal_page(request: Request, svc: Svc, web: Web) -> Response:
    """The subject's whole record, state under each scheme, notices, appeals, access log."""
    me = signed_in_subject(svc, web)
    if me is None:
        web.say("Sign in to see your record.")
        return redirect(request, web, "/portal/sign-in")
    return _portal(request, svc, web, me)


def _portal(
    request: Request, svc: Service, web: WebSession, me: str, refused: Refused | None = None
) -> HTMLResponse:
    records = portal.own_records(svc, me)
    own_appeals = appeals.appeals_of(svc, me)
    appealed = {a.record for a in own_appeals}
    today = svc.today().isoformat()
    void = svc.settings.void_type
    contestable = {
        r.id for r in records if r.id not in appealed and r.appeal_until >= today and r.type != void
    }
    ended = {r.ref: r.id for r in records if r.ref}
    return page(
        request,
        web,
        "portal.html",
        status=422 if refused is not None else 200,
        title="Your record",
        refused=refused,
        ended=ended,
        me=me,
        kind=svc.states.kind_of(me),
        today=today,
        records=records,
        contestable=contestable,
        states=portal.own_states(svc, me),
        notices=notices.notices_of(svc, me),
        appeals=own_appeals,
        access=entries_of(svc, me),
    )


@router.post("/contest")
def contest(
    request: Request,
    svc: Svc,
    web: Web,
    record: Annotated[str, Form(min_length=1, max_length=128)],
    reason: Annotated[str, Form(max_length=appeals.MAX_FORM_REASON)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Contest one of one's records, within its appeal days. Refused, the page comes back
    with the form open, its text kept and the reason beside it."""
    if not web.csrf_ok(csrf):
        return page(request, web, "error.html", status=403, title="Not contested", detail=FORGED)
    me = signed_in_subject(svc, web)
    if me is None:
        web.say("Sign in again: your session ended. Nothing was contested.", "error")
        return redirect(request, web, "/portal/sign-in")
    try:
        appeal = appeals.contest(svc, me, record, reason)
    except (Conflict, InvalidRequest, NotFound) as exc:
        return _portal(request, svc, web, me, Refused(record, reason, f"Not contested: {exc}."))
    review_by = dt.date.fromisoformat(appeal.review_by)
    web.say(
        f"Record {record} is contested (appeal {appeal.id}). It is flagged as contested "
        f"everywhere until a reviewer decides, by {review_by.isoformat()} at the latest; "
        "undecided at the end of that day, it is voided."
    )
    return redirect(request, web, "/portal#messages")
