"""The access log: who read a subject's record, when, and for what declared purpose.

Every read of a subject's record by anyone but the subject writes one entry, before the
answer is given; a read without a purpose is refused. The subject sees the entries of the
last 12 months (:func:`entries_of`). The table is append-only.

Entries are written by group commit (:class:`AccessLogWriter`): one thread with its own
connection takes every entry waiting, writes them in one transaction and commits once
(one fsync for all of them), then releases the requests that wait for them. The entries
that arrive while one group commits form the next group, so the groups grow with the load
by themselves, and a group never waits for more: with a commit of 1-2 ms under load,
making each group wait another millisecond for company kept a request waiting 4 ms for
its entry at the median instead of 2-3.6 ms, and cut the decisions answered per second by
up to a third (``benchmarks/RESULTS.md``). A request is answered only after its entry is
durable; if the commit fails, every request of the group fails (503) and none is answered.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import contextlib
import datetime as dt
import json
import queue
import re
import socket
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from socialcredit.errors import LedgerError
from socialcredit.service.credentials import Principal
from socialcredit.service.errors import InvalidRequest, PurposeRequired
from socialcredit.store.service_db import ServiceDB

if TYPE_CHECKING:
    from socialcredit.service.core import Service

__all__ = [
    "WAIT_SECONDS",
    "AccessEntry",
    "AccessLogServer",
    "AccessLogWriter",
    "Entry",
    "declared",
    "entries_of",
    "entry",
    "log_read",
    "plain_code",
]

MAX_PURPOSE = 200
LOOKBACK_MONTHS = 12
GROUP_MAX = 2000  # entries committed together at most
WAIT_SECONDS = 30.0

_INSERT = (
    "INSERT INTO svc_access_log (at, subject, actor, role, purpose, what) VALUES (?, ?, ?, ?, ?, ?)"
)
Entry = tuple[str, str, str, str, str, str]
Waiter = Future[None] | tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


def _settle(futures: list[asyncio.Future[None]], failed: Exception | None) -> None:
    for done in futures:
        if done.done():  # cancelled: the client went away
            continue
        if failed is None:
            done.set_result(None)
        else:
            done.set_exception(failed)


def _settle_group(group: list[tuple[list[Entry], Waiter]], failed: Exception | None) -> None:
    """Settle the futures of a group: done, or failed with ``failed``."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, done in group:
        if isinstance(done, Future):
            if failed is None:
                done.set_result(None)
            else:
                done.set_exception(failed)
        else:
            loops.setdefault(done[0], []).append(done[1])
    for loop, futures in loops.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, failed)


class AccessLogWriter:
    """Writes access-log entries by group commit, on a thread of its own.

    :meth:`write` queues one entry and returns a future that is done once the entry is
    committed (or failed with the commit's error). While one group commits, the entries
    that arrive wait for the next commit, so under load one fsync serves many requests.

    The group is committed on a connection of the writer's own, or -- with ``remote``, the
    socket of the server's supervising process (:class:`AccessLogServer`) -- sent there and
    committed with the groups of the other processes: SQLite has one writer at a time, and
    one commit for every process keeps the groups large.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        checkpoints: bool = True,
        remote: Path | None = None,
    ) -> None:
        self._db: ServiceDB | None = None
        self._remote = remote
        self._links: dict[asyncio.AbstractEventLoop, _AsyncLink] = {}
        if remote is None:
            self._db = ServiceDB.connect(target)
            if not checkpoints and self._db.dialect == "sqlite":  # another thread checkpoints
                self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._queue: queue.SimpleQueue[tuple[list[Entry], Waiter] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def write(self, entry: Entry) -> Future[None]:
        """Queue one entry; the future is done when it is durable."""
        return self.write_many([entry])

    def write_many(self, entries: list[Entry]) -> Future[None]:
        """Queue entries that are committed together; the future is done when they are
        durable."""
        done: Future[None] = Future()
        if not self._thread.is_alive():
            done.set_exception(RuntimeError("the access log is closed"))
        else:
            self._queue.put((entries, done))
        return done

    def write_async(self, entry: Entry) -> asyncio.Future[None]:
        """Queue one entry from a coroutine; await the future: it is done when the entry
        is durable. The futures of one commit are settled with one call into their event
        loop."""
        loop = asyncio.get_running_loop()
        if self._remote is not None:
            link = self._links.get(loop)
            if link is None:
                link = self._links[loop] = _AsyncLink(loop, self._remote)
            return link.write(entry)
        done: asyncio.Future[None] = loop.create_future()
        if not self._thread.is_alive():
            done.set_exception(RuntimeError("the access log is closed"))
        else:
            self._queue.put(([entry], (loop, done)))
        return done

    def _take(self) -> tuple[list[tuple[list[Entry], Waiter]], bool]:
        """The next group: what is queued (waiting for the first), and whether to stop."""
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        size = len(first[0])
        while size < GROUP_MAX:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
            size += len(item[0])
        return group, False

    def _run(self) -> None:
        if self._remote is not None:
            self._run_remote()
            return
        assert self._db is not None
        while True:
            group, stop = self._take()
            if group:
                self._commit(group)
            if stop:
                break
        self._db.close()

    def _run_remote(self) -> None:
        """Send each group as soon as it is taken, without waiting for the answer to the
        one before (a thread reads the answers, in order): the supervisor commits what
        the processes sent meanwhile together."""
        assert self._remote is not None
        link: _Link | None = None
        while True:
            group, stop = self._take()
            if group:
                try:
                    if link is None or link.lost:
                        link = _Link(self._remote)
                    link.send(group)
                except (OSError, EOFError) as exc:
                    _settle_group(group, LedgerError(f"the access log cannot be written: {exc}"))
                    if link is not None:
                        link.close()
                    link = None
            if stop:
                break
        if link is not None:
            link.close(drain=WAIT_SECONDS)

    def _commit(self, group: list[tuple[list[Entry], Waiter]]) -> None:
        assert self._db is not None
        failed: Exception | None = None
        try:
            with self._db.transaction() as db:
                db.many(_INSERT, [entry for entries, _ in group for entry in entries])
        except Exception as exc:  # every request of the group fails: none is answered
            failed = LedgerError(f"the access log cannot be written: {exc}")
        _settle_group(group, failed)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close its connections (that of
        the running event loop, when called on one: the server's lifespan ends there)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        try:
            link = self._links.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            link = None
        if link is not None:
            link.close()


def _frame(value: object) -> bytes:
    """One message between the processes of the server: its length, then JSON."""
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return struct.pack("!I", len(data)) + data


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock: socket.socket) -> Any:
    (n,) = struct.unpack("!I", _read_exactly(sock, 4))
    return json.loads(_read_exactly(sock, n))


def _failure(answer: Any) -> LedgerError | None:
    return None if answer is None else LedgerError(f"the access log cannot be written: {answer}")


class _Link:
    """A connection to the supervisor's :class:`AccessLogServer` for a thread: groups
    sent, and a thread that settles them as their answers come, in order."""

    def __init__(self, where: Path) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._socket.connect(str(where))
        except OSError:
            self._socket.close()
            raise
        self._pending: collections.deque[list[tuple[list[Entry], Waiter]]] = collections.deque()
        self._lock = threading.Lock()
        self.lost = False
        threading.Thread(target=self._answers, name="access-log-answers", daemon=True).start()

    def send(self, group: list[tuple[list[Entry], Waiter]]) -> None:
        with self._lock:
            self._pending.append(group)
        try:
            self._socket.sendall(_frame([entry for entries, _ in group for entry in entries]))
        except BaseException:
            with self._lock:
                if self._pending and self._pending[-1] is group:
                    self._pending.pop()
            raise

    def _answers(self) -> None:
        while True:
            try:
                answer = _read_frame(self._socket)
            except (OSError, EOFError, ValueError) as exc:
                self.lost = True
                error = LedgerError(f"the access log cannot be written: {exc or 'no answer'}")
                with self._lock:
                    lost = list(self._pending)
                    self._pending.clear()
                for group in lost:
                    _settle_group(group, error)
                return
            with self._lock:
                group = self._pending.popleft()
            _settle_group(group, _failure(answer))

    def close(self, drain: float = 0.0) -> None:
        """Close, after waiting up to ``drain`` seconds for the answers still due."""
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and not self.lost:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.001)
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()


class _AsyncLink(asyncio.Protocol):
    """A connection to the supervisor's :class:`AccessLogServer` for an event loop: the
    entries written in one turn of the loop go as one message, and the answers settle
    their futures, in order; no thread is involved."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: Path) -> None:
        self._loop = loop
        self._where = where
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[Any] | None = None
        self._buffer: list[tuple[Entry, asyncio.Future[None]]] = []
        self._pending: collections.deque[list[asyncio.Future[None]]] = collections.deque()
        self._received = bytearray()
        self._scheduled = False

    def write(self, entry: Entry) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        self._buffer.append((entry, done))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return done

    def _flush(self) -> None:
        self._scheduled = False
        if not self._buffer:
            return
        if self._transport is None:
            if self._connecting is None:
                self._connecting = self._loop.create_task(self._connect())
            return
        batch, self._buffer = self._buffer, []
        self._pending.append([done for _, done in batch])
        self._transport.write(_frame([entry for entry, _ in batch]))

    async def _connect(self) -> None:
        try:
            await self._loop.create_unix_connection(lambda: self, str(self._where))
        except OSError as exc:
            failed, self._buffer = self._buffer, []
            _settle(
                [done for _, done in failed],
                LedgerError(f"the access log cannot be written: {exc}"),
            )
        finally:
            self._connecting = None
        self._flush()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        while len(received) >= 4:
            (n,) = struct.unpack_from("!I", received)
            if len(received) < 4 + n:
                break
            answer = json.loads(bytes(received[4 : 4 + n]))
            del received[: 4 + n]
            _settle(self._pending.popleft(), _failure(answer))

    def close(self) -> None:
        """Close the connection (call on the loop's thread)."""
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._received.clear()
        error = LedgerError(f"the access log cannot be written: {exc or 'connection lost'}")
        while self._pending:  # sent, and not known to be durable: refused (503)
            _settle(self._pending.popleft(), error)
        if self._buffer and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)


class AccessLogServer:
    """In the server's supervising process: commits the groups of entries the other
    processes send (:class:`AccessLogWriter` with ``remote``) through ``writer``, the
    groups that arrive together in one transaction, and answers each once it is durable
    (null) or failed (the error, as text). The socket is in the server's private
    directory."""

    def __init__(self, writer: AccessLogWriter, where: Path) -> None:
        self._writer = writer
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(where))
        self._listener.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, name="access-log-server", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                if self._closed:
                    return
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="access-log-client", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        lock = threading.Lock()  # answers are sent by the writer's thread, or by this one

        def answer(done: Future[None]) -> None:
            exc = done.exception()
            with lock, contextlib.suppress(OSError):
                connection.sendall(_frame(None if exc is None else str(exc) or repr(exc)))

        with connection:
            while True:
                try:
                    entries = _read_frame(connection)
                except (OSError, EOFError, ValueError):
                    return
                # groups are committed, and so answered, in the order they came
                group = [tuple(map(str, e)) for e in entries]
                self._writer.write_many(group).add_done_callback(answer)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop accepting (the writer is closed by its owner)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


@dataclass(frozen=True)
class AccessEntry:
    """One read of a subject's record."""

    at: str
    actor: str
    role: str
    purpose: str
    what: str


def declared(purpose: str | None) -> str:
    """The declared purpose, or :class:`PurposeRequired` when there is none."""
    text = (purpose or "").strip()
    if not text:
        raise PurposeRequired(
            "a read of a subject's record needs a declared purpose: add ?purpose=... "
            "(it is shown to the subject in their access log)"
        )
    if len(text) > MAX_PURPOSE or any(ord(c) < 32 for c in text):
        raise PurposeRequired(f"the purpose must be one line of at most {MAX_PURPOSE} characters")
    return text


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def plain_code(code: str) -> str:
    """``code``, refused (422) when it holds a control character: no code holds one, and
    the access log, which every read of a code is written to, keeps none (PostgreSQL's
    text refuses a NUL)."""
    if _CONTROL.search(code):
        raise InvalidRequest("a code has no control characters")
    return code


def entry(svc: Service, subject: str, who: Principal | None, purpose: str, what: str) -> Entry:
    """The entry of one read (``who`` None: the public), stamped now."""
    actor, role = (who.name, who.role) if who is not None else ("the public", "public")
    return (svc.stamp(), subject, actor, role, purpose, what)


def months_before(when: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` calendar months before ``when`` (the month's last
    day where it has no such day: 29 February less 12 months is 28 February)."""
    index = when.year * 12 + when.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return when.replace(year=year, month=month + 1, day=min(when.day, last))


def log_read(svc: Service, subject: str, who: Principal | None, purpose: str, what: str) -> None:
    """Write one entry (``who`` None: the public); return once it is durable."""
    svc.access_log.write(entry(svc, subject, who, purpose, what)).result(WAIT_SECONDS)


def entries_of(svc: Service, subject: str, *, months: int = LOOKBACK_MONTHS) -> list[AccessEntry]:
    """The entries about ``subject`` of the last ``months`` months (to the same day and
    time of the month that many months ago, or that month's last day), newest first."""
    since = months_before(svc.now(), months).astimezone(dt.UTC)
    rows = svc.db.query(
        "SELECT at, actor, role, purpose, what FROM svc_access_log WHERE subject = ? "
        "AND at >= ? ORDER BY id DESC",
        (subject, since.isoformat(timespec="seconds")),
    )
    return [AccessEntry(*map(str, row)) for row in rows]
