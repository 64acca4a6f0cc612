"""The HTTP API against its own OpenAPI document: schemathesis generates requests for every
operation (with and without valid credentials); no answer may be a server error, and every
answer must have a documented status, content type, headers and body schema. On SQLite and
PostgreSQL. And the record types the API takes are those a scheme may declare."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import FakeClock, ServiceEnv, person_codes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _credential(env: ServiceEnv, path: str) -> dict[str, str]:
    if path.startswith("/v1/me"):
        return env.session(env.persons[0])
    role = {
        "/v1/records": "agency",
        "/v1/decisions": "operator",
        "/v1/access-log": "auditor",
        "/v1/ledger/verify": "auditor",
    }.get(path, "reviewer")
    return env.auth(role)


def test_the_api_keeps_to_its_openapi_document(service_env: ServiceEnv) -> None:
    env = service_env
    env.post(
        [
            {
                "id": "j1",
                "subject": env.persons[0],
                "type": "court.unfulfilled",
                "occurred_at": "2025-02-01",
            }
        ]
    )
    env.svc.settings = env.svc.settings.model_copy(update={"max_batch": 50})
    schema = schemathesis.openapi.from_asgi("/openapi.json", env.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    calls = 0

    def checker(operation: Any) -> Any:
        @given(case=operation.as_strategy(), signed=st.booleans())
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any, signed: bool) -> None:
            nonlocal calls
            headers = _credential(env, operation.path) if signed else None
            case.call_and_validate(headers=headers, checks=CHECKS)
            calls += 1

        return check

    for operation in operations:
        checker(operation)()
    assert calls >= 18 * 10


# -- record types: the scheme language's, one definition ----------------------------------

TYPES_SCHEME = """
scheme: roads
title: Types and actions of every form the scheme language allows
subjects: [person]
notice_days: 7
records:
  Traffic.Red-Light: {category: traffic, adverse: true}
  appeal.upheld:     {category: process}
score: {base: 1000}
rules:
  - {id: red_lights, types: [Traffic.Red-Light], window_days: 365, measure: count, points: -5}
grades:
  - {grade: A, min: 1000}
  - {grade: B}
measures:
  - {id: grounded, when: {grade_in: [B]}, deny: [travel.air]}
"""

TYPE_CASES = [
    ("traffic.red_light", True),
    ("Traffic.Red-Light", True),
    ("court-2.Judgment_unfulfilled", True),
    ("x" * 128, True),
    ("x" * 129, False),
    ("traffic..red_light", False),
    ("traffic.red light", False),
    (".traffic", False),
    ("traffic.", False),
    ("traffic.rötlicht", False),
    ("traffic.red_light\n", False),
]


@pytest.mark.parametrize("name, valid", TYPE_CASES)
def test_the_api_takes_the_record_types_a_scheme_may_declare(name: str, valid: bool) -> None:
    from pydantic import TypeAdapter, ValidationError

    from socialcredit.api.models import RecordIn
    from socialcredit.scheme.model import TypeName

    def takes(check: Any, value: Any) -> bool:
        try:
            check(value)
        except ValidationError:
            return False
        return True

    record = {"id": "r1", "subject": "s", "type": name, "occurred_at": "2025-01-01"}
    assert takes(TypeAdapter(TypeName).validate_python, name) is valid
    assert takes(RecordIn.model_validate_json, json.dumps(record)) is valid


def test_a_record_of_a_type_a_scheme_declares_is_sent_and_counts(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from socialcredit.api import create_app
    from socialcredit.service import Service, Settings
    from socialcredit.service.credentials import add_agency, add_key
    from socialcredit.service.sinks import MemorySink
    from socialcredit.store.service_db import upgrade

    scheme = tmp_path / "roads.yaml"
    scheme.write_text(TYPES_SCHEME)
    database = str(tmp_path / "service.ledger")
    upgrade(database)
    clock = FakeClock(dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC))
    svc = Service.open(
        Settings(database=database, schemes=[str(scheme)]), clock=clock, sink=MemorySink()
    )
    now = "2025-03-01T10:00:00+00:00"
    agency = {"Authorization": "Bearer " + add_agency(svc.db, "Roads", ["Traffic.Red-Light"], now)}
    operator = {"Authorization": "Bearer " + add_key(svc.db, "operator", "Airline", now)}
    [driver] = person_codes(1)
    with TestClient(create_app(svc), client=("127.0.0.1", 50000)) as client:

        def send(type_: str) -> Any:
            body = {
                "subjects": [{"code": driver, "kind": "person"}],
                "records": [
                    {"id": "t1", "subject": driver, "type": type_, "occurred_at": "2025-02-20"}
                ],
            }
            return client.post("/v1/records", json=body, headers=agency)

        refused = send("Traffic..Red-Light")
        assert refused.status_code == 422, refused.text
        sent = send("Traffic.Red-Light")
        assert sent.status_code == 200, sent.text
        assert sent.json()["appended"] == 1
        clock.advance(days=7)  # past the notice period: the record counts
        params = {"subject": driver, "action": "travel.air", "scheme": "roads", "purpose": "p"}
        asked = client.get("/v1/decisions", params=params, headers=operator)
        assert asked.status_code == 200, asked.text
        assert (asked.json()["outcome"], asked.json()["reasons"]) == ("denied", ["grounded"])
