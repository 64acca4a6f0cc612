"""The lab report in a real browser: headless Chromium, offline, screenshots kept.

Two schemes are simulated on a small town and the report is opened from disk with every
network request blocked. The page must ask for nothing but itself, log no error, lay the
schemes out side by side, and draw every plot at a visible size. Screenshots are kept in
``test-artifacts/`` (see ``tests/browser.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import BrowserPage

from socialcredit.lab.report import write_outputs
from socialcredit.lab.simulate import make_settings, simulate
from socialcredit.lab.world import load_world
from socialcredit.scheme import load

SCHEMES = ("rongcheng", "court_dishonest_debtors")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = make_settings(load_world("town"), population=1500, years=1, seed=5)
    runs = [simulate(settings, load(s)) for s in SCHEMES]
    path = tmp_path_factory.mktemp("browser") / "report.html"
    write_outputs(path, settings, runs, "socialcredit simulate (test)")
    return path


def test_report_renders_offline_with_visible_plots(report: Path, browser_page: BrowserPage) -> None:
    browser_page.open(report)
    page = browser_page.page

    # nothing but the file itself was asked for, and nothing was blocked or failed
    assert browser_page.blocked == []
    assert browser_page.requests == [report.resolve().as_uri()]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert browser_page.console_errors == []

    # every plot is drawn at a visible size and says what it shows
    charts = page.locator("svg.chart")
    assert charts.count() >= 2 * 10
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, i
        assert chart.get_attribute("role") == "img"
        assert len(chart.get_attribute("aria-label") or "") > 20
        assert chart.locator("polyline, rect").count() > 0
    drawn = page.locator("svg.chart polyline").first.bounding_box()
    assert drawn is not None and drawn["width"] > 100

    # the schemes stand side by side, one column each, in every section
    columns = page.locator("#lists .col")
    assert columns.count() == len(SCHEMES)
    left, right = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert left is not None and right is not None
    assert right["x"] >= left["x"] + left["width"]
    assert abs(right["y"] - left["y"]) < 1
    headings = page.locator("h2").all_inner_texts()
    assert headings[0] == "Rights audit" and headings[-1] == "Seed and parameters"

    full = browser_page.screenshot("report-full")
    top = browser_page.screenshot("report-top", full_page=False)
    for shot in (full, top):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    page.locator("#sanctions").screenshot(path=str(full.with_name("report-sanctions.png")))


def test_network_requests_are_blocked_and_recorded(
    tmp_path: Path, browser_page: BrowserPage
) -> None:
    # the fixture itself: a page that reaches out is caught, so the test above can fail
    page = tmp_path / "leaky.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="https://example.org/pixel.png" alt="x">'
        "</body></html>",
        encoding="utf-8",
    )
    browser_page.open(page)
    assert browser_page.blocked == ["https://example.org/pixel.png"]
    assert browser_page.console_errors != []
