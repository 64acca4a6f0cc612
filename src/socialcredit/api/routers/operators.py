"""Operators of joint measures ask for decisions (``GET /v1/decisions``) and subscribe to
changes of published lists (``/v1/subscriptions``, webhooks)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from socialcredit.api.deps import Operator, Svc
from socialcredit.api.errors import responses
from socialcredit.api.models import DecisionOut, SubscriptionIn, SubscriptionOut, answer
from socialcredit.records import DOTTED_NAME, MAX_NAME
from socialcredit.service.decisions import decide
from socialcredit.service.webhooks import subscribe, subscriptions_of, unsubscribe

router = APIRouter(prefix="/v1", tags=["operators"])

Purpose = Annotated[
    str | None,
    Query(
        description="Why the record is read, one line of at most 200 characters (else "
        "400, as without one); shown to the subject in their access log.",
    ),
]


@router.get(
    "/decisions", response_model=DecisionOut, responses=responses(400, 401, 403, 404, 422, 503)
)
def get_decision(
    svc: Svc,
    who: Operator,
    subject: Annotated[str, Query(min_length=1, max_length=64)],
    action: Annotated[str, Query(min_length=1, max_length=MAX_NAME, pattern=DOTTED_NAME)],
    scheme: Annotated[str, Query(min_length=1, max_length=64)],
    purpose: Purpose = None,
) -> Response:
    """May ``subject`` do ``action`` today under ``scheme``? Allowed, denied or granted,
    with the measures behind it. Needs a declared ``purpose`` (else 400)."""
    return answer(decide(svc, who, subject, action, scheme, purpose))


@router.post(
    "/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def post_subscription(svc: Svc, who: Operator, body: SubscriptionIn) -> SubscriptionOut:
    """Subscribe to the changes of a published list: each change is POSTed to ``url``,
    signed with the ``secret`` of the answer (shown only here). docs/service.md#webhooks"""
    made = subscribe(svc, who, body.scheme, body.list, body.url, body.purpose)
    return SubscriptionOut.model_validate(made, from_attributes=True)


@router.get(
    "/subscriptions", response_model=list[SubscriptionOut], responses=responses(401, 403, 503)
)
def get_subscriptions(svc: Svc, who: Operator) -> list[SubscriptionOut]:
    """The caller's live subscriptions (without their secrets)."""
    return [
        SubscriptionOut.model_validate(s, from_attributes=True) for s in subscriptions_of(svc, who)
    ]


@router.delete(
    "/subscriptions/{subscription}", status_code=204, responses=responses(401, 403, 404, 503)
)
def delete_subscription(
    svc: Svc, who: Operator, subscription: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    """End one of the caller's subscriptions."""
    unsubscribe(svc, who, subscription)
    return Response(status_code=204)
