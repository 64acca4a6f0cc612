"""Specification of the pages (``socialcredit.web``): the public lookup, the subject's portal,
the reviewers' queue and the scheme pages, through the same application as the API, on
SQLite and PostgreSQL (the ``service_env`` fixture of conftest.py).

Each browser is its own ``TestClient`` with its own cookie jar.
"""

from __future__ import annotations

import itertools
import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from conftest import ServiceEnv
from fastapi.testclient import TestClient

from socialcredit.ids import mask
from socialcredit.service.appeals import appeals_of
from socialcredit.service.ratelimit import RateLimiter

_ports = itertools.count(51000)


def browser(env: ServiceEnv) -> TestClient:
    """A new browser (its own cookies) on the application of ``env``."""
    return TestClient(env.client.app, client=("127.0.0.1", next(_ports)), follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF field"
    return found.group(1)


def text_of(html: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


class Page(HTMLParser):
    """What the accessibility checks need of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.controls: list[str | None] = []  # ids of inputs a person fills or sets
        self.labels: set[str] = set()
        self.headings: list[str] = []
        self.urls: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag in ("input", "textarea", "select") and a.get("type") not in ("hidden", "submit"):
            self.controls.append(a.get("id"))
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(tag)
        for name in ("href", "src", "action"):
            if a.get(name):
                self.urls.append(str(a[name]))


def record(i: str, subject: str, type: str = "traffic.red_light", **more: Any) -> dict[str, Any]:
    return {"id": i, "subject": subject, "type": type, "occurred_at": "2025-02-20", **more}


@pytest.fixture
def town(service_env: ServiceEnv) -> ServiceEnv:
    """Person 0 ran a red light and owes a judgment (so is on the published debtors list);
    person 1 ran a red light; organization 0 owes a judgment. Ten days later, so every
    record is past its 7 days of notice."""
    env = service_env
    p, o = env.persons, env.orgs
    answer = env.post(
        [
            record("tp-1", p[0]),
            record("ct-1", p[0], "court.unfulfilled"),
            record("tp-2", p[1]),
            record("ct-2", o[0], "court.unfulfilled"),
        ]
    )
    assert answer.status_code == 200, answer.text
    env.clock.advance(days=10)
    return env


def signed_in(env: ServiceEnv, code: str) -> TestClient:
    """A browser in which ``code`` signed in with a one-time token."""
    b = browser(env)
    form = b.get("/portal/sign-in")
    token = env.svc.identity.issue(code)
    answer = b.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/portal", answer.text
    return b


def reviewer(env: ServiceEnv, purpose: str = "deciding appeals") -> TestClient:
    b = browser(env)
    form = b.get("/review/sign-in")
    answer = b.post(
        "/review/sign-in",
        data={"key": env.keys["reviewer"], "purpose": purpose, "csrf": csrf_of(form.text)},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/review", answer.text
    return b


def contest(b: TestClient, record_id: str, reason: str = "I was not there") -> Any:
    page = b.get("/portal")
    return b.post(
        "/portal/contest", data={"record": record_id, "reason": reason, "csrf": csrf_of(page.text)}
    )


def state(html: str, scheme: str = "town") -> dict[str, str]:
    """The facts of the state under ``scheme`` shown in the portal."""
    block = html.split(f'id="state-{scheme}"', 1)[1].split("</dl>", 1)[0]
    return {
        k: text_of(v) for k, v in re.findall(r'<dd class="(\w+)">(.*?)</dd>', block, flags=re.S)
    }


# -- every page --------------------------------------------------------------------------------

PAGES = ["/", "/lookup", "/schemes", "/schemes/town", "/portal/sign-in", "/review/sign-in"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_language_headings_labels_and_only_local_assets(
    town: ServiceEnv, path: str
) -> None:
    answer = browser(town).get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = Page(answer.text)
    assert page.lang == "en"
    assert page.headings and page.headings[0] == "h1"
    assert None not in page.controls, "an input without an id cannot have a label"
    assert set(page.controls) <= page.labels, "every input needs a label"
    assert all(u.startswith(("/", "#")) for u in page.urls), page.urls
    assert "<script" not in answer.text  # readable and usable without JavaScript


def test_pages_carry_a_strict_session_cookie_and_security_headers(town: ServiceEnv) -> None:
    answer = browser(town).get("/lookup")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("scw=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_the_style_sheet_is_served_by_the_package(town: ServiceEnv) -> None:
    answer = browser(town).get("/static/site.css")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/css")
    assert ":focus-visible" in answer.text
    assert browser(town).get("/static/../templates/base.html").status_code == 404


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours #rrggbb."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_colours_of_text_have_a_contrast_of_at_least_7_to_1(town: ServiceEnv) -> None:
    css = browser(town).get("/static/site.css").text
    var = dict(re.findall(r"--(\w+): (#[0-9a-f]{6});", css))
    pairs = [(var[fg], var["paper"]) for fg in ("ink", "muted", "link", "bad", "good", "warn")]
    pairs += [("#ffffff", var[bg]) for bg in ("link", "bad", "good", "warn", "info")]
    pairs += [(var["link"], var["soft"]), (var["ink"], "#fbeeee"), (var["ink"], "#eef7f0")]
    assert min(contrast(fg, bg) for fg, bg in pairs) >= 7.0
    assert contrast(var["focus"], var["paper"]) >= 3.0  # a focus ring is not text: 3:1


def test_pages_are_not_in_the_api_document(town: ServiceEnv) -> None:
    paths = town.client.get("/openapi.json").json()["paths"]
    pages = [p for p in paths if p == "/" or p.startswith(("/lookup", "/portal", "/review"))]
    assert pages == [] and "/schemes" not in paths and "/static/{name}" not in paths


# -- the public lookup -------------------------------------------------------------------------


def look_up(b: TestClient, code: str, purpose: str = "checking a supplier") -> Any:
    form = b.get("/lookup")
    return b.post("/lookup", data={"code": code, "purpose": purpose, "csrf": csrf_of(form.text)})


def test_lookup_shows_an_organizations_published_list_and_records(town: ServiceEnv) -> None:
    answer = look_up(browser(town), town.orgs[0])
    assert answer.status_code == 200
    text = text_of(answer.text)
    assert town.orgs[0] in text
    assert "black list debtors (scheme town)" in text
    assert "court.unfulfilled 2025-02-20 0 town no" in text


def test_lookup_shows_a_listed_person_masked_and_nothing_of_an_unlisted_one(
    town: ServiceEnv,
) -> None:
    listed, unlisted = town.persons[0], town.persons[1]
    answer = look_up(browser(town), listed)
    assert listed not in answer.text
    assert mask(listed, "person") in answer.text
    assert "debtors" in text_of(answer.text)
    assert "tp-1" not in answer.text and "red_light" not in answer.text  # no records of persons
    quiet = look_up(browser(town), unlisted)
    assert unlisted not in quiet.text
    assert 'id="nothing-published"' in quiet.text
    never = "110101199003074514"  # a valid number nobody registered
    assert text_of(look_up(browser(town), never).text).replace(
        mask(never, "person"), "X"
    ) == text_of(quiet.text).replace(mask(unlisted, "person"), "X")


def test_a_persons_lookup_is_in_their_access_log_with_its_purpose(town: ServiceEnv) -> None:
    look_up(browser(town), town.persons[0], purpose="vetting a tenant")
    page = signed_in(town, town.persons[0]).get("/portal")
    assert "the public public vetting a tenant public lookup" in text_of(page.text)


def test_lookup_without_a_purpose_is_refused(town: ServiceEnv) -> None:
    answer = look_up(browser(town), town.orgs[0], purpose="  ")
    assert answer.status_code == 400
    assert "purpose" in text_of(answer.text)
    assert "debtors" not in text_of(answer.text).split("Look up", 1)[1]


def test_lookup_is_rate_limited_with_retry_after(town: ServiceEnv) -> None:
    town.svc.limiter = RateLimiter(1, 1)  # one lookup a minute
    b = browser(town)
    assert look_up(b, town.orgs[0]).status_code == 200
    answer = look_up(b, town.orgs[0])
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1


# -- CSRF -------------------------------------------------------------------------------------


def test_a_forged_post_is_refused_and_changes_nothing(town: ServiceEnv) -> None:
    victim = signed_in(town, town.persons[1])
    page = victim.get("/portal")
    # from another site: the browser sends no cookie (SameSite=Strict), nor knows the token
    stranger = browser(town)
    forged = stranger.post("/portal/contest", data={"record": "tp-2", "reason": "x", "csrf": "x"})
    assert forged.status_code == 403
    # with the victim's cookie but a guessed token
    guessed = victim.post("/portal/contest", data={"record": "tp-2", "reason": "x", "csrf": "x"})
    assert guessed.status_code == 403
    # with another session's token
    other = csrf_of(browser(town).get("/lookup").text)
    mixed = victim.post("/portal/contest", data={"record": "tp-2", "reason": "x", "csrf": other})
    assert mixed.status_code == 403
    assert csrf_of(page.text) != other
    assert 'class="badge contested"' not in victim.get("/portal").text
    assert appeals_of(town.svc, town.persons[1]) == []


def test_a_forged_sign_in_does_not_use_the_token_up(town: ServiceEnv) -> None:
    token = town.svc.identity.issue(town.persons[0])
    b = browser(town)
    b.get("/portal/sign-in")
    assert b.post("/portal/sign-in", data={"token": token}).status_code == 403
    form = b.get("/portal/sign-in")
    answer = b.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text)})
    assert answer.status_code == 303


# -- the subject's portal ----------------------------------------------------------------------


def test_sign_in_replaces_the_session_and_a_token_works_once(town: ServiceEnv) -> None:
    b = browser(town)
    form = b.get("/portal/sign-in")
    before = b.cookies["scw"]
    token = town.svc.identity.issue(town.persons[0])
    assert b.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text)}).status_code
    assert b.cookies["scw"] != before  # a session id planted before sign-in is worth nothing
    again = browser(town)
    form = again.get("/portal/sign-in")
    answer = again.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text)})
    assert answer.status_code == 401
    assert "unknown, used or expired" in answer.text


def test_a_sign_in_link_fills_the_token_in_without_using_it(town: ServiceEnv) -> None:
    token = town.svc.identity.issue(town.persons[0])
    b = browser(town)
    form = b.get(f"/portal/sign-in?token={token}")
    assert f'value="{token}"' in form.text
    answer = b.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text)})
    assert answer.status_code == 303


def test_the_portal_shows_the_whole_record_state_explanation_and_notices(
    town: ServiceEnv,
) -> None:
    me = town.persons[0]
    html = signed_in(town, me).get("/portal").text
    text = text_of(html)
    assert me in text  # the subject sees their own code whole
    assert state(html) == {
        "score": "995",
        "grade": "B",
        "lists": "debtors",
        "denied": "travel.air",
        "granted": "nothing",
    }
    assert "red_lights count 1 -5 tp-1 365 days" in text  # the explanation
    assert "debtors (black, published): on it, because" in text
    for rid in ("tp-1", "ct-1"):
        assert f"{rid} traffic.red_light" in text or f"{rid} court.unfulfilled" in text
    assert "Traffic police" in text  # who sent the records
    assert "Adverse record: record ct-1, scheme town" in text  # the notice
    assert "Contest record ct-1" in text


def test_the_portal_needs_a_sign_in(town: ServiceEnv) -> None:
    answer = browser(town).get("/portal")
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/sign-in"


def test_one_subject_cannot_see_or_contest_anothers_record(town: ServiceEnv) -> None:
    a, b = town.persons[0], town.persons[1]
    mine = signed_in(town, a)
    html = mine.get("/portal").text
    assert b not in html and mask(b, "person") not in html and "tp-2" not in html
    answer = contest(mine, "tp-2")  # person 1's record: the page again, with the reason
    assert answer.status_code == 422
    assert "Record tp-2: Not contested: not found." in text_of(answer.text)
    nothing = contest(mine, "no-such-record")
    assert nothing.status_code == 422
    assert "Record no-such-record: Not contested: not found." in text_of(nothing.text)
    theirs = signed_in(town, b).get("/portal").text
    assert "Your appeals" in theirs and ">open<" not in theirs


def test_sign_out_ends_the_session(town: ServiceEnv) -> None:
    b = signed_in(town, town.persons[0])
    page = b.get("/portal")
    answer = b.post("/portal/sign-out", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303
    assert b.get("/portal").headers["location"] == "/portal/sign-in"


def test_a_contested_record_is_flagged_in_every_view(town: ServiceEnv) -> None:
    me = signed_in(town, town.persons[0])
    assert contest(me, "ct-1").status_code == 303
    html = me.get("/portal").text
    assert "Record ct-1 is contested (appeal" in text_of(html)
    assert "This state rests on records you contest: ct-1" in text_of(html)
    assert "Contest record ct-1" not in text_of(html)  # no second appeal offered
    assert "open" in text_of(html.split('id="appeals"', 1)[1])
    queue = reviewer(town).get("/review").text
    assert "court.unfulfilled" in queue
    again = contest(me, "ct-1")
    assert again.status_code == 422
    assert "contested already" in text_of(again.text)


def test_a_record_past_its_appeal_days_cannot_be_contested(town: ServiceEnv) -> None:
    town.clock.advance(days=30)  # recorded 2025-03-01; 30 appeal days have passed
    me = signed_in(town, town.persons[0])
    assert "Contest record ct-1" not in text_of(me.get("/portal").text)
    answer = contest(me, "ct-1")
    assert answer.status_code == 422 and "that time has passed" in text_of(answer.text)


# -- the reviewers' queue ----------------------------------------------------------------------


def test_only_a_reviewers_key_signs_in_to_the_queue(town: ServiceEnv) -> None:
    for key, status in [(town.keys["agency"], 403), ("sck_nonsense", 401)]:
        b = browser(town)
        form = b.get("/review/sign-in")
        answer = b.post(
            "/review/sign-in", data={"key": key, "purpose": "x", "csrf": csrf_of(form.text)}
        )
        assert answer.status_code == status
    b = browser(town)
    form = b.get("/review/sign-in")
    answer = b.post(
        "/review/sign-in",
        data={"key": town.keys["reviewer"], "purpose": "", "csrf": csrf_of(form.text)},
    )
    assert answer.status_code == 400
    assert browser(town).get("/review").headers["location"] == "/review/sign-in"


def test_upholding_an_appeal_voids_the_record_and_changes_the_state(town: ServiceEnv) -> None:
    me = signed_in(town, town.persons[0])
    contest(me, "ct-1", "the judgment was paid in January")
    queue = reviewer(town, purpose="monthly appeal review")
    page = queue.get("/review").text
    assert town.persons[0] not in page  # the reviewer sees the code masked
    assert mask(town.persons[0], "person") in page
    assert "the judgment was paid in January" in page
    appeal_id = re.search(r'action="/review/(\d+)"', page)
    assert appeal_id
    answer = queue.post(
        f"/review/{appeal_id.group(1)}",
        data={"outcome": "upheld", "reason": "", "csrf": csrf_of(page)},
    )
    assert answer.status_code == 303
    assert "is upheld: the record is voided by record void-appeal-" in text_of(
        queue.get("/review").text
    )
    html = me.get("/portal").text
    assert state(html)["lists"] == "none" and state(html)["denied"] == "nothing"
    assert "upheld" in text_of(html.split('id="appeals"', 1)[1])
    assert "Reviewer One reviewer monthly appeal review" in text_of(html)  # the access log
    assert 'id="nothing-published"' in look_up(browser(town), town.persons[0]).text


def test_a_rejection_needs_a_reason_which_the_subject_reads(town: ServiceEnv) -> None:
    me = signed_in(town, town.persons[1])
    contest(me, "tp-2")
    queue = reviewer(town)
    page = queue.get("/review").text
    target = re.search(r'action="(/review/\d+)"', page)
    assert target
    blank = queue.post(
        target.group(1), data={"outcome": "rejected", "reason": " ", "csrf": csrf_of(page)}
    )
    # the queue again, the error beside the appeal's reason field
    assert blank.status_code == 422
    assert "Not decided: the reason of a rejection must be" in text_of(blank.text)
    field = re.search(r"<textarea [^>]*aria-invalid=\"true\"[^>]*>", blank.text)
    assert field and 'aria-describedby="reason-' in field.group(0)
    page = queue.get("/review").text
    queue.post(
        target.group(1),
        data={"outcome": "rejected", "reason": "camera footage", "csrf": csrf_of(page)},
    )
    assert 'id="queue-empty"' in queue.get("/review").text
    html = me.get("/portal").text
    assert "rejected camera footage" in text_of(html)
    assert state(html)["score"] == "995"


def test_a_forged_decision_is_refused(town: ServiceEnv) -> None:
    contest(signed_in(town, town.persons[1]), "tp-2")
    queue = reviewer(town)
    page = queue.get("/review").text
    target = re.search(r'action="(/review/\d+)"', page)
    assert target
    answer = queue.post(target.group(1), data={"outcome": "upheld", "csrf": "forged"})
    assert answer.status_code == 403
    assert target.group(1) in queue.get("/review").text  # still open


# -- schemes ------------------------------------------------------------------------------------


def test_the_scheme_page_shows_its_rules_lists_and_rights_audit(town: ServiceEnv) -> None:
    b = browser(town)
    listing = text_of(b.get("/schemes").text)
    assert "town A town's points and debtors person, organization 7 days 30 days" in listing
    page = b.get("/schemes/town")
    text = text_of(page.text)
    active = town.svc.schemes["town"]
    assert active.version in text
    assert "In force here since 2025-03-01: the records already in the ledger" in text
    assert f"{active.version} 2025-03-01T10:00:00+00:00 the first version run here" in text
    version = b.get(f"/v1/schemes/town/versions/{active.version}")
    assert version.text == active.loaded.text
    assert "Rights audit" in text
    for finding in active.findings:
        assert finding.code in text
    assert "black list debtors (published): rule: unfulfilled" in text.replace("{", "").replace(
        "}", ""
    )
    missing = b.get("/schemes/nope")
    assert missing.status_code == 404 and "no active scheme" in missing.text
    assert missing.headers["content-type"].startswith("text/html")


# -- errors beside their fields, text kept, pages for every address ---------------------------


def test_a_refused_lookup_names_its_field_and_keeps_what_was_typed(town: ServiceEnv) -> None:
    answer = look_up(browser(town), town.orgs[0], purpose="  ")
    field = re.search(r'<input id="purpose"[^>]*>', answer.text)
    assert field and 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="purpose-error purpose-help"' in field.group(0)
    assert "Declare the purpose of the lookup" in text_of(answer.text)
    assert "?purpose=" not in answer.text  # the API's advice is not a form's
    code = re.search(r'<input id="code"[^>]*>', answer.text)
    assert code and f'value="{town.orgs[0]}"' in code.group(0)
    found = look_up(browser(town), town.orgs[0])
    assert "An organization, as of" in text_of(found.text)


def test_a_refused_contest_comes_back_with_its_text_beside_the_reason(town: ServiceEnv) -> None:
    me = signed_in(town, town.persons[0])
    page = me.get("/portal").text
    long = "x" * 2001
    answer = me.post(
        "/portal/contest", data={"record": "ct-1", "reason": long, "csrf": csrf_of(page)}
    )
    assert answer.status_code == 422
    field = re.search(r'<textarea [^>]*aria-invalid="true"[^>]*>', answer.text)
    assert field and 'name="reason"' in field.group(0)
    assert answer.text.count('aria-invalid="true"') == 1  # only ct-1's form
    error_id = re.search(r'aria-describedby="([^"]+)"', field.group(0))
    assert error_id and f'id="{error_id.group(1)}"' in answer.text
    assert long in answer.text and "<details open>" in answer.text
    # a browser sends each line break as CR LF: 20 lines of 99 characters are 2,000, not 2,020
    lines = "\r\n".join(["y" * 99] * 20) + "\r\n"
    sent = me.post(
        "/portal/contest", data={"record": "ct-1", "reason": lines, "csrf": csrf_of(page)}
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/portal#messages"
    assert "Record ct-1 is contested" in text_of(me.get("/portal").text)


def test_a_record_ended_by_another_says_so(town: ServiceEnv) -> None:
    p0 = town.persons[0]
    town.post([record("cf-1", p0, "court.fulfilled", ref="ct-1")])
    html = signed_in(town, town.persons[0]).get("/portal").text
    row = html.split('<td class="code">ct-1</td>', 1)[1].split("</tr>", 1)[0]
    assert "ended by cf-1" in text_of(row)


def test_an_unknown_address_is_answered_with_a_page(town: ServiceEnv) -> None:
    b = browser(town)
    for url, status in (("/nowhere", 404), ("/portal/nowhere", 404)):
        answer = b.get(url)
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith("text/html")
        assert "Content-Security-Policy" in answer.headers
        assert f"There is no page at {url}." in text_of(answer.text)
    wrong = b.get("/review/1")
    assert wrong.status_code == 405 and wrong.headers["content-type"].startswith("text/html")
    api = b.get("/v1/nowhere")
    assert api.status_code == 404 and api.json()["error"] == "not_found"


def test_the_start_page_and_a_scheme_page_say_only_what_they_should(town: ServiceEnv) -> None:
    b = browser(town)
    assert "<title>socialcredit</title>" in b.get("/").text
    scheme = b.get("/schemes/town").text
    source = scheme.split("<dt>Source</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert source == "town.yaml"  # the file's name, not where it lies on the server


def test_visitors_who_never_sign_in_do_not_push_out_those_who_did() -> None:
    from socialcredit.web.sessions import WebSessions

    store = WebSessions(3600.0, limit=3)
    signed = store.new(0.0)
    signed.subject_token = "scs_x"
    for _ in range(10):
        store.new(1.0)
    assert store.get(signed.id, 2.0) is signed and len(store) == 3
    for web in list(store._items.values()):
        web.reviewer_key = web.reviewer_key or "k"
    newest = store.new(3.0)  # every other one signed in: the oldest goes, not the newest
    assert store.get(signed.id, 4.0) is None and store.get(newest.id, 4.0) is newest


def test_a_refused_sign_in_marks_the_field_it_concerns(town: ServiceEnv) -> None:
    b = browser(town)
    form = b.get("/review/sign-in")
    bad_key = b.post(
        "/review/sign-in", data={"key": "sck_x", "purpose": "p", "csrf": csrf_of(form.text)}
    )
    key = re.search(r'<input id="key"[^>]*>', bad_key.text)
    assert (
        key and 'aria-describedby="key-error"' in key.group(0) and 'id="key-error"' in bad_key.text
    )
    no_purpose = b.post(
        "/review/sign-in",
        data={"key": town.keys["reviewer"], "purpose": " ", "csrf": csrf_of(form.text)},
    )
    purpose = re.search(r'<input id="purpose"[^>]*>', no_purpose.text)
    assert no_purpose.status_code == 400
    assert purpose and 'aria-invalid="true"' in purpose.group(0)
    portal = browser(town)
    page = portal.get("/portal/sign-in")
    refused = portal.post("/portal/sign-in", data={"token": "nope", "csrf": csrf_of(page.text)})
    token = re.search(r'<input id="token"[^>]*>', refused.text)
    assert token and 'aria-describedby="token-error"' in token.group(0)


def test_a_looked_up_code_with_a_control_character_is_refused_beside_its_field(
    town: ServiceEnv,
) -> None:
    answer = look_up(browser(town), "ab\x00c")
    assert answer.status_code == 422, answer.status_code
    assert "control characters" in text_of(answer.text)
    assert answer.headers["content-type"].startswith("text/html")
