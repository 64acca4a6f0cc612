"""The HTTP API: thin FastAPI routers over the use cases of :mod:`socialcredit.service`."""

from socialcredit.api.app import create_app

__all__ = ["create_app"]
