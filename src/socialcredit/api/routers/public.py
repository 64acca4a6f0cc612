"""The public lookup and the schemes: no credential needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response

from socialcredit.api.deps import Client, Svc
from socialcredit.api.errors import responses
from socialcredit.api.models import (
    FindingOut,
    HealthOut,
    PublicOut,
    SchemeOut,
    SchemeVersionOut,
    answer,
)
from socialcredit.service.activation import RETIRED, versions
from socialcredit.service.core import Service
from socialcredit.service.errors import NotFound
from socialcredit.service.lookup import lookup
from socialcredit.service.schemes import ActiveScheme

router = APIRouter(prefix="/v1", tags=["public"])


@router.get(
    "/public/{code}",
    response_model=PublicOut,
    responses={
        **responses(400, 422, 503),
        429: {
            "model": responses(429)[429]["model"],
            "headers": {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}
            },
        },
    },
)
def get_public(
    svc: Svc,
    client: Client,
    code: Annotated[str, Path(min_length=1, max_length=64)],
    purpose: Annotated[str | None, Query()] = None,  # checked by the use case: 400
) -> Response:
    """What the public may see of a code (published lists; an organization's counting
    records; persons masked). Rate limited per client (429 with Retry-After)."""
    return answer(lookup(svc, code, purpose, client))


def _scheme(svc: Service, active: ActiveScheme) -> SchemeOut:
    s = active.scheme
    return SchemeOut(
        scheme=s.scheme,
        title=s.title or s.scheme,
        version=active.version,
        source=active.loaded.source,
        subjects=list(s.subjects),
        notice_days=s.notice_days or 0,
        appeal_days=s.appeal_days or 0,
        in_force=None if active.in_force is None else active.in_force.isoformat(),
        versions=[
            SchemeVersionOut(version=v.version, first_run=v.at, existing_records=v.existing)
            for v in versions(svc.db, s.scheme)
        ],
        findings=[FindingOut.model_validate(f) for f in active.findings],
    )


@router.get("/health", response_model=HealthOut, responses=responses(503))
def get_health(svc: Svc) -> HealthOut:
    """Whether this server can answer: its database reachable and its schemes those in
    force there (503 otherwise), for a load balancer to route by."""
    marks = svc.watch.marks()
    return HealthOut(
        status="ok",
        schemes={sid: a.version for sid, a in svc.schemes.items()},
        ledger_mark=marks.ledger,
    )


@router.get("/schemes", response_model=list[SchemeOut], responses=responses(503))
def get_schemes(svc: Svc) -> list[SchemeOut]:
    """The active scheme versions with their rights audits."""
    svc.refuse_if_outdated()
    return [_scheme(svc, a) for a in svc.schemes.values()]


@router.get("/schemes/{scheme}", response_model=SchemeOut, responses=responses(404, 422, 503))
def get_scheme(svc: Svc, scheme: Annotated[str, Path(max_length=64)]) -> SchemeOut:
    """One active scheme with its audit."""
    svc.refuse_if_outdated()
    active = svc.schemes.get(scheme)
    if active is None:
        raise NotFound(f"no active scheme {scheme!r}")
    return _scheme(svc, active)


@router.get(
    "/schemes/{scheme}/versions/{version}",
    response_class=Response,  # the 200's content is documented below: text, no JSON
    responses={
        **responses(404, 422, 503),
        200: {
            "description": "The version's text, as the service first ran it.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
def get_scheme_version(
    svc: Svc,
    scheme: Annotated[str, Path(max_length=64)],
    version: Annotated[str, Path(max_length=64)],
) -> PlainTextResponse:
    """The text (YAML) of a version of an active scheme that the service has run."""
    svc.refuse_if_outdated()
    if scheme not in svc.schemes:
        raise NotFound(f"no active scheme {scheme!r}")
    for v in versions(svc.db, scheme):
        if v.version == version and v.existing != RETIRED:
            return PlainTextResponse(v.text, media_type="text/plain; charset=utf-8")
    raise NotFound(f"the service has run no version {version!r} of a scheme {scheme!r}")
