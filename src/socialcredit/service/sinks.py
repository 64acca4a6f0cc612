"""Where notices go: a file of JSON lines, or the console. Webhook or SMTP sinks implement
the same one-method interface."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

from socialcredit.service.settings import Settings

__all__ = ["ConsoleSink", "FileSink", "MemorySink", "Sink", "make_sink"]


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
    return FileSink(settings.notice_file)
