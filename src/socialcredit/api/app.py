"""The application factory of the HTTP API."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

import socialcredit
from socialcredit.api import errors
from socialcredit.api.fast import FastPaths
from socialcredit.api.routers import agencies, operators, public, reviewers, subjects
from socialcredit.service.core import Service
from socialcredit.store import Ledger
from socialcredit.web import router as pages

log = logging.getLogger(__name__)

__all__ = [
    "RUNTIME_VARIABLE",
    "SETTINGS_VARIABLE",
    "SUPERVISOR_VARIABLE",
    "create_app",
    "from_environment",
]

SETTINGS_VARIABLE = "SOCIALCREDIT_SERVE_SETTINGS"
RUNTIME_VARIABLE = "SOCIALCREDIT_SERVE_RUNTIME"
SUPERVISOR_VARIABLE = "SOCIALCREDIT_SERVE_SUPERVISOR"
SWITCH_SECONDS = 0.0005


class ServiceApp(FastAPI):
    """The FastAPI application, with the hot paths (:mod:`socialcredit.api.fast`) answered
    before its middleware and routing, and everything else by FastAPI."""

    fast: FastPaths | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast is not None and await self.fast.answer(scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(svc: Service, *, close: bool = True) -> FastAPI:
    """The API over an open service; the service is closed when the application stops
    (unless ``close`` is false)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close:
                svc.close()

    app = ServiceApp(
        title="socialcredit",
        version=socialcredit.__version__,
        description="A social credit system built to be inspected: agencies send records, "
        "operators ask for decisions, the public looks up published lists, subjects read "
        "and contest their record, reviewers decide appeals. See docs/service.md.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN; every asset is served by the
        # package, so only the document itself is served (/openapi.json)
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = svc
    errors.install(app)
    for module in (agencies, operators, public, subjects, reviewers):
        app.include_router(module.router)
    app.include_router(pages)  # the server-rendered pages (socialcredit.web)
    app.fast = FastPaths(svc)
    return app


def _die_with(supervisor: int) -> None:
    """End this process when the supervising process ends, even by SIGKILL (Linux), so
    that killing the server kills every process of it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor still ends them on exit
        return
    if os.getppid() != supervisor:  # it ended before the line above
        os._exit(1)


def from_environment() -> FastAPI:
    """The API of one process answering requests, over a service opened with the settings
    ``serve`` put, as JSON, in ``$SOCIALCREDIT_SERVE_SETTINGS``: the application factory
    of the processes ``serve`` starts. The outbox is delivered by ``serve`` itself, which
    this process wakes through the socket in ``$SOCIALCREDIT_SERVE_RUNTIME``; and, unless
    the schemes do not fit the published arrays, it scores the ledger and publishes the
    states there too (:mod:`socialcredit.service.published`)."""
    from socialcredit.service.dispatch import Waker
    from socialcredit.service.settings import Settings

    settings = Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if supervisor:
        _die_with(int(supervisor))
    runtime = os.environ.get(RUNTIME_VARIABLE)
    if runtime is None:
        return create_app(_warming(Service.open(settings, background=True)))
    # requests are answered on the event loop while threads commit and read: let them
    # have the interpreter back soon after their I/O (the default waits up to 5 ms)
    sys.setswitchinterval(SWITCH_SECONDS)
    where = Path(runtime)
    published = where if (where / "states").is_dir() else None
    access_log = where / "access" if (where / "access").exists() else None
    # the supervisor has decided what is in force (socialcredit.service.activation): a
    # worker it starts, or starts again, takes its decisions
    svc = Service.open(
        settings,
        wake=Waker(where / "wake"),
        published=published,
        access_log=access_log,
        activate=False,
    )
    return create_app(_warming(svc))


def _warming(svc: Service) -> Service:
    """``svc``, its ledger meanwhile reading what a first batch would read first
    (:meth:`Ledger.warm`), on the ledger's thread, ahead of any request's call."""
    svc.ledger.submit(Ledger.warm, writes=False).add_done_callback(_warmed)
    return svc


def _warmed(done: Future[None]) -> None:
    failure = done.exception()
    if failure is not None:  # the requests that need the index will say why
        log.warning("reading the registry's index failed", exc_info=failure)
