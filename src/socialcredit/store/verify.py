"""Walking a ledger's hash chain to find the first bad entry, for any backend.

A store reads its entries in sequence order, in chunks, as :class:`Entries` (the
payloads built by :mod:`socialcredit.store.chain` from the stored fields, and the stored
hashes and links), and feeds them to a :class:`ChainWalk`, which names the first entry
that fails and why:

* *gap in the sequence* -- an entry number is missing (the entry was deleted);
* *broken link* -- an entry's link does not match the hash the previous entry has now (the
  previous entry was rewritten, hash and all);
* *content hash mismatch* -- an entry's fields do not match its hash (they were changed);
* a value of the wrong type -- a field or hash stored as something it never is (text
  where a number belongs, a hash that is not 32 bytes): it was changed;
* a batch head that does not match -- the chain was recomputed from some entry on;
* an entry past the log -- every write logs its batch in the transaction that appends
  its entries, so an entry after the last one logged was written behind the ledger's back;
* a cut-off end -- the log of batches records more entries than there are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from socialcredit.ids import mask
from socialcredit.store.base import VerifyReport
from socialcredit.store.chain import GENESIS, chain, link_of, links

__all__ = ["ChainWalk", "Entries"]


@dataclass(frozen=True)
class Entries:
    """Consecutive entries as stored, in sequence order.

    ``payloads`` are rebuilt from the stored fields (None when a field refers to a subject,
    type or record that does not exist); ``keys`` are record ids or subject codes and
    ``kinds`` ``"record"`` or ``"subject"``. ``faults`` maps the place (in these lists) of
    each entry with a stored value of the wrong type to what is wrong, in general
    (``"value of the wrong type"``) and in a phrase that follows the entry's name (``"has
    amount stored as text 'abc', not as an integer"``); their other fields are stand-ins.
    """

    seq: list[int]
    payloads: list[bytes | None]
    keys: list[str]
    kinds: list[str]
    hashes: list[bytes]
    links: list[int]
    faults: dict[int, tuple[str, str]] = field(default_factory=dict)


class ChainWalk:
    """Follow a chain from its start, chunk by chunk, to its first bad entry.

    ``heads`` maps the last entry of each logged batch to the hash the log recorded; the
    highest is the last entry logged.
    """

    def __init__(self, heads: dict[int, bytes]) -> None:
        self.heads = heads
        self.logged_last = max(heads, default=0)
        self.previous = GENESIS
        self.checked = 0

    def check(self, entries: Entries) -> VerifyReport | None:
        """Follow the chain through these entries; report the first that fails, if any."""
        if self._sound(entries):
            return None
        sha256 = hashlib.sha256
        for k, seq in enumerate(entries.seq):
            expected = self.checked + 1
            key, kind = entries.keys[k], entries.kinds[k]
            shown = mask(key, "person") if kind == "subject" and key else key
            name = f"entry {seq} ({kind} {shown!r})"
            if seq != expected:
                if seq > expected:
                    return self._bad(
                        expected,
                        None,
                        (
                            f"gap in the sequence: entry {expected} is missing (the entries go "
                            f"from {expected - 1} to {seq}): it was deleted"
                        ),
                    )
                return self._bad(seq, key, f"sequence number {seq} is used twice")
            fault = entries.faults.get(k)
            if fault is not None:
                what, detail = fault
                return self._bad(
                    seq, key, f"{what}: {name} {detail}; it was changed after it was appended"
                )
            if entries.links[k] != link_of(self.previous):
                return self._bad(
                    seq,
                    key,
                    (
                        f"broken link: {name} is not chained to the hash entry {seq - 1} has "
                        f"now; entry {seq - 1} was rewritten, or the link of entry {seq} changed"
                    ),
                )
            payload = entries.payloads[k]
            if payload is None:
                return self._bad(
                    seq,
                    key,
                    (
                        f"content hash mismatch: {name} refers to a subject, type or record "
                        "that does not exist; its fields were changed"
                    ),
                )
            digest = sha256(self.previous + payload).digest()
            if digest != entries.hashes[k]:
                return self._bad(
                    seq,
                    key,
                    (
                        f"content hash mismatch: the fields of {name} do not match its hash; "
                        "they were changed after it was appended"
                    ),
                )
            head = self.heads.get(seq)
            if head is not None and bytes(head) != digest:
                return self._bad(
                    seq,
                    key,
                    (
                        f"{name} does not match the hash the log of batches recorded for it: "
                        "the chain up to here was recomputed after a change"
                    ),
                )
            if seq > self.logged_last:
                return self._bad(seq, key, self._past_log(name))
            self.previous = digest
            self.checked += 1
        return None

    def finish(self, logged_last: int) -> VerifyReport:
        """The report once every entry passed; ``logged_last`` is the log's last entry."""
        if self.checked < logged_last:
            return self._bad(
                self.checked + 1,
                None,
                (
                    f"entries {self.checked + 1} to {logged_last} are missing: the ledger ends at "
                    f"entry {self.checked}, but its log of batches records entries up to "
                    f"{logged_last} (the end of the ledger was cut off)"
                ),
            )
        return VerifyReport(True, self.checked, head=self.previous.hex())

    def _sound(self, entries: Entries) -> bool:
        """The fast path: all entries check out (and the walk moves past them), or False."""
        n = len(entries.seq)
        first = self.checked + 1
        if n == 0 or entries.seq != list(range(first, first + n)):
            return n == 0
        if entries.faults or first + n - 1 > self.logged_last:
            return False
        payloads = [payload for payload in entries.payloads if payload is not None]
        if len(payloads) < n:
            return False
        hashes = chain(self.previous, payloads)
        if hashes != entries.hashes or links(self.previous, hashes) != entries.links:
            return False
        for seq, head in self.heads.items():
            if first <= seq < first + n and bytes(head) != hashes[seq - first]:
                return False
        self.previous = hashes[-1]
        self.checked += n
        return True

    def _past_log(self, name: str) -> str:
        logged = (
            f"the last entry it records is {self.logged_last}"
            if self.logged_last
            else "it records no entry"
        )
        return (
            f"entry past the log of batches: {name} comes after the last write the log "
            f"records ({logged}); every write logs its batch as it appends, so it was "
            "written behind the ledger's back, or the log of its write was removed"
        )

    def _bad(self, seq: int, key: str | None, reason: str) -> VerifyReport:
        return VerifyReport(False, self.checked, seq, reason, key, self.previous.hex())
