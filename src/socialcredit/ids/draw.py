"""Pieces shared by the generators of synthetic codes (:mod:`~socialcredit.ids.ric`,
:mod:`~socialcredit.ids.uscc`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def region_array(regions: Sequence[str] | None) -> NDArray[np.int64]:
    """The region codes to draw from: the synthetic ``000000``-``009999`` by default, or the
    given 6-digit codes (duplicates dropped)."""
    if regions is None:
        return np.arange(10_000, dtype=np.int64)  # "000000" .. "009999"
    unique = list(dict.fromkeys(regions))
    wrong = [r for r in unique if len(r) != 6 or not (r.isascii() and r.isdigit())]
    if wrong or not unique:
        raise ValueError(f"regions must be a non-empty list of 6-digit codes; got {wrong[:5]}")
    return np.array([int(r) for r in unique], dtype=np.int64)


def digits(values: NDArray[np.int64], width: int, base: int = 10) -> NDArray[np.int64]:
    """Split each value into ``width`` base-``base`` digits, most significant first."""
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out: NDArray[np.int64] = (values[:, None] // powers) % base
    return out
