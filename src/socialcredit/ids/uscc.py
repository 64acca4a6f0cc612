"""Unified Social Credit Code (统一社会信用代码), GB 32100-2015.

The code every legal person and other organization in mainland China carries. It has 18
characters from a 31-character alphabet, the digits and the capital letters except I, O,
Z, S and V (:data:`ALPHABET`):

=========  ===========================================================================
position   meaning
=========  ===========================================================================
1          registering authority (1 government staffing, 5 civil affairs, 9 market
           regulation, and letters such as A, N, Y for later authorities)
2          entity type within that authority (91 = enterprise, 92 = individual business)
3-8        region of the registering authority, a GB/T 2260 code: six digits
9-17       subject identifier: a GB 11714 organization code, eight body characters
           (position 9-16) and the organization code's own check character
           (position 17): a digit or X
18         check character over positions 1-17 (GB/T 17710)
=========  ===========================================================================

Check character (position 18): each of the 17 characters has a value, its index in
:data:`ALPHABET` (0-30); weights are ``3**i mod 31`` for ``i = 0..16``; the check character
is ``ALPHABET[(31 - sum(value * weight) % 31) % 31]``.

Organization code check character (position 17), GB 11714-1997: the eight body characters
take the values 0-9 for digits and 10-35 for the letters A-Z (the full Latin alphabet); the
weights are 3, 7, 9, 10, 5, 8, 4, 2; ``c = 11 - sum % 11``, written ``X`` when 10 and ``0``
when 11. GB 32100 says positions 9-17 are coded "according to GB 11714", so a correct code
satisfies this check as well, and :func:`validate` enforces it. Every real code in the
python-stdnum test suite does.

Differences from python-stdnum's ``stdnum.cn.uscc`` (which uses the same position-18
algorithm, so the two agree on every code whose first eight characters are digits):

* stdnum requires positions 1-8 to be digits and so rejects valid codes whose registering
  authority is a letter (``A``, ``N``, ``Y``...); this module accepts them and requires
  digits only at positions 3-8, as the standard does;
* stdnum does not check the organization code's check character (position 17); this
  module does;
* stdnum also strips hyphens; this module strips only whitespace.

Neither checks the region (positions 3-8) against the GB/T 2260 table.

Known real exceptions: some codes issued in early pilot areas of Fujian in 2015 (for
example ``91350211M0000XUF46``) do not satisfy the position-18 check. They are rejected
here; accept such codes as opaque codes (:func:`socialcredit.ids.validate_code` with
``opaque=True``).

Synthetic codes: a code whose region (positions 3-8) begins with
:data:`SYNTHETIC_REGION_PREFIX` (``"00"``) is synthetic. GB/T 2260 assigns no code that
begins with 0 (province codes run from 11 to 82, and the national level is ``100000``), so
such a code can never be a real organization's. :func:`generate` issues only synthetic
codes unless given other regions; the digit-led ones it produces pass
``stdnum.cn.uscc.validate`` too, since stdnum does not look regions up.

An organization's code is public: it is never masked (see :mod:`socialcredit.ids.mask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from socialcredit.errors import InvalidCode
from socialcredit.ids.draw import digits, region_array

__all__ = [
    "ALPHABET",
    "GENERATED_PREFIXES",
    "LENGTH",
    "SYNTHETIC_REGION_PREFIX",
    "calc_check_char",
    "calc_org_check_char",
    "generate",
    "is_synthetic",
    "is_valid",
    "validate",
]

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters a USCC may contain, in value order (no I, O, Z, S, V)."""

LENGTH = 18
"""Number of characters in a USCC."""

SYNTHETIC_REGION_PREFIX = "00"
"""Region codes (positions 3-8) beginning with this are synthetic: GB/T 2260 assigns none."""

GENERATED_PREFIXES: tuple[str, ...] = ("91", "92", "93", "12", "51", "52", "53", "N2", "Y1")
"""Registering authority and entity type (positions 1-2) that :func:`generate` draws from.

Mostly digit-led (91 enterprise, 92 individual business, 93 farmers' cooperative, 12 public
institution, 51-53 social organizations), plus two letter-led ones, so that code paths for
letter-led codes are exercised by simulated data as well.
"""

_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_REGION = slice(2, 8)
_ALLOWED = "0-9 and A-Z except I, O, Z, S, V"

# Lookup tables for the vectorized generator.
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_GB11714_VALUE = np.array([int(ch, 36) for ch in ALPHABET], dtype=np.int64)
# Indexed by 11 - total % 11 (1..11): 1-9 are digits, 10 is X, 11 is 0; index 0 is unused.
_ORG_CHECK_INDEX = np.array([_VALUE[ch] for ch in "0123456789X0"], dtype=np.int64)
_BODY_SPACE = 31**8


def _normalize(code: str) -> str:
    return "".join(code.split()).translate(_ASCII_UPPER)


def calc_org_check_char(body: str) -> str:
    """Return the GB 11714 check character for an eight-character organization code body.

    ``body`` is positions 9-16 of a USCC (digits and capital letters). The result is a
    digit or ``X`` and belongs at position 17. Raises :class:`InvalidCode` when ``body`` is
    not eight digits or capital letters.

    >>> calc_org_check_char("60003734")
    '1'
    """
    if len(body) != 8 or not all(ch.isascii() and ch.isalnum() and not ch.islower() for ch in body):
        raise InvalidCode(f"organization code body {body!r} must be 8 digits or capital letters")
    total = sum(int(ch, 36) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def calc_check_char(first17: str) -> str:
    """Return the check character (position 18) for the first 17 characters of a USCC.

    Uses the GB/T 17710 scheme of GB 32100: values are indices in :data:`ALPHABET`, weights
    ``3**i mod 31``, check ``ALPHABET[(31 - total % 31) % 31]``. Only position 18 is
    computed; the organization code check (position 17) is :func:`calc_org_check_char`.
    Raises :class:`InvalidCode` unless ``first17`` is exactly 17 characters of
    :data:`ALPHABET`.

    >>> calc_check_char("91110000600037341")
    'L'
    """
    if len(first17) != 17 or any(ch not in _VALUE for ch in first17):
        raise InvalidCode(f"{first17!r} must be exactly 17 characters from {_ALLOWED}")
    total = sum(_VALUE[ch] * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """Check a USCC and return it normalized, or raise :class:`InvalidCode`.

    Normalizing removes all whitespace and upper-cases ASCII letters. The code must then
    have 18 characters, all from :data:`ALPHABET`; positions 3-8 (region) must be digits;
    position 17 must be the GB 11714 check character of positions 9-16; position 18 must
    be the check character of positions 1-17. The region is not looked up in the GB/T 2260
    table, and the registering authority and entity type (positions 1-2) are not checked
    against a list, since new ones are assigned over time.

    The message of the error says what is wrong, with 1-based positions in the normalized
    code: the length, each position with a character outside the alphabet, a letter in the
    region, or ``check character is X, expected Y``.

    >>> validate("9111 0000 6000 3734 1l")
    '91110000600037341L'
    """
    s = _normalize(code)
    if not s:
        raise InvalidCode("USCC is empty; expected 18 characters")
    if len(s) != LENGTH:
        raise InvalidCode(f"USCC {s!r} has {len(s)} characters, expected {LENGTH}")
    bad = [f"position {i} has {ch!r}" for i, ch in enumerate(s, 1) if ch not in _VALUE]
    if bad:
        raise InvalidCode(f"USCC {s!r}: {', '.join(bad)}; allowed are {_ALLOWED}")
    letters = [f"position {i} has {ch!r}" for i, ch in enumerate(s[_REGION], 3) if not ch.isdigit()]
    if letters:
        raise InvalidCode(
            f"USCC {s!r}: positions 3-8 are the region code (GB/T 2260) and must be digits; "
            + ", ".join(letters)
        )
    problems = []
    org_expected = calc_org_check_char(s[8:16])
    if s[16] != org_expected:
        problems.append(
            f"organization code check character (position 17) is {s[16]}, expected {org_expected}"
        )
    expected = calc_check_char(s[:17])
    if s[17] != expected:
        problems.append(f"check character is {s[17]}, expected {expected}")
    if problems:
        raise InvalidCode(f"USCC {s!r}: " + "; ".join(problems))
    return s


def is_valid(code: str) -> bool:
    """Return whether :func:`validate` accepts ``code``."""
    try:
        validate(code)
    except InvalidCode:
        return False
    return True


def is_synthetic(code: str) -> bool:
    """Return whether ``code`` is a valid USCC in a synthetic region.

    Synthetic means the region (positions 3-8) begins with :data:`SYNTHETIC_REGION_PREFIX`,
    which GB/T 2260 never assigns, so no real organization has the code. An invalid code
    is not synthetic.
    """
    if not is_valid(code):
        return False
    return _normalize(code)[_REGION].startswith(SYNTHETIC_REGION_PREFIX)


def generate(
    rng: np.random.Generator, n: int, *, regions: Sequence[str] | None = None
) -> list[str]:
    """Return ``n`` distinct valid USCCs, drawn with ``rng``; synthetic unless told otherwise.

    Positions 1-2 are drawn from :data:`GENERATED_PREFIXES`, the region from ``regions``
    (default: all 10,000 synthetic regions ``000000``-``009999``), and the eight body
    characters of the organization code uniformly from :data:`ALPHABET`; both check
    characters are then computed. Draws are uniform over all such codes, without
    repetition, and the same generator state gives the same codes.

    Passing real GB/T 2260 ``regions`` makes codes that may belong to real organizations;
    do that only to test other validators. Raises :class:`ValueError` for a negative ``n``
    or malformed ``regions``. Vectorized: 100,000 codes take a few tens of milliseconds.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    region_values = region_array(regions)
    prefixes = np.array([[_VALUE[c] for c in p] for p in GENERATED_PREFIXES], dtype=np.int64)
    capacity = len(prefixes) * len(region_values) * _BODY_SPACE
    idx = rng.choice(capacity, size=n, replace=False).astype(np.int64)
    body_index, rest = idx % _BODY_SPACE, idx // _BODY_SPACE
    region = region_values[rest % len(region_values)]
    prefix = prefixes[rest // len(region_values)]

    body = digits(body_index, 8, 31)  # alphabet indices
    org_total = (_GB11714_VALUE[body] * np.array(_ORG_WEIGHTS, dtype=np.int64)).sum(axis=1)
    org_check = _ORG_CHECK_INDEX[11 - org_total % 11]
    values = np.concatenate([prefix, digits(region, 6, 10), body, org_check[:, None]], axis=1)
    check = (31 - (values @ np.array(_WEIGHTS, dtype=np.int64)) % 31) % 31
    full = np.concatenate([values, check[:, None]], axis=1)
    text = np.ascontiguousarray(_ALPHABET_BYTES[full]).view(f"S{LENGTH}").ravel()
    out: list[str] = text.astype(f"U{LENGTH}").tolist()
    return out
