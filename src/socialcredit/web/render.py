"""Rendering pages: the templates, the headers every page carries, errors as pages, and
the dependencies the page routes share (the service and the browser's session)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from socialcredit.errors import InvalidCode, InvalidInput, SocialCreditError, UnknownSubject
from socialcredit.service.appeals import sweep_if_due
from socialcredit.service.core import Service
from socialcredit.service.errors import RateLimited, ServiceError
from socialcredit.web.sessions import COOKIE, WebSession, WebSessions, set_cookie

__all__ = ["PageRoute", "Refused", "Sessions", "Svc", "Web", "error_page", "page", "redirect"]

# Every page: only this site's own style sheet and icon, forms only to this site, never in
# a frame, no referrer (a sign-in link's token must not leak), never cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=PackageLoader("socialcredit.web", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_lock = threading.Lock()


def service(request: Request) -> Service:
    """The application's service; the daily appeal sweep runs here when due."""
    svc: Service = request.app.state.service
    sweep_if_due(svc)
    return svc


Svc = Annotated[Service, Depends(service)]


def _store(request: Request, svc: Service) -> WebSessions:
    state = request.app.state
    store: WebSessions | None = getattr(state, "web_sessions", None)
    if store is None:
        with _lock:
            store = getattr(state, "web_sessions", None)
            if store is None:
                store = WebSessions(svc.settings.session_hours * 3600.0)
                state.web_sessions = store
    return store


def sessions(request: Request, svc: Svc) -> WebSessions:
    """The page sessions of the application."""
    return _store(request, svc)


Sessions = Annotated[WebSessions, Depends(sessions)]


def web_session(request: Request, svc: Svc, store: Sessions) -> WebSession:
    """The browser's session, or a fresh anonymous one (its cookie is set by the page)."""
    now = svc.now().timestamp()
    return store.get(request.cookies.get(COOKIE), now) or store.new(now)


Web = Annotated[WebSession, Depends(web_session)]


def page(
    request: Request,
    web: WebSession | None,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` as a full page for this browser session."""
    html = _env.get_template(template).render(
        web=web,
        csrf=web.csrf if web is not None else "",
        flash=web.take_flash() if web is not None else [],
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})
    if web is not None:
        set_cookie(request, response, web)
    return response


def redirect(request: Request, web: WebSession, to: str) -> Response:
    """See other (303): the answer to a form, so reloading does not post it again."""
    response = RedirectResponse(to, status_code=303, headers=HEADERS)
    set_cookie(request, response, web)
    return response


@dataclass(frozen=True)
class Refused:
    """A form the use case refused: the page is shown again with the form as it was sent,
    the error beside its field. ``form`` names which form of the page: a record's id on
    the portal, an appeal's number on the queue."""

    form: str
    reason: str
    error: str


FORGED = (
    "The form was not sent from this site's page, or its session ended: nothing was done. "
    "Send the form again."
)
"""What a form whose CSRF token does not match is told."""


def sign_out(
    request: Request, svc: Service, web: WebSession, store: WebSessions, csrf: str, to: str
) -> Response:
    """End the page session on a form with this session's token, and go to ``to``."""
    if not web.csrf_ok(csrf):
        return page(request, web, "error.html", status=403, title="Not signed out", detail=FORGED)
    new = store.replace(web, svc.now().timestamp())
    new.say("You are signed out.")
    return redirect(request, new, to)


def error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    """An error as a page (no session: an error never starts one)."""
    return page(request, None, "error.html", status=status, title=title, detail=detail)


def _status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ServiceError):
        return exc.status, {
            401: "Not signed in",
            403: "Not allowed",
            404: "Not found",
            409: "Not possible",
            429: "Too many requests",
        }.get(exc.status, "Refused")
    if isinstance(exc, InvalidCode | InvalidInput):
        return 422, "Invalid input"
    if isinstance(exc, UnknownSubject):
        return 404, "Not found"
    return 400, "Refused"


class PageRoute(APIRoute):
    """A route whose errors are answered as HTML pages, not as the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except RateLimited as exc:
                response = error_page(request, 429, "Too many requests", str(exc))
                response.headers["Retry-After"] = str(exc.retry_after)
                return response
            except SocialCreditError as exc:
                status, title = _status_of(exc)
                return error_page(request, status, title, str(exc))
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{e.get('loc', ('?',))[-1]}: {e.get('msg', 'invalid')}" for e in exc.errors()
                )
                return error_page(request, 422, "Invalid form", problems)

        return guarded
