"""Pages anyone may read: the start page, the public lookup, the schemes with their rights
audits, and the package's own style sheet and icon."""

from __future__ import annotations

from importlib import resources
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import HTMLResponse, Response

from socialcredit.engine.conditions import render_condition
from socialcredit.errors import InvalidCode, SocialCreditError
from socialcredit.service.activation import first_version, versions
from socialcredit.service.errors import NotFound, PurposeRequired, RateLimited
from socialcredit.service.lookup import lookup
from socialcredit.web.render import PageRoute, Svc, Web, page
from socialcredit.web.sessions import WebSession

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PURPOSE = (
    "Declare the purpose of the lookup: one line of at most 200 characters. It is shown to "
    "the person looked up, in their access log."
)
"""What the lookup page says of a missing or malformed purpose."""

_STATIC = {"site.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """A file of the package's static folder (nothing is fetched from elsewhere)."""
    if name not in _STATIC:
        raise NotFound(f"no static file {name!r}")
    body = resources.files("socialcredit.web").joinpath("static", name).read_bytes()
    return Response(
        body,
        media_type=_STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Svc, web: Web) -> HTMLResponse:
    """What the site offers, and to whom."""
    return page(request, web, "home.html", title="socialcredit", schemes=list(svc.schemes.values()))


@router.get("/lookup", response_class=HTMLResponse)
def lookup_form(request: Request, web: Web) -> HTMLResponse:
    """The form of the public lookup."""
    return page(
        request, web, "lookup.html", title="Public lookup", view=None, error=None, field=None
    )


@router.post("/lookup", response_class=HTMLResponse)
def lookup_post(
    request: Request,
    svc: Svc,
    web: Web,
    code: Annotated[str, Form(max_length=64)] = "",
    purpose: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The answer of the public lookup. The code travels in the body, not the address, so
    it stays out of histories and server logs; the answer shows persons' codes masked."""
    if not web.csrf_ok(csrf):
        return _forged(request, web, "lookup.html", title="Public lookup", view=None, field=None)
    status, headers, error, view = 200, {}, None, None
    field = None  # the field the error is about
    if not code.strip():
        status, error, field = 422, "Enter a code to look up.", "code"
    else:
        try:
            view = lookup(svc, code, purpose, request.client.host if request.client else "?")
        except RateLimited as exc:
            status, error = 429, str(exc)
            headers["Retry-After"] = str(exc.retry_after)
        except PurposeRequired:
            status, error, field = 400, PURPOSE, "purpose"
        except InvalidCode as exc:
            status, error, field = 422, str(exc), "code"
        except SocialCreditError as exc:
            status, error = getattr(exc, "status", 422), str(exc)
    return page(
        request,
        web,
        "lookup.html",
        status=status,
        headers=headers,
        title="Public lookup",
        view=view,
        error=error,
        field=field,
        code=code if error else "",
        purpose=purpose,
    )


def _forged(request: Request, web: WebSession, template: str, **context: Any) -> HTMLResponse:
    """The answer to a form that did not come from this site's page (or whose session
    ended): nothing done, and a fresh form to send again."""
    return page(
        request,
        web,
        template,
        status=403,
        error="The form was not sent from this site's page, or its session ended: "
        "nothing was done. Send the form again.",
        **context,
    )


@router.get("/schemes", response_class=HTMLResponse)
def schemes(request: Request, svc: Svc, web: Web) -> HTMLResponse:
    """The active schemes, with the counts of their audit findings."""
    svc.refuse_if_outdated()
    return page(request, web, "schemes.html", title="Schemes", schemes=list(svc.schemes.values()))


@router.get("/schemes/{scheme}", response_class=HTMLResponse)
def scheme_page(request: Request, svc: Svc, web: Web, scheme: str) -> HTMLResponse:
    """One scheme: what it counts, its lists and measures, its rights audit, its text."""
    svc.refuse_if_outdated()
    active = svc.schemes.get(scheme)
    if active is None:
        raise NotFound(f"no active scheme {scheme!r}")
    return page(
        request,
        web,
        "scheme.html",
        title=active.scheme.title or active.id,
        active=active,
        source=PurePath(active.loaded.source).name,  # a preset's name, or the file's
        s=active.scheme,
        versions=versions(svc.db, active.id),
        first_version=first_version(svc.db, active.id),
        render_condition=render_condition,
    )
