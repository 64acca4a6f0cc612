"""Notices delivered by webhook and by SMTP, and an outbox that a sink fails midway."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ServiceEnv

from socialcredit.errors import SocialCreditError
from socialcredit.service.notices import deliver
from socialcredit.service.settings import load_settings
from socialcredit.service.sinks import FileSink, SmtpSink, WebhookSink, make_sink


def record(i: str, subject: str, type: str = "court.unfulfilled") -> dict[str, Any]:
    return {"id": i, "subject": subject, "type": type, "occurred_at": "2025-02-20"}


@dataclass
class Receiver:
    """A local HTTP server that answers ``status`` and keeps what it was sent."""

    url: str = ""
    status: int = 200
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    outer = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            outer.got.append((dict(self.headers), body))
            self.send_response(outer.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    outer.url = f"http://127.0.0.1:{server.server_address[1]}/notices"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield outer
    server.shutdown()
    server.server_close()


def test_the_webhook_sink_posts_each_notice_signed(
    service_env: ServiceEnv, receiver: Receiver
) -> None:
    env = service_env
    env.svc.sink = WebhookSink(receiver.url, "s3cret")
    receiver.status = 500
    env.post([record("j1", env.persons[0]), record("j2", env.persons[1])])  # tried at once
    assert deliver(env.svc) == (0, 2)  # refused again: both stay in the outbox
    receiver.status = 200
    receiver.got.clear()
    assert deliver(env.svc) == (2, 0)
    assert deliver(env.svc) == (0, 0)  # delivered once
    assert [json.loads(body)["record"] for _, body in receiver.got] == ["j1", "j2"]
    for headers, body in receiver.got:
        stamp, mac = headers["Socialcredit-Signature"].split(",")
        t = stamp.removeprefix("t=")
        want = hmac.new(b"s3cret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        assert mac == f"v1={want}"
        assert headers["Socialcredit-Event"] == str(json.loads(body)["notice"])


def test_a_sink_failing_midway_keeps_only_the_rest_pending(
    service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = service_env
    sent: list[str] = []

    class Flaky:
        def send(self, notice: dict[str, Any]) -> None:
            if len(sent) == 1:
                raise OSError("the line dropped")
            sent.append(notice["record"])

    class Down:
        def send(self, notice: dict[str, Any]) -> None:
            raise OSError("no line")

    env.svc.sink = Down()
    env.post([record("j1", env.persons[0]), record("j2", env.persons[1])])
    # the operator is told why, once for the same failure
    assert deliver(env.svc) == (0, 2) and deliver(env.svc) == (0, 2)
    said = [r.getMessage() for r in caplog.records if "notice sink" in r.getMessage()]
    assert len(said) == 1 and "no line" in said[0] and "2 notice(s) stay pending" in said[0]
    env.svc.sink = Flaky()
    assert deliver(env.svc) == (1, 1)
    env.svc.sink = env.sink
    assert deliver(env.svc) == (1, 0)
    assert sent + [n["record"] for n in env.sink.sent] == ["j1", "j2"]  # each once


def test_the_smtp_sink_mails_each_notice_to_its_subjects_address() -> None:
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self) -> None:
            self.mails: list[tuple[str, list[str], bytes]] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            self.mails.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
            return "250 OK"

    keep = Keep()
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = Controller(keep, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        sink = SmtpSink("127.0.0.1", port, "notices@town.invalid", "{subject}@mail.invalid")
        sink.send(
            {
                "notice": 7,
                "to": "0040xx",
                "kind": "adverse",
                "record": "j1",
                "scheme": "town",
                "created_at": "2025-03-01T10:00:00+00:00",
                "takes_effect_on": "2025-03-08",
                "content": {"notice": "an adverse record", "appeal": "within 30 days"},
            }
        )
    finally:
        relay.stop()
    ((sender, to, content),) = keep.mails
    assert (sender, to) == ("notices@town.invalid", ["0040xx@mail.invalid"])
    text = content.decode()
    assert "Subject: Notice 7: adverse, record j1" in text
    assert "appeal: within 30 days" in text and "notice-7.json" in text


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"notice_sink": "webhook"}, "notice_webhook_url"),
        ({"notice_sink": "webhook", "notice_webhook_url": "http://127.0.0.1:9/n"}, "secret"),
        ({"notice_sink": "smtp"}, "notice_smtp_host"),
        ({"notice_sink": "carrier pigeon"}, "notice_sink"),
    ],
)
def test_an_incomplete_sink_is_refused_naming_what_it_needs(
    given: dict[str, str], named: str
) -> None:
    with pytest.raises(SocialCreditError, match=named):
        load_settings(schemes=["rongcheng"], **given)


def test_the_settings_make_the_sink_they_name() -> None:
    webhook = load_settings(
        schemes=["rongcheng"],
        notice_sink="webhook",
        notice_webhook_url="https://gateway.invalid/notices",
        notice_webhook_secret="k",
    )
    assert isinstance(make_sink(webhook), WebhookSink)
    smtp = load_settings(schemes=["rongcheng"], notice_sink="smtp", notice_smtp_host="relay")
    assert isinstance(made := make_sink(smtp), SmtpSink) and made.port == 25


def test_a_notices_file_in_no_folder_is_refused_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "notices.jsonl"
    settings = load_settings(schemes=["rongcheng"], notice_file=str(missing))
    with pytest.raises(SocialCreditError, match="does not exist \\(setting notice_file\\)"):
        make_sink(settings)
    fine = load_settings(schemes=["rongcheng"], notice_file=str(tmp_path / "n.jsonl"))
    assert isinstance(make_sink(fine), FileSink)
