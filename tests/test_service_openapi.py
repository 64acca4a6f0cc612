"""The HTTP API against its own OpenAPI document: schemathesis generates requests for every
operation (with and without valid credentials); no answer may be a server error, and every
answer must have a documented status, content type, headers and body schema. On SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import schemathesis
from conftest import ServiceEnv
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
