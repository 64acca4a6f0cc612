"""The service's use cases: ingest, decisions, public lookup, the subject's portal,
appeals, notices and the access log, as functions of a :class:`Service` (no HTTP here).
"""

from socialcredit.service.core import Service
from socialcredit.service.settings import Settings, load_settings

__all__ = ["Service", "Settings", "load_settings"]
