"""Specification of the service's due process: the public lookup, subjects' sign-in and
portal, the access log, appeals, notices, and object-level authorization -- on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ServiceEnv

from socialcredit.ids import mask
from socialcredit.service.lookup import PUBLIC_FIELDS


def record(
    i: str, subject: str, type: str = "traffic.red_light", occurred: str = "2025-02-20", **more: Any
) -> dict[str, Any]:
    return {"id": i, "subject": subject, "type": type, "occurred_at": occurred, **more}


def public(
    env: ServiceEnv, code: str, purpose: str | None = "due diligence", client: Any = None
) -> Any:
    params = {} if purpose is None else {"purpose": purpose}
    return (client or env.client).get(f"/v1/public/{code}", params=params)


def keys_of(value: Any, path: str = "view") -> None:
    """Every field of a public answer is on the allow-list."""
    assert set(value) == set(PUBLIC_FIELDS[path]), (path, set(value))
    for item in value.get("lists", []) if path == "view" else []:
        keys_of(item, "list")
    for item in value.get("records", []) if path == "view" else []:
        keys_of(item, "record")


# -- the public lookup ---------------------------------------------------------------------


def test_the_public_sees_published_lists_and_organizations_counting_records(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    person, org = env.persons[0], env.orgs[0]
    env.post(
        [
            record("p1", person, "court.unfulfilled", occurred="2025-02-01"),
            record("p2", person, "traffic.red_light"),
            record("o1", org, "court.unfulfilled", occurred="2025-02-01", amount=900),
            record("o2", org, "traffic.red_light", occurred="2023-01-01"),  # expired
            record("o3", org, "traffic.red_light", occurred="2025-02-02"),
        ]
    )
    env.clock.advance(days=7)
    shown = public(env, person).json()
    keys_of(shown)
    assert shown == {
        "code": mask(person, "person"),
        "published": True,
        "kind": "person",
        "at": "2025-03-08",
        "records": [],
        "lists": [{"scheme": "town", "list": "debtors", "kind": "black"}],
    }
    shown = public(env, org).json()
    keys_of(shown)
    assert shown["code"] == org and shown["kind"] == "organization"
    assert [(r["type"], r["occurred_at"], r["amount"]) for r in shown["records"]] == [
        ("court.unfulfilled", "2025-02-01", 900),
        ("traffic.red_light", "2025-02-02", 0),
    ]


def test_the_lookup_does_not_tell_who_is_registered(service_env: ServiceEnv) -> None:
    env = service_env
    registered, unregistered = env.persons[1], "110105194912310088"
    from socialcredit.ids import ric

    unregistered = unregistered[:17] + ric.calc_check_char(unregistered[:17])
    a, b = public(env, registered), public(env, unregistered)
    assert a.status_code == b.status_code == 200
    assert a.json()["published"] is False and a.json()["kind"] is None
    assert {k: v for k, v in a.json().items() if k != "code"} == {
        k: v for k, v in b.json().items() if k != "code"
    }
    assert a.json()["code"] == mask(registered, "person")
    quiet_org = env.orgs[2]
    assert public(env, quiet_org).json() == {
        "code": quiet_org,
        "published": False,
        "kind": None,
        "at": "2025-03-01",
        "lists": [],
        "records": [],
    }


def test_the_lookup_needs_a_purpose_and_is_rate_limited(service_env: ServiceEnv) -> None:
    env = service_env
    assert public(env, env.orgs[0], purpose=None).status_code == 400
    from socialcredit.service.ratelimit import RateLimiter

    now = [0.0]
    env.svc.limiter = RateLimiter(60, 3, clock=lambda: now[0])
    statuses = [public(env, env.orgs[0]).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = public(env, env.orgs[0])
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    now[0] += 1.0
    assert public(env, env.orgs[0]).status_code == 200
    # another client has its own bucket
    from fastapi.testclient import TestClient

    with TestClient(env.client.app, client=("127.0.0.9", 1)) as other:
        assert public(env, env.orgs[0], client=other).status_code == 200


# -- subjects ------------------------------------------------------------------------------


def test_a_subject_signs_in_once_and_reads_their_whole_record(service_env: ServiceEnv) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("r1", me), record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    token = env.svc.identity.issue(me)
    first = env.client.post("/v1/session", json={"token": token})
    assert first.status_code == 200 and first.json()["subject"] == me
    again = env.client.post("/v1/session", json={"token": token})
    assert again.status_code == 401  # one time only
    headers = {"Authorization": f"Bearer {first.json()['token']}"}
    records = env.client.get("/v1/me/records", headers=headers).json()
    assert [(r["id"], r["agency"], r["contested"], r["appeal_until"]) for r in records] == [
        ("r1", "Traffic police", False, "2025-03-31"),
        ("j1", "Traffic police", False, "2025-03-31"),
    ]
    env.clock.advance(hours=11)
    assert env.client.get("/v1/me/records", headers=headers).status_code == 200
    env.clock.advance(hours=1)  # sessions last 12 hours
    assert env.client.get("/v1/me/records", headers=headers).status_code == 401
    env.clock.advance(days=7)
    headers = env.session(me)
    [state] = env.client.get("/v1/me/states", headers=headers).json()
    assert (state["scheme"], state["score"], state["lists"], state["denied"]) == (
        "town",
        995,
        ["debtors"],
        ["travel.air"],
    )
    rules = {r["id"]: r["records"] for r in state["explanation"]["rules"]}
    assert rules["red_lights"] == ["r1"] and rules["unfulfilled"] == ["j1"]


def test_sign_in_tokens_expire_and_unknown_ones_are_refused(service_env: ServiceEnv) -> None:
    env = service_env
    token = env.svc.identity.issue(env.persons[0])
    env.clock.advance(seconds=16 * 60)
    assert env.client.post("/v1/session", json={"token": token}).status_code == 401
    assert env.client.post("/v1/session", json={"token": "sco_x"}).status_code == 401
    assert env.client.get("/v1/me/records").status_code == 401


def test_notices_name_agency_record_effect_and_appeal_before_the_effect(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    me = env.persons[0]
    env.post(
        [
            record("j1", me, "court.unfulfilled", occurred="2025-02-01"),
            record("ok", me, "court.fulfilled", occurred="2025-02-02"),
        ]
    )
    [notice] = env.client.get("/v1/me/notices", headers=env.session(me)).json()
    assert (notice["kind"], notice["record"], notice["effective_on"]) == (
        "adverse",
        "j1",
        "2025-03-08",
    )
    body = notice["body"]
    assert body["agency"] == "Traffic police" and body["record"]["id"] == "j1"
    assert "unfulfilled" in body["effect"] and "debtors" in body["effect"]
    assert "2025-03-31" in body["how_to_appeal"]
    # delivered through the outbox with the batch, before the record takes effect
    assert [(n["to"], n["record"], n["takes_effect_on"]) for n in env.sink.sent] == [
        (me, "j1", "2025-03-08")
    ]
    from socialcredit.service.notices import deliver

    assert deliver(env.svc) == (0, 0)


def test_a_failing_sink_leaves_notices_pending(service_env: ServiceEnv) -> None:
    env = service_env

    class Broken:
        def send(self, notice: dict[str, Any]) -> None:
            raise OSError("disk full")

    env.svc.sink = Broken()
    assert env.post([record("j1", env.persons[0], "court.unfulfilled")]).status_code == 200
    from socialcredit.service.notices import deliver

    assert deliver(env.svc) == (0, 1)  # still pending
    env.svc.sink = env.sink
    assert deliver(env.svc) == (1, 0)
    assert deliver(env.svc) == (0, 0)


def test_the_file_sink_writes_json_lines(tmp_path: Path) -> None:
    from socialcredit.service.sinks import FileSink

    sink = FileSink(tmp_path / "n.jsonl")
    sink.send({"a": 1})
    sink.send({"b": "é"})
    assert [json.loads(x) for x in (tmp_path / "n.jsonl").read_text("utf-8").splitlines()] == [
        {"a": 1},
        {"b": "é"},
    ]


# -- the access log ------------------------------------------------------------------------


def test_every_read_by_another_is_logged_with_its_purpose(service_env: ServiceEnv) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled")])
    headers = env.session(me)
    env.client.get("/v1/me/records", headers=headers)  # the subject's own reads: no entry
    env.client.get(
        "/v1/decisions",
        headers=env.auth("operator"),
        params={"subject": me, "action": "travel.air", "scheme": "town", "purpose": "ticket 77"},
    )
    public(env, me, purpose="tenant check")
    env.client.get(
        "/v1/access-log",
        headers=env.auth("auditor"),
        params={"subject": me, "purpose": "annual audit"},
    )
    log = env.client.get("/v1/me/access-log", headers=headers).json()
    assert [(e["actor"], e["role"], e["purpose"]) for e in log] == [
        ("Auditor", "auditor", "annual audit"),
        ("the public", "public", "tenant check"),
        ("Airline", "operator", "ticket 77"),
    ]
    assert (
        env.client.get(
            "/v1/access-log", headers=env.auth("auditor"), params={"subject": me}
        ).status_code
        == 400
    )
    # entries older than 12 months are not shown
    env.clock.advance(days=366)
    assert env.client.get("/v1/me/access-log", headers=env.session(me)).json() == []


def test_every_lookup_is_logged_so_that_its_time_does_not_tell_who_is_registered(
    service_env: ServiceEnv,
) -> None:
    """A lookup of a code no one holds yet writes its entry as a registered person's does
    (the same durable write before the answer); the person registered later sees it."""
    from conftest import person_codes

    env = service_env
    newcomer = person_codes(9, seed=5)[-1]
    assert newcomer not in env.persons
    first = public(env, newcomer, purpose="before they came")
    assert first.status_code == 200 and first.json()["published"] is False
    org = public(env, env.orgs[0], purpose="supplier check")
    assert org.status_code == 200
    env.post([], subjects=[{"code": newcomer, "kind": "person"}])
    log = env.client.get("/v1/me/access-log", headers=env.session(newcomer)).json()
    assert [(e["actor"], e["purpose"], e["what"]) for e in log] == [
        ("the public", "before they came", "public lookup")
    ]
    audited = env.client.get(
        "/v1/access-log",
        headers=env.auth("auditor"),
        params={"subject": env.orgs[0], "purpose": "annual audit"},
    ).json()
    assert [e["purpose"] for e in audited] == ["supplier check"]


# -- appeals -------------------------------------------------------------------------------


def contest(env: ServiceEnv, headers: dict[str, str], rid: str, reason: str = "not me") -> Any:
    return env.client.post(
        "/v1/me/appeals", headers=headers, json={"record": rid, "reason": reason}
    )


def contested_judgment(env: ServiceEnv, rid: str = "j1") -> tuple[str, int]:
    """The first person's unfulfilled judgment, sent and contested: (the person, the
    appeal's id)."""
    me = env.persons[0]
    env.post([record(rid, me, "court.unfulfilled", occurred="2025-02-01")])
    return me, int(contest(env, env.session(me), rid).json()["id"])


def test_an_upheld_appeal_voids_the_record_and_the_state_follows(service_env: ServiceEnv) -> None:
    env = service_env
    me, org = env.persons[0], env.orgs[0]
    env.post(
        [
            record("j1", me, "court.unfulfilled", occurred="2025-02-01"),
            record("o1", org, "court.unfulfilled", occurred="2025-02-01"),
        ]
    )
    env.clock.advance(days=8)
    headers = env.session(me)
    filed = contest(env, headers, "j1")
    assert filed.status_code == 201 and filed.json()["status"] == "open"
    appeal = filed.json()["id"]
    # contested at once in every view
    assert env.client.get("/v1/me/records/j1", headers=headers).json()["contested"] is True
    assert env.client.get("/v1/me/states", headers=headers).json()[0]["contested"] == ["j1"]
    answer = env.client.get(
        "/v1/decisions",
        headers=env.auth("operator"),
        params={"subject": me, "action": "travel.air", "scheme": "town", "purpose": "ticket"},
    ).json()
    assert answer["outcome"] == "denied" and answer["contested"] is True
    queue = env.client.get(
        "/v1/appeals", headers=env.auth("reviewer"), params={"purpose": "review"}
    ).json()
    assert [(a["id"], a["record"], a["status"]) for a in queue] == [(appeal, "j1", "open")]
    assert contest(env, headers, "j1").status_code == 409  # once per record
    # the reviewer upholds
    upheld = env.client.post(
        f"/v1/appeals/{appeal}/uphold?purpose=review",
        headers=env.auth("reviewer"),
        json={"reason": "identity mix-up"},
    )
    assert upheld.status_code == 200 and upheld.json()["status"] == "upheld"
    assert upheld.json()["void_record"] == f"void-appeal-{appeal}-j1"
    again = env.client.post(
        f"/v1/appeals/{appeal}/uphold?purpose=review", headers=env.auth("reviewer"), json={}
    )
    assert again.status_code == 409
    answer = env.client.get(
        "/v1/decisions",
        headers=env.auth("operator"),
        params={"subject": me, "action": "travel.air", "scheme": "town", "purpose": "ticket"},
    ).json()
    assert answer["outcome"] == "allowed"
    assert public(env, me).json()["published"] is False
    kinds = [n["kind"] for n in env.client.get("/v1/me/notices", headers=headers).json()]
    assert kinds == ["appeal_upheld", "adverse"]
    assert env.sink.sent[-1]["kind"] == "appeal_upheld"  # delivered at once
    assert env.svc.ledger.call(lambda ledger: ledger.verify()).ok


def test_a_rejected_appeal_needs_a_reason_and_keeps_the_record(service_env: ServiceEnv) -> None:
    env = service_env
    me, appeal = contested_judgment(env)
    url = f"/v1/appeals/{appeal}/reject?purpose=review"
    assert env.client.post(url, headers=env.auth("reviewer"), json={}).status_code == 422
    assert (
        env.client.post(url, headers=env.auth("operator"), json={"reason": "x"}).status_code == 403
    )
    rejected = env.client.post(
        url, headers=env.auth("reviewer"), json={"reason": "the judgment stands"}
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "the judgment stands"
    env.clock.advance(days=7)
    mine = env.client.get("/v1/me/states", headers=env.session(me)).json()[0]
    assert mine["lists"] == ["debtors"] and mine["contested"] == []


def test_an_appeal_undecided_for_30_days_voids_the_record(service_env: ServiceEnv) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    headers = env.session(me)
    appeal = contest(env, headers, "j1").json()["id"]
    env.clock.advance(days=29)
    assert (
        env.client.get(f"/v1/me/appeals/{appeal}", headers=env.session(me)).json()["status"]
        == "open"
    )
    env.clock.advance(days=1)
    lapsed = env.client.get(f"/v1/me/appeals/{appeal}", headers=env.session(me)).json()
    assert lapsed["status"] == "lapsed" and lapsed["void_record"]
    state = env.client.get("/v1/me/states", headers=env.session(me)).json()[0]
    assert state["lists"] == []


def test_a_record_can_be_contested_only_within_appeal_days(service_env: ServiceEnv) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    env.clock.advance(days=31)
    late = contest(env, env.session(me), "j1")
    assert late.status_code == 409 and "2025-03-31" in late.json()["detail"]


# -- object-level authorization ------------------------------------------------------------


def test_a_subject_never_reaches_another_subjects_data(service_env: ServiceEnv) -> None:
    env = service_env
    me, other = env.persons[0], env.persons[1]
    env.post(
        [record("mine", me, "court.unfulfilled"), record("theirs", other, "court.unfulfilled")]
    )
    other_headers = env.session(other)
    theirs = contest(env, other_headers, "theirs").json()["id"]
    their_notice = env.client.get("/v1/me/notices", headers=other_headers).json()[0]["id"]
    headers = env.session(me)
    attempts = 0
    bodies = set()
    for n in range(1, 400):
        for url in (
            f"/v1/me/records/theirs-{n}" if n > 1 else "/v1/me/records/theirs",
            f"/v1/me/appeals/{theirs if n == 1 else theirs + n}",
            f"/v1/me/notices/{their_notice if n == 1 else their_notice + n}",
        ):
            answer = env.client.get(url, headers=headers)
            attempts += 1
            assert answer.status_code == 404, url
            bodies.add(answer.text)
        answer = contest(env, headers, "theirs" if n == 1 else f"theirs-{n}")
        attempts += 1
        assert answer.status_code == 404
        bodies.add(answer.text)
    assert attempts >= 1500
    assert len(bodies) == 1  # another's and nobody's read the same
    # and the other subject's data is untouched
    assert (
        env.client.get(f"/v1/me/appeals/{theirs}", headers=other_headers).json()["status"] == "open"
    )


def test_of_two_decisions_on_one_appeal_only_the_first_counts(service_env: ServiceEnv) -> None:
    from socialcredit.service import appeals

    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    appeal_id = contest(env, env.session(me), "j1").json()["id"]
    (row,) = env.svc.db.query(
        f"SELECT {appeals._COLUMNS} FROM {appeals._FROM} WHERE a.id = ?", (appeal_id,)
    )
    open_appeal = appeals._appeal(env.svc, row)
    # two deciders that both saw the appeal open (two processes): one wins, one is told
    assert appeals._close(env.svc, open_appeal, "rejected", "it stands", "Reviewer One")
    assert not appeals._close(env.svc, open_appeal, "upheld", "", "Reviewer Two")
    assert env.svc.ledger.call(lambda ledger: ledger.find(["void-appeal-1-j1"]).num_rows) == 0
    kinds = [k for (k,) in env.svc.db.query("SELECT kind FROM svc_notices WHERE record_id = 'j1'")]
    assert kinds.count("appeal_rejected") == 1 and "appeal_upheld" not in kinds
    url = f"/v1/appeals/{appeal_id}/uphold?purpose=review"
    late = env.client.post(url, headers=env.auth("reviewer"), json={})
    assert late.status_code == 409 and "rejected" in late.json()["detail"]


def test_a_crash_before_the_voiding_record_is_repaired(service_env: ServiceEnv) -> None:
    from socialcredit.service import appeals

    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    appeal_id = contest(env, env.session(me), "j1").json()["id"]
    (row,) = env.svc.db.query(
        f"SELECT {appeals._COLUMNS} FROM {appeals._FROM} WHERE a.id = ?", (appeal_id,)
    )
    upheld = appeals._appeal(env.svc, row)
    real = appeals._append_void
    try:
        appeals._append_void = lambda *a: None  # type: ignore[assignment]  # the crash
        assert appeals._close(env.svc, upheld, "upheld", "", "Reviewer One")
    finally:
        appeals._append_void = real  # type: ignore[assignment]
    void = f"void-appeal-{appeal_id}-j1"
    assert env.svc.ledger.call(lambda ledger: ledger.find([void]).num_rows) == 0
    assert appeals.repair(env.svc) == 1
    assert env.svc.ledger.call(lambda ledger: ledger.find([void])["ref"].to_pylist()) == ["j1"]
    assert appeals.repair(env.svc) == 0


def test_a_sign_in_token_is_used_once_by_processes_racing_for_it(service_env: ServiceEnv) -> None:
    import threading

    from socialcredit.service import Service
    from socialcredit.service.identity import OneTimeTokens

    env = service_env
    other = Service.open(env.svc.settings, clock=env.clock, sink=env.sink)  # a second process
    try:
        wins = []
        for _ in range(15):
            token = env.svc.identity.issue(env.persons[0])
            start = threading.Barrier(2)
            got: list[str | None] = []

            def use(
                svc: Any,
                token: str = token,
                start: threading.Barrier = start,
                got: list[str | None] = got,
            ) -> None:
                start.wait()
                got.append(OneTimeTokens(svc).subject_for(token))

            racers = [threading.Thread(target=use, args=(s,)) for s in (env.svc, other)]
            for t in racers:
                t.start()
            for t in racers:
                t.join()
            wins.append(sum(g is not None for g in got))
        assert wins == [1] * 15
    finally:
        other.close()


def test_a_blank_reason_is_invalid(service_env: ServiceEnv) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    headers = env.session(me)
    blank = env.client.post("/v1/me/appeals", headers=headers, json={"record": "j1", "reason": " "})
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]
    appeal = contest(env, headers, "j1").json()["id"]
    url = f"/v1/appeals/{appeal}/reject?purpose=review"
    blank = env.client.post(url, headers=env.auth("reviewer"), json={"reason": "  "})
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]


def test_a_scheme_without_appeals_refuses_a_contest(service_db: str, tmp_path: Path) -> None:
    from conftest import SERVICE_SCHEME, FakeClock

    from socialcredit.service import Service, Settings, appeals
    from socialcredit.service.errors import Conflict
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    scheme = tmp_path / "final.yaml"
    scheme.write_text(SERVICE_SCHEME.replace("appeal_days: 30", "appeal_days: 0"))
    upgrade(service_db)
    import datetime as dt

    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    svc = Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=MemorySink()
    )
    try:
        import pyarrow as pa

        from socialcredit.records import RECORDS_SCHEMA

        code = "91110000802100433B"
        row = {
            "id": "j1",
            "subject": code,
            "type": "court.unfulfilled",
            "occurred_at": dt.date(2025, 2, 1),
            "recorded_at": dt.date(2025, 3, 1),
            "amount": 0,
            "ref": None,
        }
        svc.ledger.call(
            lambda ledger: ledger.append(
                pa.Table.from_pylist([row], schema=RECORDS_SCHEMA),
                subjects=pa.table({"code": [code], "kind": ["organization"]}),
            )
        )
        with pytest.raises(Conflict, match="allow no appeal"):
            appeals.contest(svc, code, "j1", "it was paid")
    finally:
        svc.close()


def test_an_id_of_the_services_voiding_records_is_not_an_agencys_to_take(
    service_env: ServiceEnv,
) -> None:
    """An agency may not send a record under the ids of the records that void upheld
    appeals' records; one that holds such an id otherwise (imported into the ledger) does
    not stop an uphold: the voiding record takes the next id free."""
    import pyarrow as pa

    from socialcredit.records import RECORDS_SCHEMA

    env = service_env
    me, other = env.persons[0], env.persons[1]
    squat = env.post([record("void-appeal-1-j1", other, "court.unfulfilled")])
    assert squat.status_code == 403 and "void-appeal-" in squat.json()["detail"]
    row = {
        "id": "void-appeal-1-j1",
        "subject": other,
        "type": "court.unfulfilled",
        "occurred_at": dt.date(2025, 2, 1),
        "recorded_at": dt.date(2025, 3, 1),
        "amount": 0,
        "ref": None,
    }
    env.svc.ledger.call(
        lambda ledger: ledger.append(
            pa.Table.from_pylist([row], schema=RECORDS_SCHEMA), source="import:old.csv"
        )
    )
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    appeal = contest(env, env.session(me), "j1").json()["id"]
    assert appeal == 1
    url = f"/v1/appeals/{appeal}/uphold?purpose=review"
    upheld = env.client.post(url, headers=env.auth("reviewer"), json={})
    assert upheld.status_code == 200, upheld.text
    assert upheld.json()["void_record"] == "void-appeal-1-j1~2"
    voiding = env.svc.ledger.call(lambda ledger: ledger.find(["void-appeal-1-j1~2"])).to_pylist()
    assert [(r["subject"], r["ref"]) for r in voiding] == [(me, "j1")]
    state = env.client.get("/v1/me/states", headers=env.session(me)).json()[0]
    assert state["lists"] == []
    assert appeals_repair(env) == 0  # nothing left to repair


def appeals_repair(env: ServiceEnv) -> int:
    from socialcredit.service import appeals

    return appeals.repair(env.svc)


def test_a_decision_on_an_appeal_needs_the_reviewers_purpose(service_env: ServiceEnv) -> None:
    env = service_env
    me, appeal = contested_judgment(env)
    url = f"/v1/appeals/{appeal}/reject"
    unsaid = env.client.post(url, headers=env.auth("reviewer"), json={"reason": "it stands"})
    assert unsaid.status_code == 400 and unsaid.json()["error"] == "purpose_required"
    assert (
        env.client.get(f"/v1/me/appeals/{appeal}", headers=env.session(me)).json()["status"]
        == "open"
    )
    decided = env.client.post(
        url,
        headers=env.auth("reviewer"),
        params={"purpose": "second-level review"},
        json={"reason": "it stands"},
    )
    assert decided.status_code == 200, decided.text
    log = env.client.get("/v1/me/access-log", headers=env.session(me)).json()
    assert [(e["purpose"], e["what"]) for e in log if "decided" in e["what"]] == [
        ("second-level review", f"decided appeal {appeal}: rejected")
    ]


def test_a_reviewer_may_decide_on_the_review_by_day_and_it_lapses_the_day_after(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    me = env.persons[0]
    env.post([record("j1", me, "court.unfulfilled", occurred="2025-02-01")])
    filed = contest(env, env.session(me), "j1").json()
    assert filed["review_by"] == "2025-03-30"  # filed 2025-03-01, 30 days to decide
    env.clock.advance(days=29)
    url = f"/v1/appeals/{filed['id']}/reject?purpose=review"
    decided = env.client.post(url, headers=env.auth("reviewer"), json={"reason": "it stands"})
    assert decided.status_code == 200, decided.text
    env.post([record("j2", me, "court.unfulfilled", occurred="2025-03-01")])
    second = contest(env, env.session(me), "j2").json()
    env.clock.advance(days=30)
    lapsed = env.client.get(f"/v1/me/appeals/{second['id']}", headers=env.session(me)).json()
    assert lapsed["status"] == "lapsed" and second["review_by"] == "2025-04-28"


def test_the_access_log_shows_twelve_calendar_months() -> None:
    from socialcredit.service.access import months_before

    at = dt.datetime(2028, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert months_before(at, 12) == dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)
    leap = dt.datetime(2028, 2, 29, 8, 30, tzinfo=dt.UTC)
    assert months_before(leap, 12) == dt.datetime(2027, 2, 28, 8, 30, tzinfo=dt.UTC)
    assert months_before(dt.datetime(2025, 3, 31), 1) == dt.datetime(2025, 2, 28)
    assert months_before(dt.datetime(2025, 1, 15), 13) == dt.datetime(2023, 12, 15)


COURT_LIST = """
scheme: court
title: Court list
subjects: [person]
notice_days: 3
appeal_days: 10
records:
  court.unfulfilled: {category: judicial, adverse: true}
score: {base: 100, min: 0, max: 100}
rules:
  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, points: 0}
grades:
  - {grade: A}
lists:
  - {id: dishonest, kind: black, when: {rule: unfulfilled, at_least: 1}, publish: true}
measures:
  - {id: no_trains, when: {list: dishonest}, deny: [travel.rail]}
actions:
  travel.rail: {context: judicial}
"""


def test_every_notice_of_a_record_states_the_one_deadline_to_contest_it(
    service_db: str, tmp_path: Path
) -> None:
    """Two schemes read a record with appeal windows of 30 and 10 days: the record may be
    contested for the longer, and both its notices say so."""
    import pyarrow as pa
    from conftest import SERVICE_SCHEME, FakeClock

    from socialcredit.records import RECORDS_SCHEMA
    from socialcredit.service import Service, Settings
    from socialcredit.service.notices import NoticeTexts, adverse_notice
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    town, court = tmp_path / "town.yaml", tmp_path / "court.yaml"
    town.write_text(SERVICE_SCHEME)
    court.write_text(COURT_LIST)
    upgrade(service_db)
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    svc = Service.open(
        Settings(database=service_db, schemes=[str(town), str(court)]),
        clock=clock,
        sink=MemorySink(),
    )
    try:
        row = {
            "id": "j1",
            "subject": "11010519491231002X",
            "type": "court.unfulfilled",
            "occurred_at": dt.date(2025, 2, 1),
            "recorded_at": dt.date(2025, 3, 1),
            "amount": 0,
            "ref": None,
        }
        rows = pa.Table.from_pylist([row], schema=RECORDS_SCHEMA)
        texts = NoticeTexts(svc, "Court")
        for active in svc.schemes.values():
            _, body = adverse_notice(svc, agency="Court", record=row, scheme=active.scheme)
            assert "until 2025-03-31;" in body["how_to_appeal"], active.id
            [joined] = texts.adverse(rows, active.scheme, "s")["body"].to_pylist()
            assert json.loads(joined)["how_to_appeal"] == body["how_to_appeal"]
            assert texts.adverse_rows(rows, active.scheme, "s") == texts.adverse(
                rows, active.scheme, "s"
            )
    finally:
        svc.close()


def test_a_subject_reads_each_of_their_records_by_its_id(service_env: ServiceEnv) -> None:
    """Ids with a slash, and the service's own longer ids of voiding records."""
    env = service_env
    me = env.persons[0]
    long_id = "j" * 128
    env.post(
        [
            record("tp/2025/1", me, "court.unfulfilled", occurred="2025-02-01"),
            record(long_id, me, "court.unfulfilled", occurred="2025-02-01"),
        ]
    )
    headers = env.session(me)
    got = env.client.get("/v1/me/records/tp%2F2025%2F1", headers=headers)
    assert got.status_code == 200 and got.json()["id"] == "tp/2025/1", got.text
    assert env.client.get("/v1/me/records/tp/2025/1", headers=headers).json()["id"] == "tp/2025/1"
    appeal = contest(env, headers, long_id).json()["id"]
    url = f"/v1/appeals/{appeal}/uphold?purpose=review"
    void_id = env.client.post(url, headers=env.auth("reviewer"), json={}).json()["void_record"]
    assert len(void_id) > 128
    got = env.client.get(f"/v1/me/records/{void_id}", headers=env.session(me))
    assert got.status_code == 200 and got.json()["id"] == void_id, got.text
    missing = env.client.get("/v1/me/records/no/such/record", headers=env.session(me))
    assert missing.status_code == 404 and missing.json()["detail"] == "not found"


def test_a_purpose_too_long_or_on_two_lines_is_refused_as_a_missing_one(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    me = env.persons[0]
    reads = [
        ("/v1/decisions", "operator", {"subject": me, "action": "travel.air", "scheme": "town"}),
        (f"/v1/public/{me}", None, {}),
        ("/v1/appeals", "reviewer", {}),
        ("/v1/access-log", "auditor", {"subject": me}),
    ]
    for url, role, params in reads:
        headers = env.auth(role) if role else {}
        for purpose in ("x" * 201, "two\nlines"):
            answer = env.client.get(url, headers=headers, params={**params, "purpose": purpose})
            assert answer.status_code == 400, (url, purpose[:5], answer.text)
            assert answer.json()["error"] == "purpose_required"


def test_an_uphold_needs_no_body_but_a_purpose(service_env: ServiceEnv) -> None:
    env = service_env
    _, appeal = contested_judgment(env)
    url = f"/v1/appeals/{appeal}/uphold"
    unsaid = env.client.post(url, headers=env.auth("reviewer"))
    assert unsaid.status_code == 400 and unsaid.json()["error"] == "purpose_required"
    upheld = env.client.post(url, headers=env.auth("reviewer"), params={"purpose": "review"})
    assert upheld.status_code == 200 and upheld.json()["status"] == "upheld", upheld.text


def test_a_code_with_a_control_character_is_refused_before_anything_is_written(
    service_env: ServiceEnv,
) -> None:
    """No code holds one (PostgreSQL could not even log it): refused on every path, and the
    lookups committed beside it are answered."""
    env = service_env
    bad = public(env, "abc%00def")  # as a client sends it
    assert bad.status_code == 422 and "control characters" in bad.text
    assert public(env, "abc%C2%85def").status_code == 422
    assert public(env, env.persons[0]).status_code == 200
    for code in ("\x00", "a\x85b"):  # an auditor's read of the access log of such a code
        read = env.client.get(
            "/v1/access-log",
            params={"subject": code, "purpose": "audit"},
            headers=env.auth("auditor"),
        )
        assert read.status_code == 422 and "control characters" in read.text
    logged = env.svc.db.query("SELECT subject FROM svc_access_log")
    assert [s for (s,) in logged if "\x00" in s or "\x85" in s] == []


def test_a_lookup_whose_access_log_cannot_be_written_is_not_answered(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written before the answer: when it cannot be, 503, and no answer."""
    env = service_env
    db = env.svc.access_log._db
    assert db is not None

    def broken(sql: str, rows: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(db, "many", broken)
    answer = public(env, env.persons[0])
    assert answer.status_code == 503, answer.text
    assert "access log cannot be written" in answer.text and "published" not in answer.text


@pytest.mark.parametrize(
    ("notice_days", "takes_effect_on"),
    [
        (2_900_000, "9965-02-04"),  # the notice period ends in the calendar: a notice
        (10_000_000, None),  # after the last date: the record never takes effect
        (3_000_000_000, None),  # past 32 bits
    ],
)
def test_a_record_whose_notice_period_passes_the_calendar_gets_no_notice(
    service_db: str, tmp_path: Path, notice_days: int, takes_effect_on: str | None
) -> None:
    from conftest import SERVICE_SCHEME, FakeClock, person_codes
    from fastapi.testclient import TestClient

    from socialcredit.api import create_app
    from socialcredit.service import Service, Settings
    from socialcredit.service.credentials import add_agency
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    scheme = tmp_path / "slow.yaml"
    scheme.write_text(SERVICE_SCHEME.replace("notice_days: 7", f"notice_days: {notice_days}"))
    upgrade(service_db)
    sink = MemorySink()
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    [me] = person_codes(1)
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=sink
    ) as svc:
        key = add_agency(svc.db, "Court", ["court.unfulfilled"], "2025-03-01T10:00:00+00:00")
        with TestClient(create_app(svc)) as client:
            answer = client.post(
                "/v1/records",
                json={
                    "records": [record("j1", me, "court.unfulfilled", occurred="2025-02-01")],
                    "subjects": [{"code": me, "kind": "person"}],
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["notices"] == len(sink.sent)
            assert [n["takes_effect_on"] for n in sink.sent] == (
                [takes_effect_on] if takes_effect_on else []
            )
            token = client.post("/v1/session", json={"token": svc.identity.issue(me)})
            headers = {"Authorization": f"Bearer {token.json()['token']}"}
            view = client.get("/v1/me/records", headers=headers).json()
            assert [r["id"] for r in view] == ["j1"]  # in the subject's record all the same


@pytest.mark.parametrize(("days_past", "noticed"), [(0, ["1969-12-31"]), (1, [])])
def test_the_last_day_is_found_for_records_of_any_date(
    service_db: str, tmp_path: Path, days_past: int, noticed: list[str]
) -> None:
    """The notice period of a record recorded in 1969 (a negative day number) ends on the
    calendar's last day, or one day after it and then it gets no notice."""
    import pyarrow as pa
    from conftest import SERVICE_SCHEME, FakeClock, person_codes

    from socialcredit.days import LAST_DAY, to_day
    from socialcredit.records import RECORDS_SCHEMA
    from socialcredit.service import Service, Settings
    from socialcredit.service.notices import NoticeTexts
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    days = LAST_DAY - to_day(dt.date(1969, 12, 31)) + days_past
    scheme = tmp_path / "slow.yaml"
    scheme.write_text(SERVICE_SCHEME.replace("notice_days: 7", f"notice_days: {days}"))
    upgrade(service_db)
    [me] = person_codes(1)
    rows = pa.Table.from_pylist(
        [
            {
                "id": f"r{i}",
                "subject": me,
                "type": "court.unfulfilled",
                "occurred_at": day,
                "recorded_at": day,
                "amount": 0,
                "ref": None,
            }
            for i, day in enumerate([dt.date(1969, 12, 31), dt.date(1970, 1, 1)])
        ],
        schema=RECORDS_SCHEMA,
    )
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    with Service.open(
        Settings(database=service_db, schemes=[str(scheme)]), clock=clock, sink=MemorySink()
    ) as svc:
        texts = NoticeTexts(svc, "Court").adverse(rows, svc.schemes["town"].scheme, "now")
    assert texts["effective_on"].to_pylist() == ["9999-12-31"] * len(noticed)
    assert [json.loads(b)["record"]["recorded_at"] for b in texts["body"].to_pylist()] == noticed
