"""Where notices go: a file of JSON lines, the console, a webhook or an SMTP relay.

Every sink has one method, ``send`` (one notice; it raises when the notice could not be
delivered, which leaves it in the outbox to be tried again); a sink that can deliver many
at once offers ``send_lines`` or ``send_many`` too. The registry holds no addresses: the
webhook and the SMTP relay are the operator's gateway to the subjects' real channels
(an e-ID mailbox, a post office), the same seam as sign-in (docs/service.md).
"""

from __future__ import annotations

import json
import os
import smtplib
import sys
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from socialcredit.errors import SocialCreditError
from socialcredit.service.settings import Settings

__all__ = [
    "ConsoleSink",
    "FileSink",
    "MemorySink",
    "Sink",
    "SmtpSink",
    "WebhookSink",
    "make_sink",
]


class Sink(Protocol):
    """Delivers one notice; raises when it could not (the notice stays in the outbox)."""

    def send(self, notice: dict[str, Any]) -> None: ...


class FileSink:
    """Appends each notice as one JSON line to a file, flushed to disk before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, notice: dict[str, Any]) -> None:
        self.send_many([notice])

    def send_many(self, notices: list[dict[str, Any]]) -> None:
        """Append several notices with one write and one flush to disk."""
        self.send_lines([json.dumps(n, ensure_ascii=False, sort_keys=True) for n in notices])

    def send_lines(self, lines: list[str]) -> None:
        """Append notices given as JSON lines (keys sorted), with one write and one flush."""
        text = "".join(line + "\n" for line in lines)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())


class ConsoleSink:
    """Prints each notice as one JSON line on standard output."""

    def send(self, notice: dict[str, Any]) -> None:
        self.send_lines([json.dumps(notice, ensure_ascii=False, sort_keys=True)])

    def send_lines(self, lines: list[str]) -> None:
        """Print notices given as JSON lines (keys sorted)."""
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()


class WebhookSink:
    """POSTs each notice as JSON to a URL, signed as the list webhooks are
    (``Socialcredit-Signature``, with the notice's id in ``Socialcredit-Event``); anything
    but a 2xx answer raises."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret

    def send(self, notice: dict[str, Any]) -> None:
        from socialcredit.service.webhooks import post_signed

        body = json.dumps(notice, ensure_ascii=False, sort_keys=True).encode()
        error = post_signed(self.url, self.secret, int(notice["notice"]), body)
        if error is not None:
            raise OSError(f"the notice webhook {self.url} answered {error}")


class SmtpSink:
    """Mails each notice, as text with the JSON attached, through an SMTP relay, to the
    address ``to`` makes of the subject's code (``{subject}``)."""

    def __init__(self, host: str, port: int, sender: str, to: str) -> None:
        self.host, self.port, self.sender, self.to = host, port, sender, to

    def send(self, notice: dict[str, Any]) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = self.to.format(subject=notice["to"])
        mail["Subject"] = f"Notice {notice['notice']}: {notice['kind']}, record {notice['record']}"
        content = notice["content"]
        lines = [f"{key}: {value}" for key, value in content.items()]
        mail.set_content(
            "\n".join([*lines, "", f"takes effect on {notice['takes_effect_on']}"]) + "\n"
        )
        mail.add_attachment(
            json.dumps(notice, ensure_ascii=False, sort_keys=True, indent=2).encode(),
            maintype="application",
            subtype="json",
            filename=f"notice-{notice['notice']}.json",
        )
        with smtplib.SMTP(self.host, self.port, timeout=10) as relay:
            relay.send_message(mail)


class MemorySink:
    """Keeps notices in a list (for embedding the service, and for tests)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, notice: dict[str, Any]) -> None:
        self.sent.append(notice)


def make_sink(settings: Settings) -> Sink:
    """The sink the settings name."""
    if settings.notice_sink == "console":
        return ConsoleSink()
    if settings.notice_sink == "webhook":
        assert settings.notice_webhook_url is not None  # checked with the settings
        return WebhookSink(settings.notice_webhook_url, settings.notice_webhook_secret)
    if settings.notice_sink == "smtp":
        assert settings.notice_smtp_host is not None  # checked with the settings
        return SmtpSink(
            settings.notice_smtp_host,
            settings.notice_smtp_port,
            settings.notice_smtp_from,
            settings.notice_smtp_to,
        )
    folder = settings.notice_file.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        why = "does not exist" if not folder.is_dir() else "is not writable"
        raise SocialCreditError(
            f"the notices cannot be written to {settings.notice_file}: the folder {folder} "
            f"{why} (setting notice_file)"
        )
    return FileSink(settings.notice_file)
