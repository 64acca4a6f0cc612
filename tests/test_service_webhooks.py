"""Webhooks: an operator subscribes to a published list; changes are POSTed to a real
receiver on loopback, signed, retried after a failure, and never delivered twice. On
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import ServiceEnv

from socialcredit.service.access import entries_of
from socialcredit.service.webhooks import deliver_webhooks


class Receiver:
    """An HTTP server on loopback that answers 500 to its first ``fail`` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, str], bytes, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(outer.got) < outer.fail else 200
                outer.got.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answering_after(delay: Callable[[], float], got: list[int]) -> ThreadingHTTPServer:
    """A receiver on loopback that answers 200 after ``delay()`` seconds, keeping the
    event ids it was sent in ``got``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay())
            got.append(json.loads(body)["event"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def three_changes(env: ServiceEnv) -> None:
    """Three changes of the list, a week apart: three events for each subscription."""
    from socialcredit.service.webhooks import watch_lists

    for i in range(3):
        record = {"id": f"j{i}", "subject": env.persons[i], "type": "court.unfulfilled"}
        env.post([{**record, "occurred_at": "2025-02-20"}])
        env.clock.advance(days=7)
        watch_lists(env.svc)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=1)
    yield r
    r.close()


def subscribe(env: ServiceEnv, url: str, **more: Any) -> Any:
    body = {"scheme": "town", "list": "debtors", "url": url, "purpose": "ticket sales", **more}
    return env.client.post("/v1/subscriptions", json=body, headers=env.auth("operator"))


def test_list_changes_are_signed_retried_and_delivered_once(
    service_env: ServiceEnv, receiver: Receiver
) -> None:
    env = service_env
    debtor = env.persons[0]
    made = subscribe(env, receiver.url)
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    listed = env.client.get("/v1/subscriptions", headers=env.auth("operator")).json()
    assert secret.startswith("scw_") and [s["secret"] for s in listed] == [None]  # shown once
    env.post(
        [{"id": "j1", "subject": debtor, "type": "court.unfulfilled", "occurred_at": "2025-02-01"}]
    )
    assert deliver_webhooks(env.svc) == (0, 0)  # in its notice period: no change yet
    env.clock.advance(days=7)
    assert deliver_webhooks(env.svc) == (0, 1)  # the receiver fails the first attempt
    assert deliver_webhooks(env.svc) == (0, 0)  # not due again before its backoff
    env.clock.advance(seconds=3)
    assert deliver_webhooks(env.svc) == (1, 0)
    assert deliver_webhooks(env.svc) == (0, 0)  # delivered: never sent again
    env.clock.advance(seconds=3600)
    assert deliver_webhooks(env.svc) == (0, 0)
    assert [status for *_, status in receiver.got] == [500, 200]
    (_, first, _), (headers, body, _) = receiver.got
    assert first == body  # the retry carries the same event
    payload = json.loads(body)
    assert (payload["scheme"], payload["list"], payload["added"], payload["removed"]) == (
        "town",
        "debtors",
        [debtor],
        [],
    )
    fields = dict(part.split("=", 1) for part in headers["Socialcredit-Signature"].split(","))
    stamp, mac = fields["t"], fields["v1"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    assert abs(int(stamp) - time.time()) < 60  # fresh: a receiver refuses old timestamps
    forged = hmac.new(b"another secret", f"{stamp}.".encode() + body, hashlib.sha256)
    assert not hmac.compare_digest(mac, forged.hexdigest())
    assert headers["Socialcredit-Event"] == str(payload["event"])
    # telling the operator is a read of the subject's record, with the declared purpose
    assert any(
        e.purpose == "ticket sales" and "webhook" in e.what for e in entries_of(env.svc, debtor)
    )


def test_subscriptions_are_the_operators_own_and_can_be_deleted(
    service_env: ServiceEnv, receiver: Receiver
) -> None:
    env = service_env
    assert subscribe(env, receiver.url, list="nope").status_code == 404
    assert subscribe(env, "ftp://example.org/x").status_code == 422
    assert subscribe(env, receiver.url, extra=1).status_code == 422
    refused = env.client.post(
        "/v1/subscriptions",
        json={"scheme": "town", "list": "debtors", "url": receiver.url, "purpose": "x"},
        headers=env.auth("reviewer"),
    )
    assert refused.status_code == 403
    made = subscribe(env, receiver.url).json()
    assert (
        env.client.delete(
            f"/v1/subscriptions/{made['id']}", headers=env.auth("auditor")
        ).status_code
        == 403
    )
    gone = env.client.delete(f"/v1/subscriptions/{made['id']}", headers=env.auth("operator"))
    assert gone.status_code == 204
    assert env.client.get("/v1/subscriptions", headers=env.auth("operator")).json() == []
    assert (
        env.client.delete(
            f"/v1/subscriptions/{made['id']}", headers=env.auth("operator")
        ).status_code
        == 404
    )
    env.post(
        [
            {
                "id": "j1",
                "subject": env.persons[1],
                "type": "court.unfulfilled",
                "occurred_at": "2025-02-01",
            }
        ]
    )
    env.clock.advance(days=7)
    deliver_webhooks(env.svc)
    assert receiver.got == []  # nothing goes to a deleted subscription


def test_a_slow_webhook_receiver_holds_up_neither_notices_nor_shutdown(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list webhooks are posted from a thread of their own: while one hangs, the
    subjects' notices are still delivered, and closing does not wait for it."""
    from socialcredit.service import webhooks
    from socialcredit.service.dispatch import HOOKS_JOIN_SECONDS, Dispatcher

    env = service_env
    hanging, release = threading.Event(), threading.Event()

    def hang(svc: Any) -> tuple[int, int]:
        hanging.set()
        release.wait(30)
        return 0, 0

    monkeypatch.setattr(webhooks, "deliver_webhooks", hang)
    dispatcher = Dispatcher(env.svc)
    env.svc.dispatcher = dispatcher
    try:
        assert hanging.wait(10)  # the webhook thread is stuck in a POST
        before = len(env.sink.sent)
        h1 = {"id": "h1", "subject": env.persons[0], "type": "court.unfulfilled"}
        env.post([{**h1, "occurred_at": "2025-02-20"}])
        deadline = time.monotonic() + 20
        while len(env.sink.sent) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [n["record"] for n in env.sink.sent[before:]] == ["h1"]
        started = time.monotonic()
        dispatcher.close()
        assert time.monotonic() - started < HOOKS_JOIN_SECONDS + 10  # not the 30 s of the POST
    finally:
        env.svc.dispatcher = None
        release.set()


def test_a_receiver_that_hangs_holds_up_no_other_and_gets_its_events_in_order(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two subscriptions, one to a receiver that answers too late: a round costs one
    timeout, not one per pending delivery; the other receiver gets its events in that
    round; the late receiver's later events wait for its first, and come in order."""
    from socialcredit.service import webhooks
    from socialcredit.service.notices import deliver

    env = service_env
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.5)
    # the batches below deliver their notices, and leave the webhooks to this test
    monkeypatch.setattr(env.svc, "outbox_written", lambda: deliver(env.svc))
    slow_until = [time.monotonic() + 3600.0]
    got: list[int] = []
    # past the client's timeout, until told otherwise
    late = answering_after(lambda: 1.5 if time.monotonic() < slow_until[0] else 0.0, got)
    fast = Receiver(fail=0)
    try:
        assert subscribe(env, f"http://127.0.0.1:{late.server_address[1]}/").status_code == 201
        assert subscribe(env, fast.url).status_code == 201
        three_changes(env)
        started = time.monotonic()
        assert deliver_webhooks(env.svc) == (3, 1)
        assert time.monotonic() - started < 1.4  # one timeout (0.5 s), not three
        assert len(fast.got) == 3
        slow_until[0] = 0.0
        env.clock.advance(seconds=3)  # the failed delivery is due again
        assert deliver_webhooks(env.svc) == (3, 0)
        assert got[-3:] == sorted(got[-3:])  # in the order of the events
    finally:
        late.shutdown()
        late.server_close()
        fast.close()


def test_a_receiver_that_answers_no_http_fails_alone_and_a_slow_one_costs_one_post(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver whose answer is no HTTP is a failed delivery (backed off), not an error
    of the round; a receiver that answers slowly posts no more after the round's time
    while the others are marked delivered."""
    import socket

    from socialcredit.service import webhooks
    from socialcredit.service.notices import deliver

    env = service_env
    monkeypatch.setattr(webhooks, "ROUND_SECONDS", 0.3)
    monkeypatch.setattr(env.svc, "outbox_written", lambda: deliver(env.svc))

    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen(16)
    stop = threading.Event()

    def answer_garbage() -> None:
        garbage.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = garbage.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT-HTTP\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()

    slow = answering_after(lambda: 0.5, [])
    fast = Receiver(fail=0)
    try:
        for url in (
            f"http://127.0.0.1:{garbage.getsockname()[1]}/",
            f"http://127.0.0.1:{slow.server_address[1]}/",
            fast.url,
        ):
            assert subscribe(env, url).status_code == 201
        three_changes(env)
        started = time.monotonic()
        # the fast receiver's 3, the slow one's first (its others wait), the garbage fails
        assert deliver_webhooks(env.svc) == (4, 1)
        assert time.monotonic() - started < 1.5  # not the slow receiver's 3 x 0.5 s
        assert len(fast.got) == 3
        errors = env.svc.db.query(
            "SELECT last_error FROM svc_deliveries WHERE last_error IS NOT NULL"
        )
        assert [e for (e,) in errors] and all("BadStatusLine" in e for (e,) in errors)
        # the slow one's other two, one a round; the garbage one waits for its back-off
        assert [deliver_webhooks(env.svc) for _ in range(2)] == [(1, 0), (1, 0)]
    finally:
        stop.set()
        garbage.close()
        slow.shutdown()
        slow.server_close()
        fast.close()
