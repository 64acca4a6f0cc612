"""The service: the ledger, the service tables, the active schemes and a clock, together.

Every use case (``socialcredit.service.ingest``, ``.decisions``, ``.lookup``, ``.portal``,
``.appeals``, ``.notices``) is a function of a :class:`Service` and plain values, callable
without HTTP; the API's routers and the command line are thin layers over them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from socialcredit.days import to_day
from socialcredit.service.access import AccessLogWriter
from socialcredit.service.dispatch import Dispatcher
from socialcredit.service.identity import IdentityProvider, OneTimeTokens
from socialcredit.service.ledger_worker import LedgerWorker
from socialcredit.service.ratelimit import RateLimiter
from socialcredit.service.schemes import ActiveScheme, load_active
from socialcredit.service.settings import Settings
from socialcredit.service.sinks import Sink, make_sink
from socialcredit.service.states import StateCache, States, Watch
from socialcredit.store.service_db import ServiceDB, open_service_db

__all__ = ["Clock", "Service"]

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, UTC."""
    return dt.datetime.now(dt.UTC)


class Service:
    """Everything a use case needs. Open with :meth:`open`; close when done."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        sink: Sink | None = None,
        background: bool = False,
        listen: Path | None = None,
        wake: Callable[[], None] | None = None,
        published: Path | None = None,
        access_log: Path | None = None,
        activate: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # first what may refuse the settings: a refused start puts no scheme in force
        self.sink: Sink = sink or make_sink(settings)
        self.schemes: dict[str, ActiveScheme] = load_active(settings.schemes)
        self.db: ServiceDB = open_service_db(settings.database)
        try:
            self.ledger = LedgerWorker(settings.database)
        except BaseException:
            self.db.close()
            raise
        try:
            from socialcredit.service.activation import activate as activate_schemes

            # the schemes' days in force, before any state
            noticed = activate_schemes(self, decide=activate)
        except BaseException:
            self.ledger.close()
            self.db.close()
            raise
        # the dispatcher checkpoints SQLite's log: this process's, or the supervisor's
        background_elsewhere = wake is not None
        self.access_log = AccessLogWriter(
            settings.database,
            checkpoints=not (background or background_elsewhere),
            remote=access_log,
        )
        ledger, db = self.ledger, self.db
        from socialcredit.service.activation import outdated

        self.watch = Watch(
            settings.database,
            lambda: ledger.writes + db.writes,
            lambda query: outdated(self, query),
        )
        self.states: States
        if published is None:
            self.states = StateCache(ledger, self.schemes, self.watch)
        else:
            from socialcredit.service.published import PublishedStates

            self.states = PublishedStates(
                published / "states",
                published / "publish",
                ledger,
                self.schemes,
                self.watch,
                self.day,
            )
        self.limiter = RateLimiter(settings.public_rate, settings.public_burst)
        self.identity: IdentityProvider = OneTimeTokens(self)
        self.swept_on: int | None = None
        # answers that depend only on the marks they are keyed by (an organization's
        # public lookup): use cases may remember them here
        self.answers: dict[tuple[object, ...], object] = {}
        # with ``background``, a thread delivers the outbox (and checkpoints SQLite's log),
        # woken by other processes through ``listen``; with ``wake``, another process
        # delivers and ``wake`` wakes it; with neither, each use case delivers what it
        # wrote before it returns
        self.wake = wake
        self.dispatcher: Dispatcher | None = Dispatcher(self, listen=listen) if background else None
        if noticed:
            self.outbox_written()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        sink: Sink | None = None,
        background: bool = False,
        listen: Path | None = None,
        wake: Callable[[], None] | None = None,
        published: Path | None = None,
        access_log: Path | None = None,
        activate: bool = True,
    ) -> Service:
        """Open the service on ``settings.database``, which ``db upgrade`` has prepared.
        ``background``: deliver the outbox on a thread of its own (the server's supervising
        process does), woken by datagrams on the socket ``listen`` too; ``wake``: the
        outbox is delivered by another process, which ``wake()`` wakes (a process
        answering requests); ``published``: the states are scored by another process and
        published in that directory (:mod:`socialcredit.service.published`);
        ``access_log``: the socket of the process that commits the access log
        (:class:`~socialcredit.service.access.AccessLogServer`); ``activate``: put the
        schemes run for the first time in force (:mod:`socialcredit.service.activation`;
        the command line's tools that only deliver, sweep or sign in do not)."""
        return cls(
            settings,
            clock=clock,
            sink=sink,
            background=background,
            listen=listen,
            wake=wake,
            published=published,
            access_log=access_log,
            activate=activate,
        )

    def refuse_if_outdated(self) -> None:
        """Raise :class:`~socialcredit.service.errors.Outdated` when the schemes this
        service runs are no longer those in force on its database (as the marks read at
        most :data:`~socialcredit.service.states.MARK_SECONDS` ago say): what writes or
        answers by them checks first."""
        self.watch.marks()

    def outbox_written(self) -> None:
        """Something was written to the outbox: wake the dispatcher, or deliver now."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
            return
        if self.wake is not None:
            self.wake()
            return
        from socialcredit.service.notices import deliver
        from socialcredit.service.webhooks import deliver_webhooks

        deliver(self)
        deliver_webhooks(self)

    def close(self) -> None:
        """Close the ledger and the service tables."""
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.access_log.close()
        self.states.close()
        self.ledger.close()
        self.db.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- time ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The current time (UTC), from the service's clock."""
        return self.clock()

    def stamp(self) -> str:
        """The current time as stored: ISO 8601, UTC, whole seconds."""
        return self.now().astimezone(dt.UTC).isoformat(timespec="seconds")

    def today(self) -> dt.date:
        """Today's date (UTC)."""
        return self.now().astimezone(dt.UTC).date()

    def day(self) -> int:
        """Today as a day number."""
        return to_day(self.today())
