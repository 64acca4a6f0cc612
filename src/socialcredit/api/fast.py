"""The hot paths of the API, answered beside FastAPI: decisions and the public lookup.

``GET /v1/decisions`` and ``GET /v1/public/{code}`` are what operators and the public ask
most, thousands of times a second. Their routes stay declared in FastAPI (the OpenAPI
document, the validation of every odd request, the errors), but :class:`FastPaths`, an
ASGI middleware in front of the application, answers the ordinary request itself: query
and credential read with no model, the snapshot of the states read without leaving the
event loop, the access-log entry awaited (group commit, :mod:`socialcredit.service.access`)
instead of blocking a thread, and the answer written as JSON bytes.

It answers only what it is sure FastAPI would answer the same way: every parameter present
once and within the bounds the route declares, a remembered key of the right role, a
declared purpose, an active scheme, no appeal sweep due. Anything else -- a missing or
repeated parameter, an unknown key, a refusal -- goes to FastAPI unchanged, before
anything was done. The use cases are the same functions either way
(:func:`~socialcredit.service.decisions.ask` and
:func:`~socialcredit.service.decisions.answer`, :func:`~socialcredit.service.lookup.look`
and :func:`~socialcredit.service.lookup.shown`); what needs the ledger or the database (an
organization's records, the explanation behind a contested decision, a snapshot to be
read again) runs on the thread pool, as the routes do.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool

from socialcredit.api.errors import error_response
from socialcredit.days import to_day
from socialcredit.errors import SocialCreditError
from socialcredit.records import DOTTED_NAME, MAX_NAME
from socialcredit.service.access import MAX_PURPOSE, declared
from socialcredit.service.core import Service
from socialcredit.service.credentials import remembered
from socialcredit.service.decisions import DecisionView, answer, ask
from socialcredit.service.errors import RateLimited
from socialcredit.service.lookup import PublicView, look, shown
from socialcredit.service.states import Snapshot

__all__ = ["FastPaths"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DECISIONS = "/v1/decisions"
PUBLIC = "/v1/public/"
_ACTION = re.compile(DOTTED_NAME)  # the route's pattern (a scheme's action names)
_JSON = [(b"content-type", b"application/json")]
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _params(scope: Scope, names: tuple[str, ...]) -> dict[str, str] | None:
    """The query's parameters among ``names`` (read as Starlette reads them, with
    ``parse_qsl``), or None when one of them is repeated."""
    text = scope["query_string"].decode("latin-1")
    if "%" in text or "+" in text:  # escapes: as Starlette does
        pairs = parse_qsl(text, keep_blank_values=True)
    else:  # what parse_qsl gives for a query without escapes
        pairs = [(k, v) for k, _, v in (part.partition("=") for part in text.split("&") if part)]
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in names:
            if key in found:
                return None
            found[key] = value
    return found


def _bearer(scope: Scope) -> str | None:
    """The credential of ``Authorization: Bearer ...`` (as FastAPI's HTTPBearer reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _bounded(value: str | None, longest: int) -> bool:
    return value is not None and 1 <= len(value) <= longest


def _purpose_ok(purpose: str | None) -> bool:
    """Whether ``purpose`` is a purpose the use case accepts (else FastAPI answers);
    remembered, as operators declare the same few purposes again and again."""
    if purpose is None or len(purpose) > MAX_PURPOSE:
        return False
    ok = _PURPOSES.get(purpose)
    if ok is None:
        try:
            declared(purpose)
            ok = True
        except SocialCreditError:
            ok = False
        if len(_PURPOSES) >= _PURPOSES_REMEMBERED:
            _PURPOSES.clear()
        _PURPOSES[purpose] = ok
    return ok


_PURPOSES: dict[str, bool] = {}
_PURPOSES_REMEMBERED = 4096


def decision_json(view: DecisionView) -> bytes:
    """The answer of ``GET /v1/decisions`` (:class:`~socialcredit.api.models.DecisionOut`)."""
    return _dumps(vars(view)).encode()


def public_json(view: PublicView) -> bytes:
    """The answer of ``GET /v1/public/{code}`` (:class:`~socialcredit.api.models.PublicOut`)."""
    body = dict(vars(view))
    body["lists"] = [vars(x) for x in view.lists]
    body["records"] = [vars(x) for x in view.records]
    return _dumps(body).encode()


async def _send(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *_JSON],
        }
    )
    await send({"type": "http.response.body", "body": body})


class FastPaths:
    """Answers ordinary decisions and lookups (:meth:`answer`); the application passes
    everything else on to FastAPI."""

    def __init__(self, service: Service) -> None:
        self.svc = service
        self._reading: asyncio.Future[Snapshot] | None = None

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Answer the request if it is an ordinary one of the hot paths; whether it did."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return False
        path = scope["path"]
        if path == DECISIONS:
            return await self._decision(scope, send)
        if path.startswith(PUBLIC):
            return await self._lookup(scope, send)
        return False

    async def _snapshot(self, day: int) -> Snapshot:
        """The current snapshot; when it must be checked (or read) again, one thread does
        it for every request waiting meanwhile."""
        svc = self.svc
        snap = svc.states.ready(day)
        if snap is not None:
            return snap
        reading = self._reading
        if reading is None or reading.done():
            reading = self._reading = asyncio.ensure_future(
                run_in_threadpool(svc.states.current, day)
            )
        return await asyncio.shield(reading)

    async def _decision(self, scope: Scope, send: Send) -> bool:
        svc = self.svc
        q = _params(scope, ("subject", "action", "scheme", "purpose"))
        if q is None:
            return False
        subject, action, scheme, purpose = (
            q.get("subject"),
            q.get("action"),
            q.get("scheme"),
            q.get("purpose"),
        )
        day = svc.day()
        if not (
            _bounded(subject, 64)
            and _bounded(action, MAX_NAME)
            and _bounded(scheme, 64)
            and _ACTION.fullmatch(action or "")
            and _purpose_ok(purpose)
            and scheme in svc.schemes
            and svc.swept_on == day
        ):
            return False
        token = _bearer(scope)
        who = remembered(svc.db, token) if token else None
        if who is None or who.role not in ("operator", "auditor"):
            return False
        assert subject is not None and action is not None and scheme is not None
        try:
            snap = await self._snapshot(day)
            asked = ask(svc, snap, who, subject, action, scheme, purpose)
            if asked.entry is not None:
                await svc.access_log.write_async(asked.entry)
            view = answer(snap, asked, svc.states.ready_contested(asked.code), may_block=False)
            if view is None:  # it needs the open appeals or an explanation: off the loop
                view = await run_in_threadpool(
                    lambda: answer(snap, asked, svc.states.contested(asked.code))
                )
        except SocialCreditError as exc:
            await error_response(exc)(scope, _no_body, send)
            return True
        assert view is not None
        await _send(send, 200, decision_json(view))
        return True

    async def _lookup(self, scope: Scope, send: Send) -> bool:
        svc = self.svc
        code = scope["path"][len(PUBLIC) :]
        if not 1 <= len(code) <= 64 or "/" in code:
            return False
        q = _params(scope, ("purpose",))
        if q is None:
            return False
        purpose = q.get("purpose")
        now = svc.today()
        day = to_day(now)
        if (purpose is not None and len(purpose) > MAX_PURPOSE) or svc.swept_on != day:
            return False
        client = scope.get("client")
        host = client[0] if client else "unknown"
        today = now.isoformat()
        try:
            snap = await self._snapshot(day)
            wait = svc.limiter.take(host)
            if wait:
                raise RateLimited(wait)
            looked = look(svc, snap, code, purpose)
            await svc.access_log.write_async(looked.entry)
            view = shown(svc, snap, looked, today, may_block=False)
            if view is None:  # an organization's records: read off the loop
                view = await run_in_threadpool(shown, svc, snap, looked, today)
        except SocialCreditError as exc:
            await error_response(exc)(scope, _no_body, send)
            return True
        assert view is not None
        await _send(send, 200, public_json(view))
        return True


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
