"""Browser sessions of the pages: a cookie, a CSRF token, and who signed in.

A visitor's browser holds one cookie, ``scw``: a random session id, ``HttpOnly`` and
``SameSite=Strict`` (and ``Secure`` over HTTPS). Everything else stays on the server, in a
:class:`WebSessions` store kept in memory by the application:

* the session's **CSRF token**, put in a hidden field of every form; a POST whose field
  does not match its session's token is refused (403), and so is a POST without a session;
* for a signed-in subject, the session token of the service (``scs_...``), checked again
  on every request, so an expired service session ends the page session too;
* for a signed-in reviewer, the API key and the declared purpose, checked again on every
  request, so a revoked key stops working at once.

Signing in or out replaces the session (a new id and a new CSRF token), so an id planted
before sign-in is worth nothing after. Sessions last ``session_hours``; the store keeps at
most :data:`MAX_SESSIONS`, dropping the oldest anonymous one first (the oldest signed-in
one only when every session is signed in). Being in memory, page sessions do
not survive a restart of the server and are not shared between server processes.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request
from starlette.responses import Response

__all__ = ["COOKIE", "MAX_SESSIONS", "WebSession", "WebSessions", "set_cookie"]

COOKIE = "scw"
MAX_SESSIONS = 20_000


@dataclass
class WebSession:
    """One browser's session."""

    id: str
    csrf: str
    expires: float  # POSIX seconds
    fresh: bool = False  # made by this request: its cookie still has to be set
    subject_token: str | None = None
    reviewer_key: str | None = None
    purpose: str | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)

    def csrf_ok(self, token: str | None) -> bool:
        """Whether a form's CSRF field belongs to this (already established) session."""
        return (
            not self.fresh
            and token is not None
            and hmac.compare_digest(self.csrf.encode(), token.encode())
        )

    def say(self, message: str, kind: str = "ok") -> None:
        """Keep a message for the next page shown (``ok`` or ``error``)."""
        self.flash.append((kind, message))

    def take_flash(self) -> list[tuple[str, str]]:
        """The kept messages, once."""
        out, self.flash = self.flash, []
        return out


class WebSessions:
    """The sessions of one application, in memory (thread-safe)."""

    def __init__(self, lifetime_s: float, limit: int = MAX_SESSIONS) -> None:
        self.lifetime_s = lifetime_s
        self.limit = limit
        self._items: OrderedDict[str, WebSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sid: str | None, now: float) -> WebSession | None:
        """The live session of ``sid``, or None."""
        if not sid or len(sid) > 100:
            return None
        with self._lock:
            found = self._items.get(sid)
            if found is None:
                return None
            if found.expires <= now:
                del self._items[sid]
                return None
            return found

    def new(self, now: float) -> WebSession:
        """A fresh anonymous session."""
        web = WebSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.lifetime_s, True
        )
        with self._lock:
            self._items[web.id] = web
            while len(self._items) > self.limit:
                self._evict(web.id)
        return web

    def _evict(self, new: str) -> None:
        """Drop the oldest anonymous session but the ``new`` one, or the oldest of all when
        every other one is signed in: visitors who never sign in cannot push out those who
        did."""
        for sid, web in self._items.items():
            if sid != new and web.subject_token is None and web.reviewer_key is None:
                del self._items[sid]
                return
        self._items.popitem(last=False)

    def replace(self, old: WebSession, now: float) -> WebSession:
        """End ``old`` and start a new session in its place (on sign-in and sign-out)."""
        self.drop(old)
        return self.new(now)

    def drop(self, web: WebSession) -> None:
        """End a session."""
        with self._lock:
            self._items.pop(web.id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def set_cookie(request: Request, response: Response, web: WebSession) -> None:
    """Set the session cookie on ``response`` when the session is new."""
    if not web.fresh:
        return
    response.set_cookie(
        COOKIE,
        web.id,
        max_age=None,  # a browser-session cookie; the server ends it at ``expires``
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    web.fresh = False
