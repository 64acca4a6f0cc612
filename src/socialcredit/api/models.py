"""The bodies of the HTTP API: what requests may carry (nothing more: extra fields are
refused) and what responses hold (nothing more: each field is declared)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, Strict

from socialcredit.scheme.model import TypeName

__all__ = [
    "AccessEntryOut",
    "AppealIn",
    "AppealOut",
    "DecisionOut",
    "ErrorBody",
    "FindingOut",
    "IngestOut",
    "NoticeOut",
    "OwnRecordOut",
    "PublicOut",
    "RecordBatch",
    "RecordIn",
    "RejectIn",
    "SchemeOut",
    "SchemeStateOut",
    "SessionOut",
    "SignInIn",
    "SubjectIn",
    "SubscriptionIn",
    "SubscriptionOut",
    "UpholdIn",
    "VerifyOut",
    "answer",
]

MAX_BATCH = 1_000_000  # the ceiling of the max_batch setting, which the route enforces (413)

Text = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(_Out):
    """Every refusal: a short code, a message a person can act on, and the problems of an
    invalid input, one per line, when there are several."""

    error: str
    detail: str
    problems: list[str] = Field(default_factory=list)


class SubjectIn(_In):
    """A subject to register: its code and kind."""

    code: Code
    kind: Literal["person", "organization"]


class RecordIn(_In):
    """A record, as an agency sends it; the service sets ``recorded_at`` to today."""

    id: Text
    subject: Code
    # a type as a scheme declares it (socialcredit.records.DOTTED_NAME): one definition
    type: TypeName
    # strict: a date only as "YYYY-MM-DD" (not a number of seconds, nor a date-time), an
    # amount only as a JSON integer (not "5", nor 5.0)
    occurred_at: Annotated[dt.date, Strict()]
    amount: Annotated[int, Strict(), Field(ge=0, le=2**53)] = 0
    ref: Text | None = None


class RecordBatch(_In):
    """One batch: subjects to register first (optional) and records (up to 100,000)."""

    subjects: Annotated[list[SubjectIn], Field(max_length=MAX_BATCH)] = Field(default_factory=list)
    records: Annotated[list[RecordIn], Field(max_length=MAX_BATCH)]


class IngestOut(_Out):
    """The acknowledgement of a batch, sent once it is durable."""

    appended: int
    repeated: int
    subjects_added: int
    notices: int
    recorded_at: str


class DecisionOut(_Out):
    """May the subject do the action? ``reasons`` are the measures behind the outcome."""

    subject: str
    action: str
    scheme: str
    at: str
    outcome: Literal["allowed", "denied", "granted"]
    allowed: bool
    reasons: list[str]
    contested: bool


class SubscriptionIn(_In):
    """A subscription to the changes of a published list."""

    scheme: Annotated[str, Field(min_length=1, max_length=64)]
    list: Annotated[str, Field(min_length=1, max_length=64)]
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://")]
    purpose: Annotated[str, Field(min_length=1, max_length=200)]


class SubscriptionOut(_Out):
    """A subscription; ``secret`` (to check signatures) only in the answer that made it."""

    id: int
    scheme: str
    list: str
    url: str
    purpose: str
    created_at: str
    secret: str | None = None


class PublicListOut(_Out):
    """A published list the subject is on."""

    scheme: str
    list: str
    kind: str


class PublicRecordOut(_Out):
    """An organization's record as the public sees it."""

    type: str
    occurred_at: str
    amount: int
    scheme: str
    contested: bool


class PublicOut(_Out):
    """The public lookup's answer: allow-listed fields only."""

    code: str
    published: bool
    kind: str | None
    at: str
    lists: list[PublicListOut]
    records: list[PublicRecordOut]


class SignInIn(_In):
    """A credential of the identity provider: by default a one-time sign-in token."""

    token: Annotated[str, Field(min_length=1, max_length=200)]


class SessionOut(_Out):
    """A subject's session: send ``token`` as ``Authorization: Bearer``."""

    token: str
    subject: str
    expires_at: str


class OwnRecordOut(_Out):
    """One of the subject's records."""

    id: str
    type: str
    occurred_at: str
    recorded_at: str
    amount: int
    ref: str | None
    agency: str | None
    contested: bool
    appeal_until: str


class SchemeStateOut(_Out):
    """The subject's state under a scheme, with the whole explanation."""

    scheme: str
    at: str
    score: int
    grade: str
    lists: list[str]
    denied: list[str]
    granted: list[str]
    contested: list[str]
    explanation: dict[str, Any]


class NoticeOut(_Out):
    """A notice to the subject."""

    id: int
    kind: str
    record: str
    scheme: str
    created_at: str
    effective_on: str
    body: dict[str, Any]


class AccessEntryOut(_Out):
    """Who read the subject's record, when, and for what declared purpose."""

    at: str
    actor: str
    role: str
    purpose: str
    what: str


class AppealIn(_In):
    """Contest a record of one's own."""

    record: Text
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class UpholdIn(_In):
    """Uphold an appeal (the reason is optional)."""

    reason: Annotated[str, Field(max_length=2000)] = ""


class RejectIn(_In):
    """Reject an appeal: the reason is required and is sent to the subject."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class AppealOut(_Out):
    """An appeal and its decision, if any."""

    id: int
    subject: str
    record: str
    reason: str
    filed_on: str
    filed_at: str
    status: Literal["open", "upheld", "rejected", "lapsed"]
    decision_reason: str | None
    reviewer: str | None
    decided_at: str | None
    void_record: str | None
    review_by: str


class FindingOut(_Out):
    """A finding of the rights audit."""

    severity: str
    code: str
    where: str
    line: int
    message: str


class HealthOut(_Out):
    """A server ready to answer: its database reachable, and its schemes those in force
    there (else 503, with the error's code: ``schemes_outdated`` for the schemes)."""

    status: str = Field(description="Always ok (a server that is not answers 503).")
    schemes: dict[str, str] = Field(description="The version of each scheme it runs, by id.")
    ledger_mark: int = Field(description="The last entry of the ledger's log of writes.")


class SchemeVersionOut(_Out):
    """A version of a scheme the service has run."""

    version: str
    first_run: str = Field(
        description="When the service began to run it, after another version or none "
        "(UTC, ISO 8601)."
    )
    existing_records: str = Field(
        description="How it was taken: notify (compared with the version run before it, "
        "and treating the records already there no worse than that one's notices stated), "
        "count (not compared, by the existing_records setting), unchecked (no earlier "
        "version kept to compare it with), or retired (the scheme was retired then: its "
        "version is 'retired', with no text; socialcredit db retire)."
    )


class SchemeOut(_Out):
    """An active scheme version and its audit."""

    scheme: str
    title: str
    version: str
    source: str
    subjects: list[str]
    notice_days: int
    appeal_days: int
    in_force: str | None = Field(
        description="The day the service first ran the scheme, from which the adverse "
        "records already in the ledger then count (their notice period starts on it); null: "
        "every record counts from its own recorded_at (docs/service.md)."
    )
    versions: list[SchemeVersionOut] = Field(
        description="The versions of the scheme the service has run, an entry each time it "
        "began to run one other than the one it ran last; their texts at "
        "/v1/schemes/{scheme}/versions/{version}."
    )
    findings: list[FindingOut]


class VerifyOut(_Out):
    """The result of verifying the ledger's hash chain."""

    ok: bool
    entries_checked: int
    first_bad: int | None
    reason: str
    key: str | None
    head: str


def answer(view: Any) -> Response:
    """A use case's answer (a dataclass whose fields are exactly those of the route's
    response model) as JSON, without validating it again: for the hot paths (decisions,
    the public lookup), where the model only documents the answer."""
    body = json.dumps(dataclasses.asdict(view), ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode(), media_type="application/json")
