"""The canonical Arrow schemas of the network inputs: relations and peer ratings.

The extension of the scheme language in docs/networks.md reads two more tables besides
subjects and records. Like :mod:`socialcredit.records`, these schemas sit under every
layer: the file readers produce them, the engine consumes them, the simulator writes them.
"""

from __future__ import annotations

import pyarrow as pa

RELATION_KINDS = ("household", "friend", "employer", "legal_representative")
"""What a relations row may say: ``other`` is the ``subject``'s household member, friend,
employer or legal representative."""

RELATIONS_SCHEMA = pa.schema(
    [
        pa.field("subject", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),
        pa.field("other", pa.string(), nullable=False),
        pa.field("from", pa.date32(), nullable=True),
        pa.field("to", pa.date32(), nullable=True),
    ]
)

RATINGS_SCHEMA = pa.schema(
    [
        pa.field("rater", pa.string(), nullable=False),
        pa.field("ratee", pa.string(), nullable=False),
        pa.field("stars", pa.int64(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)

RELATION_FIELDS = tuple(RELATIONS_SCHEMA.names)
RATING_FIELDS = tuple(RATINGS_SCHEMA.names)


def empty_relations() -> pa.Table:
    """An empty relations table of the canonical schema."""
    return RELATIONS_SCHEMA.empty_table()


def empty_ratings() -> pa.Table:
    """An empty ratings table of the canonical schema."""
    return RATINGS_SCHEMA.empty_table()
