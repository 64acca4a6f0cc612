"""Every error, mapped to an HTTP status and one body shape (:class:`ErrorBody`), here."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from socialcredit.api.models import ErrorBody
from socialcredit.errors import (
    InvalidCode,
    InvalidInput,
    LedgerError,
    RefusedScheme,
    SocialCreditError,
    UnknownSubject,
)
from socialcredit.service.errors import RateLimited, ServiceError, Unauthorized

__all__ = ["error_response", "install", "responses"]

_DOMAIN: tuple[tuple[type[SocialCreditError], int, str], ...] = (
    (InvalidInput, 422, "invalid_input"),
    (InvalidCode, 422, "invalid_code"),
    (UnknownSubject, 404, "not_found"),
    (RefusedScheme, 409, "refused_scheme"),
    (LedgerError, 503, "ledger_unavailable"),
)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of the error responses of a route."""
    return {status: {"model": ErrorBody} for status in statuses}


def _body(
    status: int,
    code: str,
    detail: str,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def error_response(exc: SocialCreditError) -> JSONResponse:
    """The answer to an error of the service or of the domain."""
    if isinstance(exc, ServiceError):
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        elif isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        return _body(exc.status, exc.code, str(exc), headers=headers)
    for cls, status, code in _DOMAIN:
        if isinstance(exc, cls):
            if isinstance(exc, InvalidInput):
                return _body(status, code, f"{exc.what} is invalid", [str(p) for p in exc.problems])
            return _body(status, code, str(exc))
    return _body(400, "refused", str(exc))


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SocialCreditError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return _body(422, "invalid_request", "the request is invalid", problems[:100])


async def _http_error(request: Request, exc: Exception) -> Response:
    """An unknown route or method: in the one body shape under the API (``/v1``), as a
    page elsewhere (the pages' addresses)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if not request.url.path.startswith(("/v1/", "/openapi.json")):
        from socialcredit.web.render import error_page

        title = {404: "Not found", 405: "Not possible"}.get(exc.status_code, "Refused")
        detail = {
            404: f"There is no page at {request.url.path}.",
            405: f"{request.url.path} does not take a {request.method} request.",
        }.get(exc.status_code, str(exc.detail))
        page = error_page(request, exc.status_code, title, detail)
        page.headers.update(headers)
        return page
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "refused")
    return _body(exc.status_code, code, str(exc.detail), headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database did not answer (a lost connection, a lock held too long): nothing was
    done, and the next request reconnects."""
    return _body(
        503,
        "database_unavailable",
        f"the database did not answer ({type(exc).__name__}); nothing was done: try again",
        headers={"Retry-After": "1"},
    )


def _driver_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # PostgreSQL is an optional extra
        return tuple(errors)
    return (*errors, psycopg.OperationalError, psycopg.InterfaceError)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(SocialCreditError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for error in _driver_errors():
        app.add_exception_handler(error, _database_error)
