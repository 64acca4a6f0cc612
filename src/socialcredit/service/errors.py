"""The errors of the service's use cases, each with the HTTP status it maps to.

The API maps every :class:`ServiceError` (and the domain errors of the rest of the
package) to a status in one place, ``socialcredit.api.errors``; the command line prints
the message.
"""

from __future__ import annotations

import logging

from socialcredit.errors import SocialCreditError

__all__ = [
    "Conflict",
    "FailureLog",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Outdated",
    "PurposeRequired",
    "RateLimited",
    "ServiceError",
    "TooLarge",
    "Unauthorized",
]


class ServiceError(SocialCreditError):
    """A request the service refuses; ``status`` and ``code`` say how, over HTTP."""

    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """No credential, or one the service does not know (or that expired)."""

    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """A known credential that may not do this."""

    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """Nothing there -- or nothing the caller may see, which reads the same."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request contradicts what is already recorded."""

    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    """A batch larger than the service accepts."""

    status = 413
    code = "too_large"


class InvalidRequest(ServiceError):
    """A request whose content the service cannot use (a bad URL, an unreadable body)."""

    status = 422
    code = "invalid_request"


class PurposeRequired(ServiceError):
    """A read of someone's record without a declared purpose."""

    status = 400
    code = "purpose_required"


class Outdated(ServiceError):
    """The schemes this server runs are no longer those its database has in force (another
    server has since put a scheme in force, run another version, or a scheme was
    retired): it takes no record and answers nothing by them until it is started again."""

    status = 503
    code = "schemes_outdated"


class RateLimited(ServiceError):
    """Too many requests from one client; try again after ``retry_after`` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many requests: try again in {retry_after} s")


class FailureLog:
    """How a task run over and over in the background logs its failures: while the server
    is :class:`Outdated`, one warning (until the task next succeeds); anything else with
    its traceback, each time."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._outdated = False

    def failed(self, exc: BaseException) -> None:
        """Log ``exc``, which the task raised."""
        if isinstance(exc, Outdated):
            if not self._outdated:
                self._log.warning("%s: %s", self._what, exc)
            self._outdated = True
            return
        self._log.error("%s", self._what, exc_info=exc)

    def succeeded(self) -> None:
        """The task ran: the next refusal is logged again."""
        self._outdated = False
