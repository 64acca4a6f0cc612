"""A real browser for tests: Debian's Chromium driven by Playwright, offline.

``browser_page`` yields a :class:`BrowserPage`: a fresh Playwright page in its own context
in which every request other than ``file:``, ``data:`` and ``about:`` is blocked and
recorded, console errors and page errors are collected, and screenshots are kept under
``test-artifacts/<test name>/`` (or ``$SOCIALCREDIT_TEST_ARTIFACTS``; git-ignored).

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (or
``$SOCIALCREDIT_CHROMIUM``), which ``.ci/run`` installs with apt-get when it is missing.
Without Chromium or the ``playwright`` package the tests that use the fixture are skipped
locally and fail under CI (``CI=true``), where they must run: the convention of the
PostgreSQL tests in ``test_store.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("SOCIALCREDIT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("SOCIALCREDIT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
LOCAL_SCHEMES = ("file:", "data:", "about:")


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip a test that needs the browser, or fail it under CI, where it must run."""
    if under_ci():
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)")
    pytest.skip(reason)


@dataclass
class BrowserPage:
    """A page and what happened on it."""

    page: Page
    artifacts: Path
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    blocked: list[str] = field(default_factory=list)  # the ones that would leave the machine
    console_errors: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        """Load a local file and wait until it and everything it refers to is loaded."""
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a PNG screenshot under the test's artefact folder; return its path."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Chromium, launched once per test module: Playwright's synchronous API keeps
    an event loop running on the main thread while it is open, which tests of asyncio code
    in later modules must not find."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh offline page; see the module doc."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    out = BrowserPage(page, ARTIFACTS / name)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            out.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("request", lambda req: out.requests.append(req.url))
    page.on(
        "console", lambda msg: out.console_errors.append(msg.text) if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: out.console_errors.append(str(exc)))
    try:
        yield out
    finally:
        context.close()
