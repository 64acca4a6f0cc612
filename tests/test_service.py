"""Specification of the service: settings, migrations, agencies' ingest, decisions and
schemes -- on SQLite and PostgreSQL (the ``service_env`` fixture of conftest.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SERVICE_SCHEME, ServiceEnv, person_codes

from socialcredit.errors import RefusedScheme, SocialCreditError
from socialcredit.service import Service, Settings, load_settings
from socialcredit.service.settings import Settings as SettingsClass
from socialcredit.store.migrations import MIGRATIONS, latest
from socialcredit.store.service_db import ServiceDB, open_service_db, upgrade


def record(
    i: str, subject: str, type: str = "traffic.red_light", occurred: str = "2025-02-20", **more: Any
) -> dict[str, Any]:
    return {"id": i, "subject": subject, "type": type, "occurred_at": occurred, **more}


# -- settings -------------------------------------------------------------------------------


def test_settings_come_from_the_file_then_the_environment_then_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "service.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\nschemes = ["sesame"]\npublic_rate = 5\n')
    monkeypatch.setenv("SOCIALCREDIT_PORT", "9100")
    monkeypatch.setenv("SOCIALCREDIT_SCHEMES", "rongcheng, fcra_bureau")
    s = load_settings(config, port=9200)
    assert (s.port, s.host, s.schemes, s.public_rate) == (
        9200,
        "127.0.0.2",
        ["rongcheng", "fcra_bureau"],
        5,
    )
    monkeypatch.setenv("SOCIALCREDIT_CONFIG", str(config))
    monkeypatch.delenv("SOCIALCREDIT_PORT")
    assert load_settings().port == 9000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 0\n", "port"),
        ("bogus = 1\n", "bogus"),
        ("schemes = []\n", "schemes"),
        ("notice_sink = 'pigeon'\n", "notice_sink"),
        ("port = [\n", "cannot read the settings file"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(SocialCreditError, match=message):
        load_settings(config)


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SocialCreditError, match="no settings file"):
        load_settings(tmp_path / "nope.toml")


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "service.md").read_text()
    for name in SettingsClass.model_fields:
        assert f"`{name}`" in doc and f"SOCIALCREDIT_{name.upper()}" in doc, name


# -- migrations -----------------------------------------------------------------------------


def test_upgrade_creates_the_ledger_and_applies_each_migration_once(service_db: str) -> None:
    first = upgrade(service_db)
    assert first.created and first.before == 0 and first.applied == [m.version for m in MIGRATIONS]
    again = upgrade(service_db)
    assert not again.created and again.applied == [] and again.after == latest()
    db = open_service_db(service_db)
    try:
        rows = db.query("SELECT version, name FROM svc_migrations ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
        # the records of due process are append-only
        db.execute(
            "INSERT INTO svc_access_log (at, subject, actor, role, purpose, what) "
            "VALUES ('t', 's', 'a', 'r', 'p', 'w')"
        )
        for statement in ("UPDATE svc_access_log SET purpose = 'x'", "DELETE FROM svc_access_log"):
            with pytest.raises(Exception, match="append-only"):
                db.execute(statement)
    finally:
        db.close()


def test_version_4_delivers_from_the_first_notice_the_outbox_held(service_db: str) -> None:
    """The outbox rows of version 3 become the point delivery has reached: the notices
    from the first pending one on go out (at least once: one delivered after it again)."""
    from socialcredit.service.activation import in_force
    from socialcredit.service.notices import deliver
    from socialcredit.service.sinks import MemorySink

    assert upgrade(service_db, to=3).applied == [1, 2, 3]
    db = ServiceDB.connect(service_db)
    try:
        with db.transaction():
            for i in range(1, 6):
                notice = db.insert(
                    "INSERT INTO svc_notices (subject, record_id, scheme, kind, created_at, "
                    "effective_on, body) VALUES (?, ?, 'rongcheng', 'adverse', 'now', "
                    "'2025-01-01', '{}')",
                    (f"s{i}", f"r{i}"),
                )
                db.execute(
                    "INSERT INTO svc_outbox (notice_id, created_at, delivered_at) "
                    "VALUES (?, 'now', ?)",
                    (notice, "then" if i in (1, 2, 4) else None),
                )
    finally:
        db.close()
    assert upgrade(service_db).applied == [4, 5, 6, 7, 8]
    sink = MemorySink()
    svc = Service.open(Settings(database=service_db, schemes=["rongcheng"]), sink=sink)
    try:
        # version 7: a scheme with notices ran before, over every record as recorded
        (before,) = in_force(svc.db).values()
        assert (before.scheme, before.since, before.existing) == ("rongcheng", None, "before")
        assert svc.schemes["rongcheng"].in_force is None
        assert deliver(svc) == (3, 0)
        assert [m["record"] for m in sink.sent] == ["r3", "r4", "r5"]
        assert deliver(svc) == (0, 0)
        with pytest.raises(Exception, match="append-only"):
            svc.db.execute("DELETE FROM svc_notice_rounds")
    finally:
        svc.close()


def test_a_database_without_the_service_tables_is_refused_with_the_fix(service_db: str) -> None:
    from socialcredit.store import create_ledger

    create_ledger(service_db).close()
    with pytest.raises(SocialCreditError, match="db upgrade"):
        open_service_db(service_db)
    db = ServiceDB.connect(service_db)
    assert db.version() == 0
    db.close()


def test_a_scheme_with_a_critical_finding_is_refused_on_real_records(service_db: str) -> None:
    upgrade(service_db)
    with pytest.raises(RefusedScheme, match=r"civil_aviation.*critical"):
        Service.open(Settings(database=service_db, schemes=["civil_aviation"]))


# -- agencies -------------------------------------------------------------------------------


def test_a_batch_is_acknowledged_once_durable_and_is_idempotent(service_env: ServiceEnv) -> None:
    env = service_env
    p = env.persons
    batch = [record("r1", p[0]), record("r2", p[1], "court.unfulfilled", amount=5000)]
    answer = env.post(batch)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "appended": 2,
        "repeated": 0,
        "subjects_added": 0,
        "notices": 2,
        "recorded_at": "2025-03-01",
    }
    # durable: a second connection to the database sees both, recorded today
    from socialcredit.store import open_ledger

    with open_ledger(env.database) as ledger:
        rows = {r["id"]: r for r in ledger.records().to_pylist()}
    assert rows["r2"]["recorded_at"] == dt.date(2025, 3, 1) and rows["r2"]["amount"] == 5000
    env.clock.advance(days=3)
    again = env.post([*batch, record("r3", p[2])])
    assert again.json()["appended"] == 1 and again.json()["repeated"] == 2
    with open_ledger(env.database) as ledger:
        ids = ledger.records()["id"].to_pylist()
        assert sorted(ids) == ["r1", "r2", "r3"] and ledger.verify().ok


def test_a_type_outside_the_scope_refuses_the_whole_batch(service_env: ServiceEnv) -> None:
    env = service_env
    answer = env.post(
        [record("ok", env.persons[0]), record("no", env.persons[0], "charity.donation", amount=100)]
    )
    assert answer.status_code == 403
    assert "charity.donation" in answer.json()["detail"]
    assert env.svc.ledger.call(lambda ledger: ledger.records().num_rows) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"records": [], "extra": 1},
        {
            "records": [
                {
                    "id": "a",
                    "subject": "x",
                    "type": "traffic.red_light",
                    "occurred_at": "2025-01-01",
                    "recorded_at": "2025-01-01",
                }
            ]
        },
        {
            "records": [
                {
                    "id": "a",
                    "subject": "x",
                    "type": "traffic.red_light",
                    "occurred_at": "2025-01-01",
                    "amount": -1,
                }
            ]
        },
        {
            "records": [
                {"id": "a", "subject": "x", "type": "Not A Type", "occurred_at": "2025-01-01"}
            ]
        },
        {"records": [{"id": "a", "subject": "x", "type": "t", "occurred_at": "2025-13-01"}]},
        {},
    ],
)
def test_malformed_bodies_and_extra_fields_are_rejected(
    service_env: ServiceEnv, body: dict[str, Any]
) -> None:
    answer = service_env.client.post("/v1/records", json=body, headers=service_env.auth("agency"))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request" and answer.json()["problems"]


def test_records_the_ledger_refuses_are_refused_whole(service_env: ServiceEnv) -> None:
    env = service_env
    answer = env.post(
        [
            record("a", env.persons[0]),
            record("b", "not-registered"),
            record("c", env.persons[1], occurred="2025-03-09"),
        ]
    )  # after today
    assert answer.status_code == 422
    problems = "\n".join(answer.json()["problems"])
    assert "not-registered" in problems or "registered" in problems
    assert env.svc.ledger.call(lambda ledger: ledger.records().num_rows) == 0
    # nor notices: their rows (written meanwhile on PostgreSQL) are rolled back with it
    assert env.svc.db.query("SELECT count(*) FROM svc_notices") == [(0,)]
    assert env.post([record("a", env.persons[0])]).json()["notices"] == 1


def test_a_record_id_cannot_be_taken_over(service_env: ServiceEnv) -> None:
    env = service_env
    assert env.post([record("r1", env.persons[0])]).status_code == 200
    changed = env.post([record("r1", env.persons[1])])
    assert changed.status_code == 409 and "r1" in changed.json()["detail"]
    other = env.client.post(
        "/v1/records",
        headers=env.auth("charity"),
        json={"records": [record("r1", env.persons[0], "charity.donation")]},
    )
    assert other.status_code == 409


def test_who_sent_a_record_is_the_ledgers_account(service_env: ServiceEnv) -> None:
    """The agency of a record is the source of its write in the ledger's log: a record of
    this agency's write whose notices were never written (a crash between the ledger's
    commit and the service's) gets them when the batch is sent again, once; a record of
    another agency's write is taken; one an import wrote may be repeated (no notice in
    the agency's name), not ended."""
    import pyarrow as pa

    from socialcredit.records import RECORDS_SCHEMA
    from socialcredit.service.ingest import senders

    env = service_env
    p = env.persons

    def write(rid: str, subject: str, source: str) -> None:
        day = dt.date(2025, 3, 1)
        table = pa.Table.from_pylist(
            [
                {
                    "id": rid,
                    "subject": subject,
                    "type": "traffic.red_light",
                    "occurred_at": dt.date(2025, 2, 20),
                    "recorded_at": day,
                    "amount": 0,
                    "ref": None,
                }
            ],
            schema=RECORDS_SCHEMA,
        )
        env.svc.ledger.call(lambda ledger: ledger.append(table, source=source))

    write("crashed", p[0], "agency:Traffic police")
    write("theirs", p[1], "agency:Charity board")
    write("imported", p[2], "import.csv")
    again = env.post([record("crashed", p[0])])
    assert again.status_code == 200, again.text
    assert (again.json()["appended"], again.json()["notices"]) == (0, 1)
    assert [n["record"] for n in env.sink.sent if n["record"] == "crashed"] == ["crashed"]
    assert env.post([record("crashed", p[0])]).json()["notices"] == 0
    taken = env.post([record("theirs", p[1])])
    assert taken.status_code == 409 and "theirs (sent by another agency)" in taken.text
    repeated = env.post([record("imported", p[2])])
    assert repeated.status_code == 200
    assert (repeated.json()["appended"], repeated.json()["notices"]) == (0, 0)
    ended = env.post([record("end", p[2], "court.fulfilled", ref="imported")])
    assert ended.status_code == 403 and "imported" in ended.text
    assert senders(env.svc, ["crashed", "theirs", "imported", "none"]) == {
        "crashed": "Traffic police",
        "theirs": "Charity board",
    }


def test_the_same_batch_sent_twice_at_once_is_acknowledged_twice(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends its batch again before the first answer came (a retry after a
    timeout, taken by another server process) gets both acknowledged: the process that
    looked first and appends second finds the records there, and each notice is written
    and delivered once."""
    import contextlib

    from socialcredit.service import Service, ingest
    from socialcredit.service.credentials import authenticate
    from socialcredit.service.notices import deliver
    from socialcredit.service.sinks import MemorySink

    env = service_env
    other = Service.open(env.svc.settings, clock=env.clock, sink=MemorySink())
    agency = authenticate(other.db, env.keys["agency"])
    assert agency is not None
    look_up = ingest._look_up
    raced: list[int] = []

    def racing(ledger: Any, records: Any) -> Any:
        seen = look_up(ledger, records)
        if not raced:  # the other process appends the same batch meanwhile
            raced.append(-1)
            raced[0] = ingest.ingest_table(other, agency, records).appended
        return seen

    # the look-up runs on the ledger's thread, which then plays the other process
    monkeypatch.setattr(ingest, "_lock", contextlib.nullcontext())
    monkeypatch.setattr(ingest, "_look_up", racing)
    sent = [record(f"twice-{i}", env.persons[i % 3]) for i in range(3)]
    try:
        answer = env.post(sent)
        assert answer.status_code == 200, answer.text
        assert raced == [3]
        assert (answer.json()["appended"], answer.json()["repeated"]) == (0, 3)
        assert answer.json()["notices"] == 0
        assert deliver(env.svc) == (0, 0)
    finally:
        other.close()
    assert sorted(n["record"] for n in other.sink.sent + env.sink.sent) == [
        "twice-0",
        "twice-1",
        "twice-2",
    ]


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("bogus", 401), ("operator", 403), ("reviewer", 403)]
)
def test_only_agency_keys_send_records(
    service_env: ServiceEnv, role: str | None, status: int
) -> None:
    env = service_env
    headers = (
        {}
        if role is None
        else ({"Authorization": "Bearer sck_nope"} if role == "bogus" else env.auth(role))
    )
    answer = env.client.post("/v1/records", json={"records": []}, headers=headers)
    assert answer.status_code == status


def test_keys_are_stored_hashed_and_revocable(service_env: ServiceEnv) -> None:
    env = service_env
    key = env.keys["operator"]
    stored = [r[0] for r in env.svc.db.query("SELECT hash FROM svc_keys")]
    assert key not in stored and hashlib.sha256(key.encode()).hexdigest() in stored
    from socialcredit.service.credentials import revoke

    revoke(env.svc.db, "operator", "Airline", "2025-03-01T10:00:00+00:00")
    answer = env.client.get(
        "/v1/decisions",
        headers=env.auth("operator"),
        params={
            "subject": env.persons[0],
            "action": "travel.air",
            "scheme": "town",
            "purpose": "x",
        },
    )
    assert answer.status_code == 401


def test_a_batch_larger_than_max_batch_is_refused(service_env: ServiceEnv) -> None:
    env = service_env
    env.svc.settings = env.svc.settings.model_copy(update={"max_batch": 2})
    answer = env.post([record(f"r{i}", env.persons[0]) for i in range(3)])
    assert answer.status_code == 413


# -- decisions ------------------------------------------------------------------------------


def decision(
    env: ServiceEnv,
    code: str,
    action: str = "travel.air",
    purpose: str | None = "ticket sale",
    role: str = "operator",
) -> Any:
    params = {"subject": code, "action": action, "scheme": "town"}
    if purpose is not None:
        params["purpose"] = purpose
    return env.client.get("/v1/decisions", params=params, headers=env.auth(role))


def test_decisions_follow_the_ledger_after_the_notice_period(service_env: ServiceEnv) -> None:
    env = service_env
    debtor, clean = env.persons[0], env.persons[1]
    env.post([record("j1", debtor, "court.unfulfilled", occurred="2025-02-01")])
    assert decision(env, debtor).json()["outcome"] == "allowed"  # in its notice period
    env.clock.advance(days=7)
    answer = decision(env, debtor).json()
    assert (answer["outcome"], answer["allowed"], answer["reasons"]) == (
        "denied",
        False,
        ["no_flights"],
    )
    assert answer["at"] == "2025-03-08" and answer["contested"] is False
    assert decision(env, clean).json()["outcome"] == "allowed"
    assert decision(env, clean, "admin.green_channel").json()["outcome"] == "granted"
    assert decision(env, "unregistered-code").json()["outcome"] == "allowed"
    # the state is recomputed when the ledger changes
    env.post([record("j2", clean, "court.unfulfilled", occurred="2025-02-01")])
    env.clock.advance(days=7)
    assert decision(env, clean).json()["outcome"] == "denied"


def test_decisions_need_a_purpose_an_operator_key_and_an_active_scheme(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    code = env.persons[0]
    missing = decision(env, code, purpose=None)
    assert missing.status_code == 400 and missing.json()["error"] == "purpose_required"
    assert decision(env, code, purpose="   ").status_code == 400
    assert decision(env, code, role="agency").status_code == 403
    other = env.client.get(
        "/v1/decisions",
        headers=env.auth("operator"),
        params={"subject": code, "action": "travel.air", "scheme": "nope", "purpose": "p"},
    )
    assert other.status_code == 404
    assert decision(env, code, action="Not an action").status_code == 422


def test_decisions_are_cached_per_ledger_mark_and_day(service_env: ServiceEnv) -> None:
    env = service_env
    env.post([record("j1", env.persons[0], "court.unfulfilled")])
    first = env.svc.states.scored("town", env.svc.day())
    decision(env, env.persons[0])
    assert env.svc.states.scored("town", env.svc.day()) is first
    env.post([record("j2", env.persons[1], "court.unfulfilled")])
    assert env.svc.states.scored("town", env.svc.day()) is not first


# -- schemes --------------------------------------------------------------------------------


def test_schemes_are_listed_with_their_version_and_audit(service_env: ServiceEnv) -> None:
    answer = service_env.client.get("/v1/schemes")
    assert answer.status_code == 200
    [town] = answer.json()
    assert town["scheme"] == "town" and town["notice_days"] == 7
    assert town["version"] == hashlib.sha256(SERVICE_SCHEME.encode()).hexdigest()[:16]
    assert "published-persons" in {f["code"] for f in town["findings"]}
    assert service_env.client.get("/v1/schemes/town").json() == town
    assert service_env.client.get("/v1/schemes/other").status_code == 404


# -- columnar ingest ------------------------------------------------------------------------


def test_a_csv_or_arrow_batch_is_ingested_like_json(service_env: ServiceEnv) -> None:
    import io
    import json

    import pyarrow as pa
    import pyarrow.ipc as ipc

    from socialcredit.service.notices import adverse_notice

    env = service_env
    p0, p1 = env.persons[0], env.persons[1]
    csv = f"id,subject,type,occurred_at,amount\nc1,{p0},traffic.red_light,2025-02-20,0\n"
    headers = {**env.auth("agency"), "Content-Type": "text/csv"}
    answer = env.client.post("/v1/records", content=csv, headers=headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["appended"], answer.json()["notices"]) == (1, 1)
    again = env.client.post("/v1/records", content=csv, headers=headers).json()
    assert (again["appended"], again["repeated"], again["notices"]) == (0, 1, 0)
    table = pa.table(
        {
            "id": ["c2"],
            "subject": [p1],
            "type": ["court.unfulfilled"],
            "occurred_at": pa.array([dt.date(2025, 2, 1)], pa.date32()),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    arrow = {**env.auth("agency"), "Content-Type": "application/vnd.apache.arrow.stream"}
    assert (
        env.client.post("/v1/records", content=sink.getvalue(), headers=arrow).json()["appended"]
        == 1
    )
    # the notice text written per batch is exactly the JSON of the one-record form
    [(text,)] = env.svc.db.query("SELECT body FROM svc_notices WHERE record_id = 'c1'")
    [row] = env.svc.ledger.call(lambda ledger: ledger.find(["c1"])).to_pylist()
    scheme = next(iter(env.svc.schemes.values())).scheme
    _, body = adverse_notice(env.svc, agency="Traffic police", record=row, scheme=scheme)
    assert text == json.dumps(body, ensure_ascii=False, sort_keys=True)
    bad = [
        (csv.replace("amount", "recorded_at"), "text/csv"),
        ("id,subject\nx,y\n", "text/csv"),
        ("not arrow", "application/vnd.apache.arrow.stream"),
        (f"id,subject,type,occurred_at\nc3,{p0},traffic.red_light,2025-13-01\n", "text/csv"),
    ]
    for content, kind in bad:
        refused = env.client.post(
            "/v1/records", content=content, headers={**env.auth("agency"), "Content-Type": kind}
        )
        assert refused.status_code == 422, (content, refused.text)
    outside = f"id,subject,type,occurred_at\nc4,{p0},charity.donation,2025-02-01\n"
    assert env.client.post("/v1/records", content=outside, headers=headers).status_code == 403


# -- what an agency may not do, and batches of unusual shape ----------------------------------


def test_an_agency_may_end_only_the_records_it_sent(service_env: ServiceEnv) -> None:
    env = service_env
    p0 = env.persons[0]
    assert env.post([record("j1", p0, "court.unfulfilled")]).status_code == 200
    gift = record("g1", p0, "charity.donation", amount=3000)
    assert env.post([gift], role="charity").status_code == 200
    # the charity board may not end the court's judgment, nor the court the donation
    foreign = env.post([record("g2", p0, "charity.donation", ref="j1")], role="charity")
    assert foreign.status_code == 403 and "j1" in foreign.json()["detail"]
    foreign = env.post([record("f1", p0, "court.fulfilled", ref="g1")])
    assert foreign.status_code == 403 and "g1" in foreign.json()["detail"]
    ids = env.svc.ledger.call(lambda ledger: ledger.records()["id"].to_pylist())
    assert ids == ["j1", "g1"]
    # the court resolves its own judgment, in an earlier batch or in the same one
    own = env.post([record("f2", p0, "court.fulfilled", ref="j1")])
    assert own.status_code == 200, own.text
    both = env.post(
        [record("j2", p0, "court.unfulfilled"), record("f3", p0, "court.fulfilled", ref="j2")]
    )
    assert both.status_code == 200, both.text


def test_the_same_record_twice_in_a_batch_is_one_record(service_env: ServiceEnv) -> None:
    env = service_env
    twice = [record("d1", env.persons[0]), record("d1", env.persons[0])]
    answer = env.post(twice)
    assert answer.status_code == 200, answer.text
    assert answer.json()["appended"] == 1 and answer.json()["notices"] == 1
    again = env.post(twice)
    assert again.status_code == 200 and again.json()["appended"] == 0


def test_an_empty_ref_cell_in_a_csv_batch_is_no_ref(service_env: ServiceEnv) -> None:
    env = service_env
    p0 = env.persons[0]
    csv = (
        "id,subject,type,occurred_at,amount,ref\n"
        f"e1,{p0},court.unfulfilled,2025-02-20,0,\n"
        f"e2,{p0},court.fulfilled,2025-02-21,0,e1\n"
    )
    headers = {**env.auth("agency"), "Content-Type": "text/csv"}
    answer = env.client.post("/v1/records", content=csv, headers=headers)
    assert answer.status_code == 200, answer.text
    refs = env.svc.ledger.call(lambda ledger: ledger.records()["ref"].to_pylist())
    assert refs == [None, "e1"]


def test_the_subjects_of_a_refused_batch_are_not_registered(service_env: ServiceEnv) -> None:
    env = service_env
    newcomer = person_codes(6, seed=11)[-1]
    bad = env.post(
        [record("n1", newcomer), record("n2", "not-registered")],
        subjects=[{"code": newcomer, "kind": "person"}],
    )
    assert bad.status_code == 422
    assert env.svc.ledger.call(lambda ledger: ledger.kind_of(newcomer)) is None
    good = env.post([record("n1", newcomer)], subjects=[{"code": newcomer, "kind": "person"}])
    assert good.status_code == 200 and good.json()["subjects_added"] == 1


def test_a_lost_database_connection_is_made_again(service_env: ServiceEnv) -> None:
    env = service_env
    if env.svc.db.dialect != "postgres":
        pytest.skip("an SQLite file has no connection to lose")
    import psycopg
    from conftest import service_postgres_url

    reviewer = {**env.auth("reviewer")}
    first = env.client.get("/v1/appeals", headers=reviewer, params={"purpose": "r"})
    assert first.status_code == 200
    (pid,) = env.svc.db.one("SELECT pg_backend_pid()") or (0,)
    with psycopg.connect(service_postgres_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    answers = [
        env.client.get("/v1/appeals", headers=reviewer, params={"purpose": "r"}) for _ in range(3)
    ]
    # the request that finds the connection gone is told to try again; then it is back
    assert {a.status_code for a in answers[:1]} <= {200, 503}
    assert [a.status_code for a in answers[1:]] == [200, 200]
    if answers[0].status_code == 503:
        assert answers[0].json()["error"] == "database_unavailable"
        assert answers[0].headers["Retry-After"] == "1"


def test_unknown_routes_and_methods_answer_in_the_one_error_shape(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    missing = env.client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = env.client.delete("/v1/records", headers=env.auth("agency"))
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert set(wrong.json()) == {"error", "detail", "problems"}


def test_the_openapi_document_is_served_without_pages_that_load_a_cdn(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    document = env.client.get("/openapi.json")
    assert document.status_code == 200 and "/v1/decisions" in document.json()["paths"]
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        answer = env.client.get(page)
        assert answer.status_code == 404, page
        assert "cdn" not in answer.text.lower()


def test_a_csv_batch_names_each_column_once_and_an_empty_amount_is_0(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    p0 = env.persons[0]
    headers = {**env.auth("agency"), "Content-Type": "text/csv"}
    twice = f"id,subject,type,occurred_at,id\nk1,{p0},traffic.red_light,2025-02-20,k2\n"
    refused = env.client.post("/v1/records", content=twice, headers=headers)
    assert refused.status_code == 422 and "named twice: id" in refused.json()["detail"]
    empty = f"id,subject,type,occurred_at,amount,ref\nk1,{p0},traffic.red_light,2025-02-20,,\n"
    answer = env.client.post(
        "/v1/records", content=empty, headers={**headers, "Content-Type": "Text/CSV"}
    )
    assert answer.status_code == 200, answer.text
    assert env.svc.ledger.call(lambda ledger: ledger.find(["k1"]))["amount"].to_pylist() == [0]
    # a body in another media type is refused, not read as JSON
    body = {"records": [record("k2", p0)]}
    other = env.client.post(
        "/v1/records",
        content=json.dumps(body, default=str),
        headers={**env.auth("agency"), "Content-Type": "text/plain"},
    )
    assert other.status_code == 422 and "text/plain" in other.json()["detail"]


def test_a_ref_to_a_record_nowhere_is_invalid_input(service_env: ServiceEnv) -> None:
    env = service_env
    answer = env.post([record("f1", env.persons[0], "court.fulfilled", ref="nowhere")])
    assert answer.status_code == 422, answer.text
    assert "nowhere" in " ".join(answer.json()["problems"])


def test_a_subject_registered_as_typed_gets_the_notices_of_its_records(
    service_env: ServiceEnv,
) -> None:
    """A code sent for registration in another form than the records name it (spaces,
    lower case) is registered in normal form: the records' notices are written."""
    env = service_env
    org = "91110000802100433B"
    spaced = "9111 0000 8021 0043 3b"
    answer = env.post(
        [record("a1", org, "court.unfulfilled")],
        subjects=[{"code": spaced, "kind": "organization"}],
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["subjects_added"], answer.json()["notices"]) == (1, 1)
    rows = env.svc.db.query("SELECT subject, record_id FROM svc_notices")
    assert [tuple(r) for r in rows] == [(org, "a1")]


def test_a_json_record_takes_a_date_and_an_amount_only_in_their_own_forms(
    service_env: ServiceEnv,
) -> None:
    """Nothing lax enters the ledger for good: a date is "YYYY-MM-DD", not a number of
    seconds nor a date-time; an amount is a JSON integer, not a string nor a float."""
    env = service_env
    p0 = env.persons[0]
    for i, odd in enumerate(
        (
            {"occurred_at": 1740009600},
            {"occurred_at": "2025-02-20T00:00:00"},
            {"amount": "5"},
            {"amount": 5.0},
        )
    ):
        answer = env.post([{**record(f"s{i}", p0), **odd}])
        assert answer.status_code == 422, (odd, answer.text)
    assert env.post([{**record("s9", p0), "amount": 5}]).status_code == 200
    ids = env.svc.ledger.call(lambda ledger: ledger.records()["id"].to_pylist())
    assert ids == ["s9"]


def test_actions_and_agency_types_are_the_dotted_names_of_the_scheme_language(
    service_env: ServiceEnv,
) -> None:
    """An action a scheme may name (capitals, hyphens) is asked about on either path of
    the decisions; a name no scheme may hold is refused, and an agency's type too long."""
    from socialcredit.service.credentials import add_agency

    env = service_env
    ask = {"subject": env.persons[0], "scheme": "town", "purpose": "ticket"}
    for action in ("Travel.Air-Express", "travel.air"):
        answer = env.client.get(
            "/v1/decisions", headers=env.auth("operator"), params={**ask, "action": action}
        )
        assert answer.status_code == 200, (action, answer.text)
    for action in ("travel..air", "travel.air\n", "a" * 129):
        answer = env.client.get(
            "/v1/decisions", headers=env.auth("operator"), params={**ask, "action": action}
        )
        assert answer.status_code == 422, action
    with pytest.raises(SocialCreditError, match="not record types"):
        add_agency(env.svc.db, "Another", ["t" * 129], "now")
