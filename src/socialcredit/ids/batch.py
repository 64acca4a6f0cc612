"""Check many codes at once, vectorized: the fast path for registries of millions.

:func:`valid_mask` answers, for each code, whether it is already a valid code of its kind
in normal form (no whitespace, upper case). It agrees with :func:`socialcredit.ids.
validate_code` on every code it accepts; callers run the per-code validator only on the
codes it rejects, to normalize them or to say exactly what is wrong.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.ids import ric, uscc

Bools = npt.NDArray[np.bool_]

_LENGTH = 18
_RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RIC_CHECK = np.frombuffer(b"0123456789X", dtype=np.uint8)
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_USCC_ALPHABET = np.frombuffer(uscc.ALPHABET.encode("ascii"), dtype=np.uint8)
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ORG_CHECK = np.frombuffer(b"0123456789X0", dtype=np.uint8)  # index 11 - sum % 11 (1..11)

_USCC_VALUE = np.full(256, -1, dtype=np.int64)
_USCC_VALUE[_USCC_ALPHABET] = np.arange(len(_USCC_ALPHABET))
_BASE36 = np.full(256, -1, dtype=np.int64)
for _i, _ch in enumerate(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    _BASE36[_ch] = _i
_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)

assert ric.LENGTH == uscc.LENGTH == _LENGTH


def _matrix(codes: pa.Array) -> tuple[npt.NDArray[np.uint8], Bools]:
    """The codes of 18 ASCII bytes as an [n, 18] byte matrix (zeros elsewhere), and which."""
    codes = codes.cast(pa.string())
    n = len(codes)
    fits = pc.fill_null(pc.equal(pc.binary_length(codes), _LENGTH), False)
    fits_np = np.asarray(fits.to_numpy(zero_copy_only=False), dtype=np.bool_)
    out = np.zeros((n, _LENGTH), dtype=np.uint8)
    if fits_np.any():
        chosen = pc.filter(codes, fits)
        chosen = pa.concat_arrays([chosen]) if chosen.offset else chosen
        offsets = np.frombuffer(chosen.buffers()[1], dtype=np.int32)[: len(chosen) + 1]
        data = np.frombuffer(chosen.buffers()[2], dtype=np.uint8)
        block = data[offsets[0] : offsets[0] + _LENGTH * len(chosen)]
        out[fits_np] = block.reshape(-1, _LENGTH)
    return out, fits_np


def ric_mask(codes: pa.Array, *, today: dt.date | None = None) -> Bools:
    """Which codes are valid resident identity numbers in normal form."""
    m, ok = _matrix(codes)
    digits = (m >= 48) & (m <= 57)
    ok &= digits[:, :17].all(axis=1)
    ok &= digits[:, 17] | (m[:, 17] == ord("X"))
    values = m[:, :17].astype(np.int64) - 48
    total = values @ _RIC_WEIGHTS
    ok &= _RIC_CHECK[(1 - total) % 11] == m[:, 17]
    year = values[:, 6:10] @ np.array([1000, 100, 10, 1])
    month = values[:, 10:12] @ np.array([10, 1])
    day = values[:, 12:14] @ np.array([10, 1])
    month_ok = (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    limit = _DAYS[np.where(month_ok, month, 0)] - ((month == 2) & ~leap)
    ok &= month_ok & (day >= 1) & (day <= limit) & (year >= 1)
    now = today if today is not None else dt.date.today()
    ok &= year * 10000 + month * 100 + day <= now.year * 10000 + now.month * 100 + now.day
    return ok


def uscc_mask(codes: pa.Array) -> Bools:
    """Which codes are valid Unified Social Credit Codes in normal form."""
    m, ok = _matrix(codes)
    values = _USCC_VALUE[m]
    ok &= (values >= 0).all(axis=1)
    ok &= ((m[:, 2:8] >= 48) & (m[:, 2:8] <= 57)).all(axis=1)
    total = np.where(values[:, :17] >= 0, values[:, :17], 0) @ _USCC_WEIGHTS
    ok &= _USCC_ALPHABET[(31 - total % 31) % 31] == m[:, 17]
    body = _BASE36[m[:, 8:16]]
    org_total = np.where(body >= 0, body, 0) @ _ORG_WEIGHTS
    ok &= _ORG_CHECK[(11 - org_total % 11) % 12] == m[:, 16]
    return ok


def valid_mask(codes: pa.Array, kinds: pa.Array, *, today: dt.date | None = None) -> Bools:
    """Which codes are valid for their kind (person: resident number; organization: USCC)
    and already in normal form. Codes of any other kind are reported invalid."""
    kinds_np = np.asarray(kinds.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    person = kinds_np == "person"
    organization = kinds_np == "organization"
    out = np.zeros(len(codes), dtype=np.bool_)
    if person.any():
        where = np.flatnonzero(person)
        out[where] = ric_mask(codes.take(pa.array(where)), today=today)
    if organization.any():
        where = np.flatnonzero(organization)
        out[where] = uscc_mask(codes.take(pa.array(where)))
    return out
