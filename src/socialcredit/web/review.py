"""The reviewers' appeal queue: sign in with a reviewer's key and a declared purpose, read
the open appeals, uphold or reject each with a reason.

Every look at the queue is a read of the subjects' records, logged with the declared
purpose (``socialcredit.service.appeals.queue``). Persons' codes are shown masked: a
reviewer decides on the record and the reason, and needs no one's identity number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import HTMLResponse, Response

from socialcredit.ids import mask
from socialcredit.service import appeals
from socialcredit.service.access import MAX_PURPOSE, declared
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal, authenticate
from socialcredit.service.errors import Conflict, InvalidRequest, NotFound, PurposeRequired
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

__all__ = ["QueueItem", "router"]

router = APIRouter(prefix="/review", route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class QueueItem:
    """An open appeal as the reviewer sees it: the subject masked, the record described."""

    appeal: appeals.Appeal
    subject: str
    record_type: str
    occurred_at: str
    recorded_at: str


def signed_in_reviewer(svc: Service, web: WebSession) -> Principal | None:
    """The reviewer signed in on this session, while the key is live and a reviewer's."""
    if web.reviewer_key is None:
        return None
    who = authenticate(svc.db, web.reviewer_key)
    if who is None or who.role != "reviewer":
        web.reviewer_key = web.purpose = None
        return None
    return who


def _item(svc: Service, appeal: appeals.Appeal) -> QueueItem:
    kind = svc.states.kind_of(appeal.subject) or "person"
    records = svc.states.records_of(appeal.subject).to_pylist()
    rows = [r for r in records if r["id"] == appeal.record]
    row = rows[0] if rows else {"type": "?", "occurred_at": "?", "recorded_at": "?"}
    return QueueItem(
        appeal,
        mask(appeal.subject, kind),
        str(row["type"]),
        str(row["occurred_at"]),
        str(row["recorded_at"]),
    )


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, web: Web) -> HTMLResponse:
    """The reviewer's sign-in form."""
    return page(
        request, web, "review_signin.html", title="Reviewer sign-in", error=None, field=None
    )


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in_post(
    request: Request,
    svc: Svc,
    web: Web,
    store: Sessions,
    key: Annotated[str, Form(max_length=200)] = "",
    purpose: Annotated[str, Form(max_length=MAX_PURPOSE)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the key (a reviewer's, not revoked) and the purpose; start a new session."""

    def again(status: int, error: str, field: str | None) -> HTMLResponse:
        return page(
            request,
            web,
            "review_signin.html",
            status=status,
            title="Reviewer sign-in",
            error=error,
            field=field,
            purpose=purpose,
        )

    if not web.csrf_ok(csrf):
        return again(403, FORGED, None)
    who = authenticate(svc.db, key.strip())
    if who is None:
        return again(401, "Not signed in: the key is unknown or revoked.", "key")
    if who.role != "reviewer":
        return again(403, "Not signed in: this key is not a reviewer's.", "key")
    try:
        why = declared(purpose)
    except PurposeRequired:
        return again(
            400, "Not signed in: declare a purpose, one line of at most 200 characters.", "purpose"
        )
    new = store.replace(web, svc.now().timestamp())
    new.reviewer_key, new.purpose = key.strip(), why
    return redirect(request, new, "/review")


@router.post("/sign-out")
def sign_out(
    request: Request,
    svc: Svc,
    web: Web,
    store: Sessions,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """End the reviewer's page session."""
    return render.sign_out(request, svc, web, store, csrf, "/review/sign-in")


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request, svc: Svc, web: Web) -> Response:
    """The open appeals, oldest first, each with the form to decide it."""
    who = signed_in_reviewer(svc, web)
    if who is None or web.purpose is None:
        web.say("Sign in with a reviewer's key to work the queue.")
        return redirect(request, web, "/review/sign-in")
    return _queue(request, svc, web, who, web.purpose)


def _queue(
    request: Request,
    svc: Service,
    web: WebSession,
    who: Principal,
    purpose: str,
    refused: Refused | None = None,
) -> HTMLResponse:
    items = [_item(svc, a) for a in appeals.queue(svc, who, purpose)]
    return page(
        request,
        web,
        "review.html",
        status=422 if refused is not None else 200,
        title="Appeal queue",
        who=who,
        purpose=purpose,
        items=items,
        refused=refused,
    )


@router.post("/{appeal_id}")
def decide(
    request: Request,
    svc: Svc,
    web: Web,
    appeal_id: Annotated[int, Path(ge=1, le=2**62)],
    outcome: Annotated[Literal["upheld", "rejected"], Form()],
    reason: Annotated[str, Form(max_length=appeals.MAX_FORM_REASON)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Uphold (the record is voided) or reject (a reason is needed) one appeal."""
    if not web.csrf_ok(csrf):
        return page(request, web, "error.html", status=403, title="Not decided", detail=FORGED)
    who = signed_in_reviewer(svc, web)
    if who is None:
        web.say("Sign in again: your session ended. Nothing was decided.", "error")
        return redirect(request, web, "/review/sign-in")
    try:
        decided = appeals.decide_appeal(svc, who, appeal_id, outcome, reason, web.purpose)
    except InvalidRequest as exc:  # the reason: back to the form, its text kept
        refused = Refused(str(appeal_id), reason, f"Not decided: {exc}.")
        return _queue(request, svc, web, who, str(web.purpose), refused)
    except (Conflict, NotFound, PurposeRequired) as exc:
        web.say(f"Appeal {appeal_id} was not decided: {exc}.", "error")
    else:
        done = (
            f"the record is voided by record {decided.void_record}"
            if decided.status == "upheld"
            else "the subject is sent the reason"
        )
        web.say(f"Appeal {appeal_id} is {decided.status}: {done}.")
    return redirect(request, web, "/review")
