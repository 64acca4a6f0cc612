"""Resident identity number (公民身份号码), GB 11643-1999.

The number on a mainland Chinese resident identity card: 18 characters,

=========  ===========================================================================
position   meaning
=========  ===========================================================================
1-6        region of household registration, a GB/T 2260 code
7-14       birth date, ``YYYYMMDD``
15-17      sequence number among people of that region and birth date; odd for men,
           even for women
18         check character, ISO 7064 MOD 11-2: a digit, or ``X`` for ten
=========  ===========================================================================

Check character: with digit ``a_i`` at position ``i`` (1-17) and weight
``w_i = 2**(18 - i) mod 11`` (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), the
check value is ``(1 - sum(a_i * w_i)) mod 11``, written ``X`` when 10. Because 11 is prime
and no weight is 0 mod 11, changing any single character, or swapping two adjacent
different characters, always breaks the check.

The older 15-digit numbers (no century, no check character) are not accepted.

Agreement with python-stdnum 2.2 (``stdnum.cn.ric``): the check character is the same
(``stdnum.cn.ric.calc_check_digit`` and ``stdnum.iso7064.mod_11_2``). stdnum's
``validate`` also looks the region up in its copy of the GB/T 2260 table (by birth year),
so it rejects every synthetic number (see below) and accepts real-region numbers exactly
when this module does, except that stdnum does not reject birth dates in the future.

Synthetic numbers: a number whose region (positions 1-6) begins with
:data:`SYNTHETIC_REGION_PREFIX` (``"00"``) is synthetic. GB/T 2260 province codes run from
11 to 82, so citizens' numbers begin with 1-8; residence permits for residents of Hong
Kong, Macao and Taiwan use 81, 82 and 83; and the foreigners' permanent residence ID card
of 2023, built on this same format, begins with 9. No number ever issued begins with 0, so
a synthetic number cannot be a real person's. :func:`generate` issues synthetic numbers
unless given other regions.

A person's number is personal data: the error messages of :func:`validate` never repeat
it, and it is masked wherever shown to anyone but its subject
(:func:`socialcredit.ids.mask.mask`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from socialcredit.errors import InvalidCode
from socialcredit.ids.draw import digits, region_array

__all__ = [
    "LENGTH",
    "SYNTHETIC_REGION_PREFIX",
    "birth_date",
    "calc_check_char",
    "generate",
    "is_synthetic",
    "is_valid",
    "validate",
]

LENGTH = 18
"""Number of characters in a resident identity number."""

SYNTHETIC_REGION_PREFIX = "00"
"""Regions (positions 1-6) beginning with this are synthetic: no issued number starts so."""

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "0123456789X"
_CHECK_BYTES = np.frombuffer(_CHECK_CHARS.encode("ascii"), dtype=np.uint8)
_SEQUENCES = 1000
_WHAT = "resident identity number"
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _normalize(code: str) -> str:
    return "".join(code.split()).translate(_ASCII_UPPER)


def calc_check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for the first 17 digits.

    The result is ``"0"``-``"9"`` or ``"X"`` (for ten) and belongs at position 18. Raises
    :class:`InvalidCode` unless ``first17`` is exactly 17 ASCII digits.

    >>> calc_check_char("11010519491231002")
    'X'
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise InvalidCode(f"the first 17 characters of a {_WHAT} must be 17 digits")
    total = sum(int(ch) * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[(1 - total) % 11]


def _parse_date(s: str) -> dt.date | None:
    try:
        return dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return None


def validate(code: str, *, today: dt.date | None = None) -> str:
    """Check a resident identity number and return it normalized, or raise InvalidCode.

    Normalizing removes all whitespace and upper-cases ASCII letters (``x`` becomes
    ``X``). The number must then have 18 characters; positions 1-17 must be digits and
    position 18 a digit or ``X``; positions 7-14 must be a real calendar date not after
    ``today`` (default: the system date); and position 18 must be the check character.
    The region (positions 1-6) is not looked up in the GB/T 2260 table.

    The message of :class:`~socialcredit.errors.InvalidCode` says what is wrong (the
    length; each position with a bad character; an impossible or future birth date;
    ``check character is X, expected Y``) with 1-based positions in the normalized number,
    and never repeats the number itself, which is personal data.

    >>> validate("11010519491231002x", today=dt.date(2025, 1, 1))
    '11010519491231002X'
    """
    s = _normalize(code)
    if not s:
        raise InvalidCode(f"{_WHAT} is empty; expected {LENGTH} characters")
    if len(s) != LENGTH:
        hint = (
            " (15-digit numbers from before GB 11643-1999 are not accepted)" if len(s) == 15 else ""
        )
        raise InvalidCode(f"{_WHAT} has {len(s)} characters, expected {LENGTH}{hint}")
    bad = [f"position {i} has {ch!r}" for i, ch in enumerate(s[:17], 1) if ch not in "0123456789"]
    if s[17] not in _CHECK_CHARS:
        bad.append(f"position 18 has {s[17]!r}")
    if bad:
        raise InvalidCode(
            f"{_WHAT}: {', '.join(bad)}; positions 1-17 must be digits, position 18 a digit or X"
        )
    problems = []
    born = _parse_date(s)
    if born is None:
        problems.append(f"birth date {s[6:14]} (positions 7-14) is not a real date (YYYYMMDD)")
    else:
        now = today if today is not None else dt.date.today()
        if born > now:
            problems.append(f"birth date {born.isoformat()} is after today ({now.isoformat()})")
    expected = calc_check_char(s[:17])
    if s[17] != expected:
        problems.append(f"check character is {s[17]}, expected {expected}")
    if problems:
        raise InvalidCode(f"{_WHAT}: " + "; ".join(problems))
    return s


def is_valid(code: str, *, today: dt.date | None = None) -> bool:
    """Return whether :func:`validate` accepts ``code`` (with the same ``today``)."""
    try:
        validate(code, today=today)
    except InvalidCode:
        return False
    return True


def birth_date(code: str, *, today: dt.date | None = None) -> dt.date:
    """Return the birth date (positions 7-14) of a valid resident identity number.

    The number is validated first (:func:`validate`, with the same ``today``), so an
    invalid number raises :class:`InvalidCode`.

    >>> birth_date("11010519491231002X")
    datetime.date(1949, 12, 31)
    """
    s = validate(code, today=today)
    return dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))


def is_synthetic(code: str, *, today: dt.date | None = None) -> bool:
    """Return whether ``code`` is a valid resident identity number in a synthetic region.

    Synthetic means the region (positions 1-6) begins with :data:`SYNTHETIC_REGION_PREFIX`,
    which no issued number does, so the number cannot be a real person's. An invalid
    number (see :func:`validate`, with the same ``today``) is not synthetic.
    """
    if not is_valid(code, today=today):
        return False
    return _normalize(code).startswith(SYNTHETIC_REGION_PREFIX)


def generate(
    rng: np.random.Generator,
    n: int,
    *,
    born_from: dt.date,
    born_to: dt.date,
    regions: Sequence[str] | None = None,
) -> list[str]:
    """Return ``n`` distinct valid resident identity numbers, drawn with ``rng``.

    Birth dates are uniform over ``born_from``..``born_to`` (both included), sequence
    numbers uniform over 000-999 (so men and women about equally), regions uniform over
    ``regions`` (default: all 10,000 synthetic regions ``000000``-``009999``); the check
    character is computed. Draws are uniform over all such numbers, without repetition,
    and the same generator state gives the same numbers.

    Passing real GB/T 2260 ``regions`` makes numbers that may belong to real people; do
    that only to test other validators. Raises :class:`ValueError` for a negative ``n``,
    ``born_from`` after ``born_to``, malformed ``regions``, or ``n`` larger than the number
    of distinct numbers available. Vectorized: 100,000 numbers take a few tens of
    milliseconds.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if born_from > born_to:
        raise ValueError(f"born_from {born_from} is after born_to {born_to}")
    region_values = region_array(regions)
    days = (born_to - born_from).days + 1
    capacity = len(region_values) * days * _SEQUENCES
    if n > capacity:
        raise ValueError(f"only {capacity} distinct numbers exist for these regions and dates")
    idx = rng.choice(capacity, size=n, replace=False).astype(np.int64)
    sequence, rest = idx % _SEQUENCES, idx // _SEQUENCES
    born = np.datetime64(born_from, "D") + rest % days
    region = region_values[rest // days]

    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = born.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (born - month_start).astype(np.int64) + 1
    date_value = year * 10_000 + month * 100 + day
    body = np.concatenate([digits(region, 6), digits(date_value, 8), digits(sequence, 3)], axis=1)
    check = (1 - body @ np.array(_WEIGHTS, dtype=np.int64)) % 11
    ascii_ = np.concatenate(
        [(body + ord("0")).astype(np.uint8), _CHECK_BYTES[check][:, None]], axis=1
    )
    text = np.ascontiguousarray(ascii_).view(f"S{LENGTH}").ravel()
    out: list[str] = text.astype(f"U{LENGTH}").tolist()
    return out
