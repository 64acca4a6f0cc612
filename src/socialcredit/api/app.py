"""The application factory of the HTTP API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import socialcredit
from socialcredit.api import errors
from socialcredit.api.routers import agencies, operators, public, reviewers, subjects
from socialcredit.service.core import Service
from socialcredit.web import router as pages

__all__ = ["SETTINGS_VARIABLE", "create_app", "from_environment"]

SETTINGS_VARIABLE = "SOCIALCREDIT_SERVE_SETTINGS"


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

    app = FastAPI(
        title="socialcredit",
        version=socialcredit.__version__,
        description="A social credit system built to be inspected: agencies send records, "
        "operators ask for decisions, the public looks up published lists, subjects read "
        "and contest their record, reviewers decide appeals. See docs/service.md.",
        lifespan=lifespan,
    )
    app.state.service = svc
    errors.install(app)
    for module in (agencies, operators, public, subjects, reviewers):
        app.include_router(module.router)
    app.include_router(pages)  # the server-rendered pages (socialcredit.web)
    return app


def from_environment() -> FastAPI:
    """The API over a service opened with the settings ``serve`` put, as JSON, in
    ``$SOCIALCREDIT_SERVE_SETTINGS``: the application factory of each server process when
    ``serve`` runs several (``workers``)."""
    from socialcredit.service.settings import Settings

    settings = Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    return create_app(Service.open(settings, background=True))
