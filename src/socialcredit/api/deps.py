"""Dependencies of the routers: the service, who is asking, and from where.

They are coroutines that answer from memory when they can (a key read within the last
second, no appeal sweep due), and hand blocking work to the thread pool only when they
must: a request then makes one trip to the thread pool, for its route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from socialcredit.service.appeals import sweep_if_due
from socialcredit.service.core import Service
from socialcredit.service.credentials import Principal, authenticate, remembered
from socialcredit.service.errors import Forbidden, Unauthorized
from socialcredit.service.identity import subject_of_session

__all__ = ["Agency", "Auditor", "Caller", "Client", "Operator", "Reviewer", "Subject", "Svc"]

_bearer = HTTPBearer(
    auto_error=False, description="An API key (sck_...) or a subject's session (scs_...)."
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def service(request: Request) -> Service:
    """The service of the application; the daily appeal sweep runs here when due."""
    svc: Service = request.app.state.service
    if svc.swept_on != svc.day():
        await run_in_threadpool(sweep_if_due, svc)
    return svc


Svc = Annotated[Service, Depends(service)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("this needs a credential: Authorization: Bearer <key or session>")
    return credentials.credentials


async def caller(svc: Svc, credentials: Bearer) -> Principal:
    """The owner of the API key the request carries."""
    token = _token(credentials)
    who = remembered(svc.db, token) or await run_in_threadpool(authenticate, svc.db, token)
    if who is None:
        raise Unauthorized("unknown or revoked API key")
    return who


Caller = Annotated[Principal, Depends(caller)]


def key_of(*roles: str) -> Any:
    """A dependency: the caller, who must hold one of ``roles``."""

    async def check(who: Caller) -> Principal:
        if who.role not in roles:
            raise Forbidden(f"this is for the keys of: {', '.join(roles)}")
        return who

    return Depends(check)


Agency = Annotated[Principal, key_of("agency")]
Operator = Annotated[Principal, key_of("operator", "auditor")]
Reviewer = Annotated[Principal, key_of("reviewer")]
Auditor = Annotated[Principal, key_of("auditor")]


async def subject(svc: Svc, credentials: Bearer) -> str:
    """The code of the signed-in subject."""
    code = await run_in_threadpool(subject_of_session, svc, _token(credentials))
    if code is None:
        raise Unauthorized("unknown or expired session: sign in again")
    return code


Subject = Annotated[str, Depends(subject)]


async def client(request: Request) -> str:
    """Who is asking, for the rate limit: the peer's address."""
    return request.client.host if request.client else "unknown"


Client = Annotated[str, Depends(client)]
