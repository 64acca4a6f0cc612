"""Subject codes: validation, generation and masking.

Two kinds of subject carry codes:

* ``"person"``: the resident identity number, GB 11643-1999 (:mod:`socialcredit.ids.ric`);
* ``"organization"``: the Unified Social Credit Code, GB 32100-2015
  (:mod:`socialcredit.ids.uscc`).

Operators outside China may use their own codes instead: :func:`validate_code` with
``opaque=True`` accepts any short printable code unchanged.

Synthetic codes: simulated subjects get real-format codes in regions that are never
assigned, so they cannot collide with real people or organizations. In both formats a
region code (GB/T 2260, six digits) beginning with ``"00"`` is synthetic; ``generate`` in
each module issues only such codes by default, and ``is_synthetic`` recognizes them.

Everything here is pure: no I/O and no module state that changes.
"""

from __future__ import annotations

import datetime as dt

from socialcredit.errors import InvalidCode
from socialcredit.ids import ric, uscc
from socialcredit.ids.mask import KINDS, mask, mask_array

__all__ = [
    "KINDS",
    "OPAQUE_MAX_LENGTH",
    "mask",
    "mask_array",
    "mask_unknown",
    "normal_code",
    "ric",
    "uscc",
    "validate_code",
]

OPAQUE_MAX_LENGTH = 64
"""Longest opaque code :func:`validate_code` accepts, in characters."""


def mask_unknown(code: str) -> str:
    """A code whose kind is not known, as it may be shown to anyone: whole when only an
    organization's code has its shape (a valid USCC that is no valid resident number),
    else masked as a person's."""
    if uscc.is_valid(code) and not ric.is_valid(code):
        return code
    return mask(code, "person")


def _validate_opaque(code: str, kind: str) -> str:
    if not code:
        raise InvalidCode(f"{kind} code is empty")
    if len(code) > OPAQUE_MAX_LENGTH:
        raise InvalidCode(
            f"{kind} code has {len(code)} characters, at most {OPAQUE_MAX_LENGTH} allowed"
        )
    bad = [
        f"position {i} (U+{ord(ch):04X})"
        for i, ch in enumerate(code, 1)
        if ch.isspace() or not ch.isprintable()
    ]
    if bad:
        raise InvalidCode(
            f"{kind} code has whitespace or unprintable characters at {', '.join(bad)}"
        )
    return code


def validate_code(
    code: str, kind: str, *, opaque: bool = False, today: dt.date | None = None
) -> str:
    """Check a subject's code and return it in normal form, or raise :class:`InvalidCode`.

    ``kind`` is ``"person"`` (a resident identity number, :func:`ric.validate`, checked
    against ``today``) or ``"organization"`` (a USCC, :func:`uscc.validate`); the result
    is normalized (whitespace removed, letters upper-cased).

    With ``opaque=True`` the code is not interpreted: any non-empty string of at most
    :data:`OPAQUE_MAX_LENGTH` printable characters without whitespace is accepted and
    returned unchanged (for operators outside China, and for the few real codes that do
    not follow their standard). Error messages never repeat a person's code.

    >>> validate_code("91110000600037341l", "organization")
    '91110000600037341L'
    >>> validate_code("ACME-0001", "organization", opaque=True)
    'ACME-0001'
    """
    if kind not in KINDS:
        raise InvalidCode(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if opaque:
        return _validate_opaque(code, kind)
    if kind == "person":
        return ric.validate(code, today=today)
    try:
        return uscc.validate(code)
    except InvalidCode as exc:
        try:
            number = ric.validate(code)
        except InvalidCode:
            raise exc from None
        # a person's number given as an organization's: not repeated in the message,
        # which shows the code normalized (as typed, it may have spaces or a small x)
        raise InvalidCode(str(exc).replace(number, mask(number, "person"))) from None


def normal_code(code: str) -> str:
    """A code as typed by someone, in the normal form the registry stores.

    A valid resident number or USCC comes back normalized (whitespace removed, upper
    case); anything else (an opaque code, or an invalid one) with only its ends stripped.
    """
    for kind in KINDS:
        try:
            return validate_code(code, kind)
        except InvalidCode:
            continue
    return code.strip()
