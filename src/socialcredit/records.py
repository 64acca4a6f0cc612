"""The canonical Arrow schemas of subjects and records (SCHEME.md section 1).

Every layer speaks these: the file readers and the ledger produce them, the engine
consumes them, the simulator writes them.
"""

from __future__ import annotations

import pyarrow as pa

SUBJECT_KINDS = ("person", "organization")

DOTTED_NAME = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
"""What a record type and an action are (SCHEME.md sections 1 and 2): parts of letters,
digits, ``_`` and ``-``, joined by dots."""
MAX_NAME = 128
"""The longest record type or action, in characters."""

SUBJECTS_SCHEMA = pa.schema(
    [
        pa.field("code", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
    ]
)

RECORDS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("occurred_at", pa.date32(), nullable=False),
        pa.field("recorded_at", pa.date32(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("ref", pa.string(), nullable=True),
    ]
)

RECORD_FIELDS = tuple(RECORDS_SCHEMA.names)
SUBJECT_FIELDS = tuple(SUBJECTS_SCHEMA.names)


def empty_records() -> pa.Table:
    """An empty records table of the canonical schema."""
    return RECORDS_SCHEMA.empty_table()


def empty_subjects() -> pa.Table:
    """An empty subjects table of the canonical schema."""
    return SUBJECTS_SCHEMA.empty_table()
