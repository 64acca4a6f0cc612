"""How a subject proves who they are: the seam where a national e-ID plugs in.

Signing in has two steps. First an :class:`IdentityProvider` turns a credential into the
code of the subject it proves (or None). Then :func:`sign_in` opens a session: a random
token (``scs_...``) the subject sends as ``Authorization: Bearer``, valid for
``session_hours``.

The provider shipped here, :class:`OneTimeTokens`, stands in for a national e-ID: an
operator issues a one-time token for a registered code (``socialcredit subject token
CODE``, or :meth:`OneTimeTokens.issue`) and hands it to the person out of band, as a
letter or a link would; it works once, within ``signin_minutes``. A real deployment
replaces it with a provider whose ``subject_for`` checks an assertion of the national
e-ID (an OpenID Connect ID token, a SAML assertion) and returns the resident identity
number it carries: set ``service.identity`` to it, and nothing else changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from socialcredit.errors import UnknownSubject
from socialcredit.service.credentials import digest, new_token
from socialcredit.service.errors import Unauthorized

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = ["IdentityProvider", "OneTimeTokens", "Session", "sign_in", "subject_of_session"]

SIGNIN_PREFIX = "sco_"
SESSION_PREFIX = "scs_"
_REFUSED = "the sign-in token is unknown, used or expired"


class IdentityProvider(Protocol):
    """Turns a credential into the code of the subject it proves, at most once."""

    def subject_for(self, credential: str) -> str | None: ...


@dataclass(frozen=True)
class Session:
    """A signed-in subject: the bearer token (shown once), whose it is, until when."""

    token: str
    subject: str
    expires_at: str


class OneTimeTokens:
    """One-time sign-in tokens kept hashed in the service tables (the e-ID stand-in)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def issue(self, code: str) -> str:
        """A one-time token for the registered subject ``code``."""
        svc = self.svc
        if svc.ledger.read(lambda ledger: ledger.kind_of(code)) is None:
            raise UnknownSubject(f"{code!r} is not a registered subject")
        token = new_token(SIGNIN_PREFIX)
        expires = svc.now() + dt.timedelta(minutes=svc.settings.signin_minutes)
        svc.db.execute(
            "INSERT INTO svc_signin_tokens (hash, subject, expires_at) VALUES (?, ?, ?)",
            (digest(token), code, _stamp(expires)),
        )
        return token

    def subject_for(self, credential: str) -> str | None:
        """The subject of an unused, unexpired token, which is used up by this call."""
        if not credential.startswith(SIGNIN_PREFIX) or len(credential) > 200:
            return None
        svc = self.svc
        with svc.db.transaction() as db:
            row = db.one(
                "SELECT subject, expires_at, used_at FROM svc_signin_tokens WHERE hash = ?",
                (digest(credential),),
            )
            if row is None or row[2] is not None or str(row[1]) <= svc.stamp():
                return None
            # used up only if still unused: of two processes using it at once, one wins
            used = db.execute(
                "UPDATE svc_signin_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL",
                (svc.stamp(), digest(credential)),
            )
            return str(row[0]) if used == 1 else None


def sign_in(svc: Service, credential: str) -> Session:
    """Open a session for the subject ``credential`` proves, or raise Unauthorized."""
    code = svc.identity.subject_for(credential)
    if code is None:
        raise Unauthorized(_REFUSED)
    token = new_token(SESSION_PREFIX)
    expires = _stamp(svc.now() + dt.timedelta(hours=svc.settings.session_hours))
    svc.db.execute(
        "INSERT INTO svc_sessions (hash, subject, expires_at) VALUES (?, ?, ?)",
        (digest(token), code, expires),
    )
    return Session(token, code, expires)


def subject_of_session(svc: Service, token: str) -> str | None:
    """The subject of a live session token, or None."""
    if not token.startswith(SESSION_PREFIX) or len(token) > 200:
        return None
    row = svc.db.one(
        "SELECT subject, expires_at FROM svc_sessions WHERE hash = ?", (digest(token),)
    )
    if row is None or str(row[1]) <= svc.stamp():
        return None
    return str(row[0])


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")
