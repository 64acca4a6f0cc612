"""Agencies send records: ``POST /v1/records``, as JSON or as columns (CSV, Arrow)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from socialcredit.api.deps import Agency, Svc
from socialcredit.api.errors import responses
from socialcredit.api.models import IngestOut, RecordBatch, answer
from socialcredit.service.errors import InvalidRequest
from socialcredit.service.ingest import RECORDS_IN, NewRecord, NewSubject, ingest, ingest_table

router = APIRouter(prefix="/v1", tags=["agencies"])

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
_COLUMNS = {
    "type": "object",
    "description": "The records as columns: id, subject, type, occurred_at, and optionally "
    "amount and ref (docs/scheme-language.md section 1; recorded_at is the service's).",
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/RecordBatch"}},
            CSV: {"schema": {"type": "string", **_COLUMNS}},
            ARROW: {"schema": {"type": "string", "format": "binary", **_COLUMNS}},
        },
    }
}


def _columns(kind: str, body: bytes) -> pa.Table:
    """A CSV or Arrow IPC stream body as a table of the record columns."""
    try:
        if kind == CSV:
            table = pacsv.read_csv(
                io.BytesIO(body),
                convert_options=pacsv.ConvertOptions(
                    column_types={f.name: f.type for f in RECORDS_IN},
                    strings_can_be_null=False,
                    null_values=[""],
                ),
            )
        else:
            table = ipc.open_stream(body).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidRequest(f"cannot read the {kind} body: {exc}") from None
    twice = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if twice:
        raise InvalidRequest(f"a column is named twice: {', '.join(twice)}")
    names = set(table.column_names)
    extra, missing = names - set(RECORDS_IN.names), {"id", "subject", "type", "occurred_at"} - names
    if extra or missing:
        raise InvalidRequest(
            f"the columns must be {', '.join(RECORDS_IN.names)} (amount and ref optional): "
            + "; ".join(
                ([f"unknown: {', '.join(sorted(extra))}"] if extra else [])
                + ([f"missing: {', '.join(sorted(missing))}"] if missing else [])
            )
        )
    n = table.num_rows
    if "amount" not in names:
        table = table.append_column("amount", pa.array([0] * n, pa.int64()))
    else:  # an empty amount is 0, as a missing one
        at = table.schema.get_field_index("amount")
        table = table.set_column(at, "amount", pc.fill_null(table.column(at), 0))
    if "ref" not in names:
        table = table.append_column("ref", pa.nulls(n, pa.string()))
    elif kind == CSV:  # an empty ref cell is no ref (the other text cells must be filled)
        at = table.schema.get_field_index("ref")
        ref = table.column(at)
        table = table.set_column(
            at, "ref", pc.if_else(pc.equal(ref, ""), pa.scalar(None, pa.string()), ref)
        )
    try:
        return table.select(RECORDS_IN.names).cast(RECORDS_IN)
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidRequest(f"the columns cannot be read as records: {exc}") from None


@router.post(
    "/records",
    response_model=IngestOut,
    responses=responses(401, 403, 409, 413, 422, 503),
    openapi_extra=_BODY,
)
async def post_records(request: Request, svc: Svc, agency: Agency) -> object:
    """Append a batch of records (and register its subjects), all or nothing.

    The body is JSON (``{"subjects": [...], "records": [...]}``), or the records alone as
    columns: ``text/csv`` with a header line, or an Arrow IPC stream
    (``application/vnd.apache.arrow.stream``), read without an object per record.
    Idempotent by record id: a record sent again is acknowledged as ``repeated``. A type
    outside the agency's scope refuses the whole batch (403). The answer comes once the
    batch is durable in the ledger.
    """
    kind = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    body = await request.body()
    if kind in (CSV, ARROW):
        table = await run_in_threadpool(_columns, kind, body)
        return answer(await run_in_threadpool(ingest_table, svc, agency, table))
    if kind not in (JSON, ""):
        raise InvalidRequest(f"a batch is sent as {JSON}, {CSV} or {ARROW}, not as {kind}")
    try:
        batch = RecordBatch.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    done = await run_in_threadpool(
        ingest,
        svc,
        agency,
        [NewRecord(r.id, r.subject, r.type, r.occurred_at, r.amount, r.ref) for r in batch.records],
        [NewSubject(s.code, s.kind) for s in batch.subjects],
    )
    return answer(done)
