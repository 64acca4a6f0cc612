"""Server-rendered pages over the service, mounted in the same application as the API.

* ``/lookup``: the public lookup (persons only where a published list names them, masked);
* ``/portal``: a subject signs in with a one-time token and reads their record, state,
  notices, appeals and access log, and contests a record;
* ``/review``: a reviewer signs in with a reviewer's key and decides appeals;
* ``/schemes``: the active schemes with their rights audits.

Plain HTML forms (no JavaScript), every asset served by the package, a CSRF token in every
form and a session cookie that is ``HttpOnly`` and ``SameSite=Strict``
(:mod:`socialcredit.web.sessions`). See docs/service.md, "Pages".
"""

from fastapi import APIRouter

from socialcredit.web import portal, public, review

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
for _module in (public, portal, review):
    router.include_router(_module.router)
