"""The hash chain of a ledger: how each entry commits to its content and to the one before.

Every subject registration and every record is an *entry*, numbered 1, 2, 3, ... in one
sequence. The hash of entry ``n`` is::

    hash(n) = SHA-256( hash(n-1) || payload(n) )        hash(0) = 32 zero bytes

where ``||`` joins bytes, ``hash(n-1)`` is the raw 32-byte digest, and ``payload(n)`` is a
sequence of *netstrings*: ``<length>:<bytes>,`` with the length in ASCII decimal and the
bytes UTF-8. A missing value (only ``ref`` can be missing) is the single byte ``~``, which
no netstring starts with. The payload fields, in this order:

* a record: ``n``, ``record``, ``id``, ``subject``, ``type``, ``occurred_at``,
  ``recorded_at``, ``amount``, ``ref``;
* a subject: ``n``, ``subject``, ``code``, ``kind``;

with numbers in decimal and dates as ``YYYY-MM-DD``. So record 7 ``r1`` about
``91110000802100433B``, ``traffic.red_light`` on 2024-03-01, recorded the same day, amount
0, no ref, has the payload::

    1:7,6:record,2:r1,18:91110000802100433B,17:traffic.red_light,10:2024-03-01,10:2024-03-01,1:0,~

The encoding is unambiguous (each netstring says where it ends, the field order is
fixed, and the entry kind comes first), so no two different entries share a payload.

Payloads are built column-wise with ``pyarrow.compute``; only the SHA-256 calls run in a
Python loop, one per entry. A store also keeps, with each entry, a *link*: the first
8 bytes of the previous entry's hash as a signed integer (:func:`link_of`). The chain's
security rests on the full hashes; the link lets ``verify`` tell a rewritten entry (the
next entry's link no longer matches) from an entry whose fields were changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import LedgerError

__all__ = [
    "GENESIS",
    "HASH_ENCODING",
    "chain",
    "check_hash_encoding",
    "link_of",
    "links",
    "record_payloads",
    "subject_payloads",
]

GENESIS = bytes(32)
"""The hash before the first entry."""

HASH_ENCODING = "sha256-netstrings-1"
"""The encoding of the entries' hashes, as a ledger's ``meta`` names it."""

_MISSING = "~"


def link_of(digest: bytes) -> int:
    """The link stored with the entry after ``digest``: its first 8 bytes, signed."""
    return int.from_bytes(digest[:8], "big", signed=True)


def links(previous: bytes, hashes: Sequence[bytes]) -> list[int]:
    """The links of consecutive entries with these hashes, after ``previous``."""
    if not hashes:
        return []
    joined = np.frombuffer(previous + b"".join(hashes[:-1]), dtype=">i8")
    out: list[int] = joined[::4].tolist()
    return out


def _netstring_parts(values: pa.Array | pa.ChunkedArray) -> list[object]:
    """The pieces of a column's netstrings, to be joined with the others in one call."""
    return [pc.cast(pc.binary_length(values), pa.string()), ":", values, ","]


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.cast(values, pa.string())


def _joined(parts: list[object]) -> list[bytes]:
    payloads = pc.binary_join_element_wise(*parts, "")
    out: list[bytes] = pc.cast(payloads, pa.binary()).to_pylist()
    return out


def record_payloads(seqs: npt.NDArray[np.int64], records: pa.Table) -> list[bytes]:
    """The payloads of records (a canonical table) that are entries ``seqs``."""
    ref = records.column("ref")
    ref_part = pc.fill_null(pc.binary_join_element_wise(*_netstring_parts(ref), ""), _MISSING)
    return _joined(
        [
            *_netstring_parts(_text(pa.array(seqs, pa.int64()))),
            "6:record,",
            *_netstring_parts(records.column("id")),
            *_netstring_parts(records.column("subject")),
            *_netstring_parts(records.column("type")),
            "10:",
            _text(records.column("occurred_at")),
            ",",  # dates are 10 characters
            "10:",
            _text(records.column("recorded_at")),
            ",",
            *_netstring_parts(_text(records.column("amount"))),
            ref_part,
        ]
    )


def subject_payloads(seqs: npt.NDArray[np.int64], subjects: pa.Table) -> list[bytes]:
    """The payloads of subjects (``code``, ``kind``) that are entries ``seqs``."""
    return _joined(
        [
            *_netstring_parts(_text(pa.array(seqs, pa.int64()))),
            "7:subject,",
            *_netstring_parts(subjects.column("code")),
            *_netstring_parts(subjects.column("kind")),
        ]
    )


def chain(previous: bytes, payloads: Sequence[bytes]) -> list[bytes]:
    """The hashes of consecutive entries with these payloads, after ``previous``."""
    sha256 = hashlib.sha256
    out: list[bytes] = []
    append = out.append
    digest = previous
    for payload in payloads:
        digest = sha256(digest + payload).digest()
        append(digest)
    return out


def next_entry(fetch_one: Callable[[str], Sequence[Any] | None]) -> tuple[int, bytes]:
    """The next sequence number of a ledger and the hash of its last entry.

    ``fetch_one`` runs one SQL query and returns its first row (or None); the query is
    the same on every store: the last entry is the one of highest ``seq`` among subjects
    and records.
    """
    best = (0, GENESIS)
    for table in ("records", "subjects"):
        row = fetch_one(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")
        if row is not None and row[0] > best[0]:
            best = (int(row[0]), bytes(row[1]))
    return best[0] + 1, best[1]


def check_hash_encoding(meta: dict[str, str], where: object) -> None:
    """Refuse (:class:`LedgerError`) the ledger at ``where`` when its ``meta`` names a hash
    encoding other than :data:`HASH_ENCODING`, or none: its chain could not be checked,
    nor extended."""
    encoding = meta.get("hash_encoding")
    if encoding != HASH_ENCODING:
        found = "no hash encoding" if encoding is None else f"hash encoding {encoding!r}"
        raise LedgerError(
            f"{where} records {found}; this version of socialcredit knows {HASH_ENCODING!r} "
            "only, so it cannot check or extend that ledger's hash chain"
        )
