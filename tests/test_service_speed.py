"""What the service does to be fast keeps its answers: the hot paths answer as FastAPI's
routes do, notices are delivered as the same JSON lines, and the server's processes end
together."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ServiceEnv

from socialcredit.service.notices import deliver
from socialcredit.service.sinks import FileSink


def record(i: str, subject: str, type: str, occurred: str = "2025-02-01") -> dict[str, Any]:
    return {"id": i, "subject": subject, "type": type, "occurred_at": occurred}


class Spy:
    """Counts the requests the hot paths answered themselves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.answered = 0

    async def answer(self, scope: Any, send: Any) -> bool:
        done = bool(await self.inner.answer(scope, send))
        self.answered += done
        return done


def entries(env: ServiceEnv) -> int:
    row = env.svc.db.one("SELECT count(*) FROM svc_access_log")
    return int(row[0])


def both_ways(env: ServiceEnv, path: str, **request: Any) -> tuple[Any, Any, int]:
    """The answer (status, content type, body) and the access-log entries written, with
    the hot paths and with FastAPI's routes alone; and whether the hot path answered. The
    same request goes to the route first, so that the key is remembered (the hot path
    answers only for a key read within the last second) and the day's sweep is done."""
    app = env.client.app
    fast = app.fast
    spy = Spy(fast)
    seen = []
    try:
        app.fast = None
        env.client.get(path, **request)
        for way in (spy, None):
            app.fast = way
            before = entries(env)
            answer = env.client.get(path, **request)
            seen.append(
                (
                    answer.status_code,
                    answer.headers.get("content-type"),
                    answer.headers.get("retry-after"),
                    answer.content,
                    entries(env) - before,
                )
            )
    finally:
        app.fast = fast
    return seen[0], seen[1], spy.answered


def test_the_hot_paths_answer_as_the_routes_do(service_env: ServiceEnv) -> None:
    env = service_env
    debtor, contested, clean = env.persons[0], env.persons[1], env.persons[2]
    org = env.orgs[0]
    answer = env.post(
        [
            record("j1", debtor, "court.unfulfilled"),
            record("j2", contested, "court.unfulfilled"),
            record("j3", org, "court.unfulfilled"),
            record("t1", clean, "traffic.red_light"),
        ]
    )
    assert answer.status_code == 200, answer.text
    env.clock.advance(days=7)  # past the notice period: the records count
    appeal = env.client.post(
        "/v1/me/appeals",
        json={"record": "j2", "reason": "paid in full"},
        headers=env.session(contested),
    )
    assert appeal.status_code in (200, 201), appeal.text
    operator = env.auth("operator")

    def ask(**params: str) -> dict[str, Any]:
        return {"params": params, "headers": operator}

    base = {"action": "travel.air", "scheme": "town", "purpose": "ticket sale"}
    ordinary = [
        ("/v1/decisions", ask(subject=debtor, **base)),  # denied
        ("/v1/decisions", ask(subject=contested, **base)),  # denied, contested
        ("/v1/decisions", ask(subject=clean, **base)),  # allowed
        ("/v1/decisions", ask(subject=clean, **{**base, "action": "admin.green_channel"})),
        ("/v1/decisions", ask(subject=env.persons[3], **{**base, "action": "admin.green_channel"})),
        ("/v1/decisions", ask(subject="not-registered", **base)),
        ("/v1/decisions", ask(subject=f" {debtor.lower()} ", **base)),  # as typed
        ("/v1/decisions", {"params": {"subject": org, **base}, "headers": env.auth("auditor")}),
        (f"/v1/public/{debtor}", {"params": {"purpose": "checking a tenant"}}),
        (f"/v1/public/{contested}", {"params": {"purpose": "checking a tenant"}}),
        (f"/v1/public/{clean}", {"params": {"purpose": "checking a tenant"}}),
        (f"/v1/public/{org}", {"params": {"purpose": "checking a supplier"}}),
        (f"/v1/public/{env.orgs[1]}", {"params": {"purpose": "checking a supplier"}}),
        ("/v1/public/not-registered", {"params": {"purpose": "curious"}}),
        (f"/v1/public/{debtor}", {}),  # no purpose: 400, after the rate limit
        (f"/v1/public/{debtor}", {"params": {"purpose": "  "}}),
    ]
    refused = [
        ("/v1/decisions", ask(subject=debtor, action="travel.air", scheme="town")),
        ("/v1/decisions", ask(subject=debtor, **{**base, "purpose": " "})),
        ("/v1/decisions", ask(subject=debtor, **{**base, "action": "Not an action"})),
        ("/v1/decisions", ask(subject=debtor, **{**base, "scheme": "other"})),
        ("/v1/decisions", ask(subject="", **base)),
        ("/v1/decisions", ask(subject="x" * 65, **base)),
        ("/v1/decisions", {"params": {"subject": debtor, **base}}),  # no key
        ("/v1/decisions", {"params": {"subject": debtor, **base}, "headers": env.auth("agency")}),
        (
            "/v1/decisions",
            {"params": {"subject": debtor, **base}, "headers": {"Authorization": "Bearer sck_x"}},
        ),
        ("/v1/decisions?subject=a&subject=b&action=travel.air&scheme=town&purpose=p", ask()),
        (f"/v1/public/{debtor}", {"params": {"purpose": "p" * 201}}),
        (f"/v1/public/{'9' * 65}", {"params": {"purpose": "p"}}),
        (f"/v1/public/{debtor}/more", {"params": {"purpose": "p"}}),
    ]
    for path, request in ordinary + refused:
        fast, routed, answered = both_ways(env, path, **request)
        assert fast == routed, (path, request, fast, routed)
        assert answered == ((path, request) in ordinary), (path, request)
    # the answers themselves, once: every registered read wrote one entry
    fast, _, _ = both_ways(env, "/v1/decisions", **ask(subject=contested, **base))
    body = json.loads(fast[3])
    assert (body["outcome"], body["contested"], fast[4]) == ("denied", True, 1)
    fast, _, _ = both_ways(env, f"/v1/public/{org}", params={"purpose": "p"})
    assert json.loads(fast[3])["records"] and fast[4] == 1  # every lookup is logged


def test_the_hot_path_refuses_past_the_rate_limit_as_the_route_does(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    env.svc.limiter.burst = 1.0
    env.svc.limiter.per_second = 1 / 3600
    env.svc.limiter._buckets.clear()
    app = env.client.app
    path = f"/v1/public/{env.persons[0]}"
    first = env.client.get(path, params={"purpose": "p"})
    second = env.client.get(path, params={"purpose": "p"})
    fast, app.fast = app.fast, None
    try:
        third = env.client.get(path, params={"purpose": "p"})
    finally:
        app.fast = fast
    assert first.status_code == 200
    assert (second.status_code, second.headers["retry-after"], second.json()) == (
        third.status_code,
        third.headers["retry-after"],
        third.json(),
    )
    assert second.status_code == 429


def test_notices_are_delivered_as_the_json_lines_of_their_messages(
    service_env: ServiceEnv, tmp_path: Path
) -> None:
    env = service_env
    env.post([record(f"r{i}", env.persons[i % 5], "traffic.red_light") for i in range(20)])
    env.svc.db.execute(  # deliver them again: a round back to the start
        "INSERT INTO svc_notice_rounds (up_to, sent, failed, at) VALUES (0, 0, 0, 'now')"
    )
    env.svc.sink = FileSink(tmp_path / "notices.jsonl")
    assert deliver(env.svc) == (20, 0)
    lines = (tmp_path / "notices.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20
    for line in lines:
        assert line == json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True)
    assert [json.loads(line) for line in lines] == env.sink.sent[-20:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_processes_of_the_server_end_with_it(tmp_path: Path) -> None:
    from conftest import SERVICE_SCHEME

    from socialcredit.store.service_db import upgrade

    database = str(tmp_path / "town.ledger")
    upgrade(database)
    scheme = tmp_path / "town.yaml"
    scheme.write_text(SERVICE_SCHEME)
    env = {**os.environ, "SOCIALCREDIT_NOTICE_FILE": str(tmp_path / "notices.jsonl")}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "socialcredit"),
            "serve",
            "--database",
            database,
            "--port",
            str(free_port()),
            "--scheme",
            str(scheme),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while time.monotonic() < deadline:
            workers = [
                p
                for p in _children(server.pid)
                if "multiprocessing" in (Path("/proc") / str(p) / "cmdline").read_text()
                and "resource_tracker" not in (Path("/proc") / str(p) / "cmdline").read_text()
            ]
            if len(workers) == 2:
                break
            time.sleep(0.1)
        assert len(workers) == 2, workers
        time.sleep(1)  # on an idle machine the workers have set their parent-death signal
        server.send_signal(signal.SIGKILL)
        server.wait()
        # a worker ends by its parent-death signal, or -- killed before it set the
        # signal -- when it finds its parent gone right after (slow under load: it
        # imports the application first)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_published_states_answer_as_the_states_they_were_published_from(
    service_env: ServiceEnv, tmp_path: Path
) -> None:
    from socialcredit.engine.explain import explain
    from socialcredit.service.published import PublishedStates, Publisher
    from socialcredit.service.states import StateCache, Watch

    env = service_env
    svc = env.svc
    persons, orgs = env.persons, env.orgs
    sent = env.post(
        [
            record("j1", persons[0], "court.unfulfilled"),
            record("j2", orgs[0], "court.unfulfilled"),
            record("t1", persons[1], "traffic.red_light"),
            record("t2", persons[1], "traffic.red_light", occurred="2025-02-10"),
        ]
    )
    assert sent.status_code == 200, sent.text
    donation = env.post([record("d1", orgs[1], "charity.donation")], role="charity")
    assert donation.status_code == 200, donation.text
    env.clock.advance(days=8)
    local = svc.states
    assert isinstance(local, StateCache)
    where = tmp_path / "states"
    where.mkdir()
    publisher = Publisher(local, svc.day, where, tmp_path / "publish")
    watch = Watch(env.database, lambda: 0)
    published = PublishedStates(
        where, tmp_path / "publish", svc.ledger, svc.schemes, watch, svc.day
    )
    try:
        day = svc.day()
        assert published.ready(day) is None
        snap = published.current(day)  # asks the publisher, and waits for it
        mine = local.current(day)
        assert (snap.mark, snap.day) == (mine.mark, day)
        codes = [*persons, *orgs, "not-registered", persons[0].lower(), ""]
        actions = ["travel.air", "admin.green_channel", "travel", "travel.air.business"]
        for code in codes:
            assert snap.kind_of(code) == mine.kind_of(code), code
            for sid in svc.schemes:
                theirs, ours = snap.scheme(sid), mine.scheme(sid)
                assert theirs.date == ours.date
                assert theirs.lists(code) == ours.lists(code), code
                for action in actions:
                    assert theirs.decide(code, action) == ours.decide(code, action), code
                states, local_states = theirs.states_of(code), ours.states_of(code)
                assert (states is None) == (local_states is None), code
                if states is not None and local_states is not None:
                    assert explain(states, code) == explain(local_states, code), code
        for sid, active in svc.schemes.items():
            for k in range(len(active.scheme.lists)):
                assert snap.scheme(sid).members(k) == mine.scheme(sid).members(k)
                assert snap.scheme(sid).members(k)  # something to compare
        # a write moves the mark: the next snapshot is a new publication
        env.post([record("j3", persons[2], "court.unfulfilled")])
        env.clock.advance(days=8)
        later = published.current(svc.day())
        assert later.mark > snap.mark
        assert later.scheme("town").decide(persons[2], "travel.air") == (
            local.current(svc.day()).scheme("town").decide(persons[2], "travel.air")
        )
    finally:
        published.close()
        publisher.close()


def test_the_access_log_of_other_processes_is_committed_by_the_supervisor(
    service_env: ServiceEnv, tmp_path: Path
) -> None:
    import asyncio

    from socialcredit.service.access import AccessLogServer, AccessLogWriter

    env = service_env
    where = tmp_path / "access"
    server = AccessLogServer(env.svc.access_log, where)
    remote = AccessLogWriter(env.database, remote=where)
    before = entries(env)

    def entry(i: int) -> tuple[str, str, str, str, str, str]:
        at = "2025-03-01T10:00:00+00:00"
        return (at, env.persons[i % 5], "Airline", "operator", "p", f"e{i}")

    async def many() -> None:
        await asyncio.gather(*(remote.write_async(entry(i)) for i in range(200)))
        remote.close()  # on the loop: its connection too

    try:
        futures = [remote.write(entry(1000 + i)) for i in range(50)]
        for done in futures:
            done.result(10)
        asyncio.run(many())
        assert entries(env) - before == 250
        whats = {str(r[0]) for r in env.svc.db.query("SELECT what FROM svc_access_log")}
        assert {f"e{i}" for i in (*range(200), *range(1000, 1050))} <= whats
    finally:
        remote.close()
        server.close()
    # with the supervisor gone, a write fails: the request it serves is refused
    lonely = AccessLogWriter(env.database, remote=tmp_path / "nobody")
    try:
        import pytest

        from socialcredit.errors import LedgerError

        with pytest.raises(LedgerError):
            lonely.write(entry(1)).result(10)

        async def one() -> None:
            await lonely.write_async(entry(2))

        with pytest.raises(LedgerError):
            asyncio.run(one())
    finally:
        lonely.close()


def test_an_organizations_remembered_lookup_follows_its_record_and_appeals(
    service_env: ServiceEnv,
) -> None:
    env = service_env
    org = env.orgs[0]
    assert env.post([record("j1", org, "court.unfulfilled")]).status_code == 200
    env.clock.advance(days=8)

    def shown() -> dict[str, Any]:
        answer = env.client.get(f"/v1/public/{org}", params={"purpose": "a supplier"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first = shown()
    assert [(r["type"], r["contested"]) for r in first["records"]] == [("court.unfulfilled", False)]
    assert shown() == first  # remembered
    appeal = env.client.post(
        "/v1/me/appeals", json={"record": "j1", "reason": "settled"}, headers=env.session(org)
    )
    assert appeal.status_code in (200, 201), appeal.text
    assert [r["contested"] for r in shown()["records"]] == [True]
    assert env.post([record("j2", org, "court.unfulfilled")]).status_code == 200
    env.clock.advance(days=8)
    assert len(shown()["records"]) == 2


def test_notice_bodies_joined_as_columns_are_those_written_record_by_record(
    service_env: ServiceEnv,
) -> None:
    import datetime as dt

    import pyarrow as pa

    from socialcredit.records import RECORDS_SCHEMA
    from socialcredit.service.notices import NoticeTexts

    svc = service_env.svc
    [active] = svc.schemes.values()
    ids = ["r1", 'quote"d', "back\\slash", "ünïcødé", "r 5", "tab\tbed"]
    n = len(ids)
    rows = pa.table(
        {
            "id": ids,
            "subject": ["110101199003077777", 'a"b', "c\\d", "é", "x", "y"],
            "type": ["court.unfulfilled", "traffic.red_light"] * 3,
            "occurred_at": [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "recorded_at": [dt.date(2025, 3, 1) + dt.timedelta(days=i % 2) for i in range(n)],
            "amount": [0, 1, 2**40, 7, 0, 3],
            "ref": [None, "r1", 'q"', None, "\\", None],
        },
        schema=RECORDS_SCHEMA,
    )
    texts = NoticeTexts(svc, 'Traffic "police"')
    for scheme in (active.scheme, active.scheme.model_copy(update={"appeal_days": 0})):
        # and with a day in force (a notice period from it, for the records before it)
        for since in (None, dt.date(2025, 3, 2)):
            clean = rows.slice(0, 5)  # no control character: joined as columns
            assert NoticeTexts._columnar(clean)
            stamp = "2025-03-01T10:00:00+00:00"
            assert texts.adverse(clean, scheme, stamp, since) == texts.adverse_rows(
                clean, scheme, stamp, since
            )
            assert not NoticeTexts._columnar(rows)  # a tab: record by record
            assert texts.adverse(rows, scheme, "s", since) == texts.adverse_rows(
                rows, scheme, "s", since
            )
    for body in texts.adverse(rows.slice(0, 5), active.scheme, "s")["body"].to_pylist():
        assert json.loads(body)["record"]["id"] in ids


def test_a_table_of_columns_is_copied_as_it_is_on_either_store(service_db: str) -> None:
    """Rows given as Arrow columns (PostgreSQL: a binary COPY laid out column by column)
    read back exactly: quotes, backslashes, tabs, new lines, empty text, non-ASCII text
    and large integers."""
    import pyarrow as pa

    from socialcredit.store.service_db import ServiceDB, upgrade

    upgrade(service_db)
    db = ServiceDB.connect(service_db)
    texts = ['q"uote', "back\\slash", "tab\tand\nline", "", "ünïcødé 信用"]
    try:
        with db.transaction() as tx:
            tx.copy_table(
                "svc_deliveries",
                pa.table(
                    {
                        "event_id": pa.array([1, 2**40, 3, 4, 5], pa.int64()),
                        "subscription_id": pa.array([7] * 5, pa.int64()),
                        "created_at": pa.chunked_array([texts[:2], texts[2:]]),
                        "next_at": pa.array(texts),
                    }
                ),
            )
            tx.copy_table("svc_deliveries", pa.table({"event_id": [], "created_at": []}))
        assert db.query(
            "SELECT event_id, created_at, next_at, delivered_at FROM svc_deliveries ORDER BY id"
        ) == [(n, t, t, None) for n, t in zip([1, 2**40, 3, 4, 5], texts, strict=True)]
    finally:
        db.close()


def test_many_ids_are_found_as_one_array_on_either_store(service_db: str) -> None:
    from socialcredit.store.service_db import ServiceDB, upgrade

    upgrade(service_db)
    db = ServiceDB.connect(service_db)
    try:
        sent = [f"r{i}" for i in range(6000)] + ['quote"d', "back\\slash", "ünïcødé", "a,b"]
        with db.transaction() as tx:
            tx.copy(
                "svc_agencies",
                ("name", "types", "created_at"),
                [(rid, f"agency {i % 3}", "2025-01-01") for i, rid in enumerate(sent)],
            )
        asked = [*sent[::7], "never sent", "r6000", "quote"]
        where, params = db.one_of("name", asked)
        rows = db.query(f"SELECT name, types FROM svc_agencies WHERE {where}", params)
        expected = {rid: f"agency {sent.index(rid) % 3}" for rid in asked if rid in sent}
        assert dict(rows) == expected
        if db.dialect == "sqlite":  # one lookup by the key per id, not a pass over the table
            plan = db.query(
                f"EXPLAIN QUERY PLAN SELECT types FROM svc_agencies WHERE {where}", params
            )
            steps = " / ".join(str(row[-1]) for row in plan)
            assert (
                "SEARCH svc_agencies USING INDEX" in steps and "SCAN svc_agencies" not in steps
            ), steps
        nothing, params = db.one_of("name", [])
        assert db.query(f"SELECT name FROM svc_agencies WHERE {nothing}", params) == []
    finally:
        db.close()


def test_notices_are_numbered_in_the_order_of_their_commits(service_db: str) -> None:
    """A round delivers the notices numbered after the last one it reached, so none may be
    committed after a higher number: the transactions that write notices take turns. A
    second writer waits for the first to commit; a round meanwhile delivers what is
    committed; then each notice goes out exactly once, in order."""
    import threading

    from socialcredit.service import Service, Settings
    from socialcredit.service.notices import pending_notices, write_notices
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import ServiceDB, upgrade

    def notice(rid: str) -> tuple[str, str, str, str, str, str, str, None]:
        return (f"s-{rid}", rid, "rongcheng", "adverse", "now", "2025-01-01", "{}", None)

    upgrade(service_db)
    sink = MemorySink()
    svc = Service.open(Settings(database=service_db, schemes=["rongcheng"]), sink=sink)
    first, second = ServiceDB.connect(service_db), ServiceDB.connect(service_db)
    written, release, late_done = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:  # numbers its notice, then holds its transaction open
        with first.transaction() as tx:
            write_notices(tx, [notice("early")])
            written.set()
            release.wait(30)

    def late() -> None:
        with second.transaction() as tx:
            write_notices(tx, [notice("late")])
        late_done.set()

    try:
        with svc.db.transaction() as tx:
            assert write_notices(tx, [notice("a"), notice("b")]) == 2
        if svc.db.dialect == "postgres":
            threads = [threading.Thread(target=slow), threading.Thread(target=late)]
            threads[0].start()
            assert written.wait(30)
            threads[1].start()
            assert not late_done.wait(0.5)  # waits for its turn
            assert deliver(svc) == (2, 0)  # what is committed
            assert pending_notices(svc.db) == 0
            release.set()
            for thread in threads:
                thread.join(30)
            assert late_done.is_set()
        else:  # one writer at a time, the round's too: the same order, one after the other
            release.set()
            slow()
            late()
            assert deliver(svc, limit=2) == (2, 0)
        assert deliver(svc, limit=1) == (1, 0)
        assert deliver(svc) == (1, 0)
        assert deliver(svc) == (0, 0) and pending_notices(svc.db) == 0
        assert [m["record"] for m in sink.sent] == ["a", "b", "early", "late"]
        numbers = [m["notice"] for m in sink.sent]
        assert numbers == sorted(numbers) and len(set(numbers)) == 4
        # a notice written already (the same batch sent twice at once) is not written again
        with svc.db.transaction() as tx:
            assert write_notices(tx, [notice("a"), notice("c"), notice("late")]) == 1
        assert deliver(svc) == (1, 0) and sink.sent[-1]["record"] == "c"
    finally:
        release.set()
        first.close()
        second.close()
        svc.close()


def test_two_deliverers_never_move_the_point_back(service_db: str) -> None:
    """A round appends its row only if no other round was appended since it read the
    point; a failure like the last one, with nothing sent, is not logged again."""
    from socialcredit.service import Service, Settings
    from socialcredit.service.notices import pending_notices, write_notices
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    class Refusing:
        def send(self, notice: dict[str, Any]) -> None:
            raise OSError("the relay is down")

    upgrade(service_db)
    svc = Service.open(Settings(database=service_db, schemes=["rongcheng"]), sink=MemorySink())
    rounds = "SELECT up_to, sent, failed, error FROM svc_notice_rounds ORDER BY id"
    try:
        with svc.db.transaction() as tx:
            write_notices(
                tx,
                [
                    (f"s{i}", f"r{i}", "rongcheng", "adverse", "now", "2025-01-01", "{}", None)
                    for i in range(3)
                ],
            )
        start = svc.db.query(rounds)
        svc.sink = Refusing()
        assert deliver(svc) == (0, 3) and deliver(svc) == (0, 3)
        assert svc.db.query(rounds) == [*start, (0, 0, 3, "the relay is down")]
        svc.sink = MemorySink()
        # another deliverer appends a round after this one read the point: this one's
        # round is not logged, and the point stays where the other put it
        svc.db.execute(
            "INSERT INTO svc_notice_rounds (up_to, sent, failed, at) VALUES (2, 2, 0, 'now')"
        )
        from socialcredit.service import notices

        real = notices._reached
        try:
            notices._reached = lambda db: (real(db)[0] - 1, 0, None)  # as read before it
            assert deliver(svc) == (3, 0)
        finally:
            notices._reached = real
        assert svc.db.query(rounds)[-1] == (2, 2, 0, None)
        assert pending_notices(svc.db) == 1
    finally:
        svc.close()


def test_the_service_tables_statistics_follow_their_growth(service_db: str) -> None:
    """On PostgreSQL, tables that grew by a fifth or more since their statistics were
    taken are analyzed (so a server without autovacuum plans with their real size), and
    only those; SQLite keeps its own statistics."""
    from socialcredit.service.notices import write_notices
    from socialcredit.store.service_db import ServiceDB, upgrade

    upgrade(service_db)
    db = ServiceDB.connect(service_db)
    try:
        if db.dialect == "postgres":
            db.execute("ANALYZE")  # the statistics of empty tables
            db.query("SELECT pg_stat_force_next_flush()")  # counts visible at commit
        notices = [
            (f"s{i}", f"r{i}", "rongcheng", "adverse", "now", "2025-01-01", "{}", None)
            for i in range(12_000)
        ]
        with db.transaction() as tx:
            write_notices(tx, notices)
        if db.dialect == "sqlite":
            assert db.keep_statistics() == []
            return
        analyzed: list[str] = []
        deadline = time.monotonic() + 10
        while not analyzed and time.monotonic() < deadline:  # counts reach the view late
            analyzed = db.keep_statistics()
            time.sleep(0.05)
        assert analyzed == ["svc_notices"]
        known = dict(
            db.query(
                "SELECT relname, reltuples FROM pg_class WHERE relnamespace = "
                "current_schema()::regnamespace AND relname IN ('svc_notices', 'svc_events')"
            )
        )
        assert known == {"svc_notices": 12_000, "svc_events": 0}
        assert db.keep_statistics() == []  # nothing changed since
    finally:
        db.close()


def test_delivered_webhook_rows_are_vacuumed_away(service_db: str) -> None:
    """On PostgreSQL, a service table holding a fifth or more of dead rows (webhook
    deliveries once done) is vacuumed, as autovacuum would: its dead rows are gone."""
    if not service_db.startswith("postgresql"):
        return  # SQLite reuses the pages of deleted rows itself
    import pyarrow as pa

    from socialcredit.store.service_db import ServiceDB, upgrade

    upgrade(service_db)
    db = ServiceDB.connect(service_db)
    dead = (
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = current_schema() "
        "AND relname = 'svc_deliveries'"
    )
    try:
        n = 12_000
        with db.transaction() as tx:
            tx.copy_table(
                "svc_deliveries",
                pa.table(
                    {
                        "event_id": pa.array(range(n), pa.int64()),
                        "subscription_id": pa.array([1] * n, pa.int64()),
                        "created_at": pa.repeat(pa.scalar("now"), n),
                        "next_at": pa.repeat(pa.scalar("now"), n),
                    }
                ),
            )
        db.keep_statistics()
        db.execute("UPDATE svc_deliveries SET delivered_at = 'now', attempts = 1")
        kept: list[str] = []
        deadline = time.monotonic() + 10
        while "svc_deliveries" not in kept and time.monotonic() < deadline:
            db.query("SELECT pg_stat_force_next_flush()")
            kept = db.keep_statistics()
            time.sleep(0.05)
        assert "svc_deliveries" in kept
        assert db.query(dead) == [(0,)]
        assert db.query("SELECT count(*) FROM svc_deliveries WHERE delivered_at IS NULL") == [(0,)]
    finally:
        db.close()


def test_the_dispatcher_keeps_the_statistics_once_woken(service_db: str) -> None:
    """A batch sent leaves the statistics to the server's dispatcher: woken by a write to
    the outbox, it analyzes the tables that grew (PostgreSQL), well before its 30 s."""
    if not service_db.startswith("postgresql"):
        return  # SQLite keeps its own statistics
    from socialcredit.service import Service, Settings
    from socialcredit.service.notices import write_notices
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    upgrade(service_db)
    settings = Settings(database=service_db, schemes=["rongcheng"])
    svc = Service.open(settings, sink=MemorySink(), background=True)
    try:
        svc.db.execute("ANALYZE")  # the statistics of empty tables
        time.sleep(1.5)  # past the dispatcher's first round
        notices = [
            (f"s{i}", f"r{i}", "rongcheng", "adverse", "now", "2025-01-01", "{}", None)
            for i in range(12_000)
        ]
        with svc.db.transaction() as tx:
            write_notices(tx, notices)
        svc.db.query("SELECT pg_stat_force_next_flush()")
        svc.outbox_written()
        query = (
            "SELECT reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "AND relname = 'svc_notices'"
        )
        deadline = time.monotonic() + 15
        while svc.db.query(query) != [(12_000,)] and time.monotonic() < deadline:
            svc.outbox_written()  # the counts may reach the view after the first round
            time.sleep(0.2)
        assert svc.db.query(query) == [(12_000,)]
    finally:
        svc.close()
