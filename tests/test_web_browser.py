"""The pages in a real browser: Debian's Chromium, driven by Playwright, against the real
server (uvicorn on a free loopback port) over a seeded SQLite ledger.

One walk through due process: the public finds a person on the published debtors list
(masked) -> the person signs in with a one-time link -> contests the record -> a reviewer
signs in and upholds the appeal -> the person's score, grade and lists change, and the public
lookup shows nothing any more. A screenshot of each step is kept in ``test-artifacts/web/``
(``$SOCIALCREDIT_TEST_ARTIFACTS/web``; git-ignored). No request may leave the loopback
server: any other is blocked and fails the test.

The browser comes from the ``chromium`` fixture of ``tests/browser.py``: skipped where
Chromium or Playwright is missing, failed under CI.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from browser import ARTIFACTS
from conftest import SERVICE_SCHEME, FakeClock, org_codes, person_codes

from socialcredit.api import create_app
from socialcredit.ids import mask
from socialcredit.service import Service, Settings
from socialcredit.service.credentials import add_agency, add_key, authenticate
from socialcredit.service.ingest import NewRecord, NewSubject, ingest
from socialcredit.service.sinks import MemorySink
from socialcredit.store.service_db import upgrade

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SHOTS = ARTIFACTS / "web"
# The test scheme, with an unfulfilled judgment worth -100 points.
SCHEME = SERVICE_SCHEME.replace("measure: count, points: 0}", "measure: count, points: -100}")


@dataclass
class Site:
    """The running server and what the walk needs."""

    base: str
    svc: Service
    person: str
    org: str
    reviewer_key: str
    left_loopback: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The service on a fresh SQLite ledger, seeded and ten days on, served by uvicorn."""
    assert SCHEME != SERVICE_SCHEME
    scheme = tmp_path / "town.yaml"
    scheme.write_text(SCHEME)
    database = str(tmp_path / "town.ledger")
    upgrade(database)
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    settings = Settings(database=database, schemes=[str(scheme)])
    svc = Service.open(settings, clock=clock, sink=MemorySink())
    now = svc.stamp()
    agency = add_agency(svc.db, "Traffic police", ["traffic.red_light", "court.unfulfilled"], now)
    reviewer_key = add_key(svc.db, "reviewer", "Appeals office", now)
    persons, orgs = person_codes(3, seed=11), org_codes(2, seed=11)
    p, o = persons[0], orgs[0]
    day = dt.date(2025, 2, 20)
    who = authenticate(svc.db, agency)
    assert who is not None
    ingest(
        svc,
        who,
        [
            NewRecord("tp-1", p, "traffic.red_light", day),
            NewRecord("ct-1", p, "court.unfulfilled", day),
            NewRecord("tp-2", persons[1], "traffic.red_light", day),
            NewRecord("ct-9", o, "court.unfulfilled", day),
        ],
        [NewSubject(c, "person") for c in persons] + [NewSubject(c, "organization") for c in orgs],
    )
    clock.advance(days=10)  # past the 7 days of notice
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(svc, close=False), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", svc, p, o, reviewer_key)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        svc.close()


def context_for(chromium: Browser, site: Site) -> BrowserContext:
    """A browser context that may only reach the server; anything else is blocked and kept."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})

    def route(r: Any) -> None:
        url = r.request.url
        if url == site.base or url.startswith(site.base + "/"):
            r.continue_()
        else:
            site.left_loopback.append(url)
            r.abort()

    context.route("**/*", route)
    context.on("console", lambda m: site.errors.append(m.text) if m.type == "error" else None)
    context.on("weberror", lambda e: site.errors.append(str(e.error)))
    return context


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fact(page: Page, name: str) -> str:
    return page.locator(f"#state-town dd.{name}").inner_text().strip()


def look_up(page: Page, site: Site, code: str) -> None:
    page.goto(site.base + "/lookup")
    page.get_by_label("Code").fill(code)
    page.get_by_label("Purpose of the lookup").fill("checking a business partner")
    page.get_by_role("button", name="Look up").click()
    page.wait_for_load_state()


def test_lookup_sign_in_contest_uphold_changes_the_state(chromium: Browser, site: Site) -> None:
    from playwright.sync_api import expect

    public = context_for(chromium, site).new_page()

    # 1. the public looks the person up: on the published debtors list, code masked
    look_up(public, site, site.person)
    answer = public.locator("section.answer")
    expect(answer).to_contain_text(mask(site.person, "person"))
    expect(answer).to_contain_text("debtors")
    assert site.person not in public.content()
    # keyboard: the first Tab reaches the skip link, with a visible focus ring
    public.keyboard.press("Tab")
    focused = public.evaluate(
        "() => [document.activeElement.textContent, "
        "getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["Skip to content", "solid"]
    shot(public, "01-public-lookup")

    # 2. the person signs in with a one-time link
    subject = context_for(chromium, site).new_page()
    token = site.svc.identity.issue(site.person)
    subject.goto(f"{site.base}/portal/sign-in?token={token}")
    shot(subject, "02-sign-in")
    subject.get_by_role("button", name="Sign in").click()
    expect(subject.get_by_role("heading", name="Your record", exact=True)).to_be_visible()
    expect(subject.locator("#me")).to_have_text(site.person)
    assert (fact(subject, "score"), fact(subject, "grade")) == ("895", "C")
    assert (fact(subject, "lists"), fact(subject, "denied")) == ("debtors", "travel.air")
    shot(subject, "03-portal-before")

    # 3. the person contests the judgment record
    row = subject.locator("#records tr", has_text="ct-1")
    row.get_by_text("Contest (until").click()
    row.get_by_label("Why record ct-1 is wrong").fill("The judgment was paid on 2025-01-15.")
    row.get_by_role("button", name="Contest record ct-1").click()
    expect(subject.get_by_role("status")).to_contain_text("Record ct-1 is contested")
    expect(subject.locator("#records tr", has_text="ct-1")).to_contain_text("contested")
    expect(subject.locator("#state-town")).to_contain_text("rests on records you contest: ct-1")
    shot(subject, "04-contested")

    # 4. a reviewer signs in and upholds the appeal
    review = context_for(chromium, site).new_page()
    review.goto(site.base + "/review/sign-in")
    review.get_by_label("Reviewer's key").fill(site.reviewer_key)
    review.get_by_label("Purpose").fill("monthly appeal review")
    review.get_by_role("button", name="Sign in").click()
    appeal = review.locator("article.appeal", has_text="ct-1")
    expect(appeal).to_contain_text("The judgment was paid on 2025-01-15.")
    expect(appeal).to_contain_text(mask(site.person, "person"))
    assert site.person not in review.content()
    shot(review, "05-review-queue")
    appeal.get_by_role("button", name="Uphold appeal").click()
    expect(review.get_by_role("status")).to_contain_text("is upheld")
    expect(review.locator("#queue-empty")).to_be_visible()
    shot(review, "06-upheld")

    # 5. the person's state changes; the public sees nothing any more
    subject.reload()
    assert (fact(subject, "score"), fact(subject, "grade")) == ("995", "B")
    assert (fact(subject, "lists"), fact(subject, "denied")) == ("none", "nothing")
    expect(subject.locator("#appeals")).to_contain_text("upheld")
    expect(subject.locator("#access")).to_contain_text("monthly appeal review")
    shot(subject, "07-portal-after")
    look_up(public, site, site.person)
    expect(public.locator("#nothing-published")).to_be_visible()
    shot(public, "08-public-lookup-after")

    assert site.left_loopback == []
    assert site.errors == []


def test_an_organizations_published_record_is_shown_whole(chromium: Browser, site: Site) -> None:
    from playwright.sync_api import expect

    page = context_for(chromium, site).new_page()
    look_up(page, site, site.org)
    answer = page.locator("section.answer")
    expect(answer).to_contain_text(site.org)
    expect(answer.get_by_role("table")).to_contain_text("court.unfulfilled")
    shot(page, "09-organization-lookup")
    page.goto(site.base + "/schemes/town")
    expect(page.get_by_role("heading", name="Rights audit")).to_be_visible()
    shot(page, "10-scheme")
    assert site.left_loopback == []
    assert site.errors == []
