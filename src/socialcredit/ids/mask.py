"""Masking subject codes for display.

A person's code is personal data: wherever it is shown to anyone but the person, it is
masked. An organization's code (USCC) is public and shown as it is.

* A resident identity number (18 characters: 17 digits and a digit or ``X``) keeps its
  first 4 and last 4 characters: ``371082199001011234`` becomes ``3710**********1234``.
  The number is normalized first (whitespace removed, ``x`` upper-cased).
* Any other person code (an opaque code) keeps at most its first 2 and last 2 characters
  and never more than a third of its characters: ``k = min(2, len // 6)`` characters are
  kept at each end, so codes of fewer than 6 characters become all stars, codes of 6-11
  characters keep one at each end, longer ones two. The length is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast, overload

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["KINDS", "mask", "mask_array"]

KINDS = ("person", "organization")
"""The kinds of subject a code can belong to."""

_RIC_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_RIC_PATTERN = "^[0-9]{17}[0-9X]$"
_RIC_STARS = "*" * 10
# What str.split() treats as whitespace, in RE2 syntax.
_WHITESPACE = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def mask(code: str, kind: str) -> str:
    """Return ``code`` as it may be shown to anyone but its subject.

    ``kind`` is ``"person"`` or ``"organization"`` (anything else raises
    :class:`ValueError`). Organization codes are returned unchanged. A person's resident
    identity number keeps its first 4 and last 4 characters (``3710**********1234``);
    any other person code keeps ``min(2, len(code) // 6)`` characters at each end, so never
    more than a third of it, and codes of 5 characters or fewer become all stars.

    >>> mask("371082199001011234", "person")
    '3710**********1234'
    >>> mask("P-123456", "person")
    'P******6'
    >>> mask("91110000600037341L", "organization")
    '91110000600037341L'
    """
    _check_kind(kind)
    if kind == "organization":
        return code
    normalized = "".join(code.split()).replace("x", "X")
    if _RIC_SHAPE.fullmatch(normalized):
        return normalized[:4] + _RIC_STARS + normalized[-4:]
    keep = min(2, len(code) // 6)
    if keep == 0:
        return "*" * len(code)
    return code[:keep] + "*" * (len(code) - 2 * keep) + code[-keep:]


@overload
def mask_array(codes: list[str], kinds: str | Sequence[str]) -> list[str]: ...
@overload
def mask_array(codes: Any, kinds: Any) -> Any: ...
def mask_array(codes: Any, kinds: Any) -> Any:
    """Mask many codes at once, as :func:`mask` does one by one.

    ``codes`` is a list of strings or a pyarrow string array (or chunked array); ``kinds``
    is one kind for all codes, or one per code (a sequence or pyarrow array). Returns a
    list for a list and a pyarrow array otherwise; nulls stay null. Computed with
    ``pyarrow.compute``, without a Python loop over the codes. Raises :class:`ValueError`
    for an unknown or missing kind.
    """
    as_list = isinstance(codes, list)
    arr = pa.array(codes, type=pa.string()) if as_list else codes
    if isinstance(kinds, str):
        _check_kind(kinds)
        if kinds == "organization":
            return list(codes) if as_list else codes
        is_org: Any = None
    else:
        kind_arr = kinds if isinstance(kinds, pa.Array | pa.ChunkedArray) else pa.array(kinds)
        known = pc.is_in(kind_arr, value_set=pa.array(KINDS))
        if len(kind_arr) != len(arr) or not pc.all(known).as_py():
            raise ValueError(f"kinds must be one of {KINDS} per code, with one kind per code")
        is_org = pc.equal(kind_arr, "organization")

    stripped = pc.replace_substring_regex(arr, _WHITESPACE, "")
    normalized = pc.replace_substring(stripped, "x", "X")
    ric = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(normalized, 0, 4),
        pc.utf8_slice_codeunits(normalized, -4),
        _RIC_STARS,
    )
    length = pc.utf8_length(arr)
    keep = pc.min_element_wise(pc.divide(length, 6), 2)
    opaque = pc.binary_repeat("*", length)
    for k in (1, 2):
        stars = pc.binary_repeat("*", pc.max_element_wise(pc.subtract(length, 2 * k), 0))
        kept = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(arr, 0, k), stars, pc.utf8_slice_codeunits(arr, -k), ""
        )
        opaque = pc.if_else(pc.equal(keep, k), kept, opaque)
    person = pc.if_else(pc.match_substring_regex(normalized, _RIC_PATTERN), ric, opaque)
    result = person if is_org is None else pc.if_else(is_org, arr, person)
    return cast(list[str], result.to_pylist()) if as_list else result
