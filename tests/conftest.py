"""Shared fixtures."""

from __future__ import annotations

# -- the service (tests/test_service*.py) -------------------------------------------------
import datetime as dt
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SERVICE_POSTGRES = os.environ.get(
    "SOCIALCREDIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)

SERVICE_SCHEME = """
scheme: town
title: A town's points and debtors
subjects: [person, organization]
notice_days: 7
appeal_days: 30
records:
  traffic.red_light: {category: traffic, adverse: true}
  court.unfulfilled: {category: judicial, adverse: true}
  court.fulfilled:   {category: judicial}
  charity.donation:  {category: charity}
  appeal.upheld:     {category: process}
score: {base: 1000, min: 0, max: 1200}
rules:
  - {id: red_lights, types: [traffic.red_light], window_days: 365, measure: count,
     points: -5, cap: 50}
  - {id: donations, types: [charity.donation], window_days: 365, measure: amount,
     points: 1, per: 100, cap: 30}
  - {id: unfulfilled, types: [court.unfulfilled], window_days: 730, measure: count, points: 0}
grades:
  - {grade: A, min: 1000}
  - {grade: B, min: 950}
  - {grade: C}
lists:
  - {id: debtors, kind: black, when: {rule: unfulfilled, at_least: 1}, publish: true}
measures:
  - {id: no_flights, when: {list: debtors}, deny: [travel.air]}
  - {id: fast_lane, when: {grade_in: [A]}, grant: [admin.green_channel]}
actions:
  travel.air: {context: judicial}
"""


def put_in_force(tx: Any, scheme: str) -> None:
    """Write the rows a server putting ``scheme`` in force writes, in the transaction
    ``tx`` of a :class:`~socialcredit.store.service_db.ServiceDB`."""
    tx.execute(
        "INSERT INTO svc_schemes_in_force (scheme, version, since, existing, notices, "
        "at) VALUES (?, 'v1', '2025-03-01', 'notify', 0, '2025-03-01')",
        (scheme,),
    )
    tx.execute(
        "INSERT INTO svc_scheme_versions (scheme, version, text, existing, at) "
        "VALUES (?, 'v1', '', 'unchecked', '2025-03-01')",
        (scheme,),
    )


def while_put_in_force(database: str, scheme: str, action: Callable[[], object]) -> object:
    """Run ``action`` on a thread while another connection, as a server putting ``scheme``
    in force does, holds the notices' turn and the ledger's writers; check that it waits
    for them; then commit the rows of ``scheme`` and give what ``action`` returned or
    raised."""
    from socialcredit.service.notices import NOTICE_WRITERS
    from socialcredit.store.service_db import ServiceDB

    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:
            outcome.append(exc)

    other = ServiceDB.connect(database)
    try:
        with other.transaction() as tx:
            tx.take_turn(NOTICE_WRITERS)
            tx.hold_ledger()
            running = threading.Thread(target=run)
            running.start()
            running.join(1.0)
            assert running.is_alive()  # it waits for the turn
            put_in_force(tx, scheme)
        running.join(30)
    finally:
        other.close()
    [found] = outcome
    return found


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, days: int = 0, hours: int = 0, seconds: int = 0) -> None:
        self.now += dt.timedelta(days=days, hours=hours, seconds=seconds)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


_pg_reason: dict[str, str | None] = {}


def service_postgres_url() -> str:
    """The test database, or skip (fail under CI) when it cannot be reached."""
    if SERVICE_POSTGRES not in _pg_reason:
        try:
            import psycopg

            psycopg.connect(SERVICE_POSTGRES, connect_timeout=5).close()
            _pg_reason[SERVICE_POSTGRES] = None
        except Exception as exc:
            _pg_reason[SERVICE_POSTGRES] = f"PostgreSQL at {SERVICE_POSTGRES}: {exc}"
    reason = _pg_reason[SERVICE_POSTGRES]
    if reason is not None:
        if _under_ci():
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests must run)")
        pytest.skip(reason)
    return SERVICE_POSTGRES


@pytest.fixture(params=["sqlite", "postgres"])
def service_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where one test's service database goes: a file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "service.ledger")
        return
    url = service_postgres_url()
    schema = f"svc_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{url}?schema={schema}"
    finally:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def person_codes(n: int, seed: int = 7) -> list[str]:
    from socialcredit.ids import ric

    return ric.generate(
        np.random.default_rng(seed), n, born_from=dt.date(1960, 1, 1), born_to=dt.date(2000, 12, 31)
    )


def org_codes(n: int, seed: int = 7) -> list[str]:
    from socialcredit.ids import uscc

    return uscc.generate(np.random.default_rng(seed), n)


@dataclass
class ServiceEnv:
    """A running service (in process) with a client and a key for every role."""

    svc: Any
    client: Any
    clock: FakeClock
    sink: Any
    database: str
    keys: dict[str, str] = field(default_factory=dict)
    persons: list[str] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def session(self, code: str) -> dict[str, str]:
        token = self.svc.identity.issue(code)
        answer = self.client.post("/v1/session", json={"token": token})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def post(
        self,
        records: list[dict[str, Any]],
        role: str = "agency",
        subjects: list[dict[str, str]] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"records": records}
        if subjects is not None:
            body["subjects"] = subjects
        return self.client.post("/v1/records", json=body, headers=self.auth(role))


@pytest.fixture
def service_env(service_db: str, tmp_path: Path) -> Iterator[ServiceEnv]:
    """The service on ``service_db`` with the test scheme, a fake clock at 2025-03-01
    10:00 UTC, notices kept in memory, keys for an agency (traffic and court types), an
    operator, a reviewer and an auditor, and 5 persons and 3 organizations registered."""
    from fastapi.testclient import TestClient

    from socialcredit.api import create_app
    from socialcredit.service import Service, Settings
    from socialcredit.service.credentials import add_agency, add_key
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    scheme = tmp_path / "town.yaml"
    scheme.write_text(SERVICE_SCHEME)
    upgrade(service_db)
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    sink = MemorySink()
    settings = Settings(
        database=service_db, schemes=[str(scheme)], public_rate=600, public_burst=100
    )
    svc = Service.open(settings, clock=clock, sink=sink)
    now = "2025-03-01T10:00:00+00:00"
    keys = {
        "agency": add_agency(
            svc.db,
            "Traffic police",
            ["traffic.red_light", "court.unfulfilled", "court.fulfilled"],
            now,
        ),
        "charity": add_agency(svc.db, "Charity board", ["charity.donation"], now),
        "operator": add_key(svc.db, "operator", "Airline", now),
        "reviewer": add_key(svc.db, "reviewer", "Reviewer One", now),
        "auditor": add_key(svc.db, "auditor", "Auditor", now),
    }
    env = ServiceEnv(svc, None, clock, sink, service_db, keys, person_codes(5), org_codes(3))
    with TestClient(create_app(svc), client=("127.0.0.1", 50000)) as client:
        env.client = client
        subjects = [{"code": c, "kind": "person"} for c in env.persons] + [
            {"code": c, "kind": "organization"} for c in env.orgs
        ]
        answer = env.post([], subjects=subjects)
        assert answer.status_code == 200, answer.text
        yield env


# -- the browser (tests/browser.py: headless Chromium, offline) ---------------------------

pytest_plugins = ["browser"]
