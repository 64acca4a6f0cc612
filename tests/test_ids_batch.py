"""The vectorized code checks agree with the per-code validators."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from socialcredit.ids import ric, uscc, validate_code
from socialcredit.ids.batch import ric_mask, uscc_mask, valid_mask

TODAY = dt.date(2026, 1, 1)
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXYZIOSVabx "


def _one_by_one(codes: list[str], kind: str) -> list[bool]:
    out = []
    for c in codes:
        try:
            out.append(validate_code(c, kind, today=TODAY) == c)
        except Exception:
            out.append(False)
    return out


def _mutants(codes: list[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for c in codes:
        chars = list(c)
        i = int(rng.integers(0, len(chars)))
        chars[i] = ALPHABET[int(rng.integers(0, len(ALPHABET)))]
        out.append("".join(chars))
    return out


def test_generated_codes_and_their_mutants_agree() -> None:
    rng = np.random.default_rng(1)
    persons = ric.generate(rng, 2000, born_from=dt.date(1900, 1, 1), born_to=dt.date(2025, 12, 1))
    orgs = uscc.generate(rng, 2000)
    for codes, kind in ((persons, "person"), (orgs, "organization")):
        sample = codes + _mutants(codes, 2) + ["", "x" * 18, codes[0].lower(), codes[1][:-1]]
        kinds = pa.array([kind] * len(sample))
        got = valid_mask(pa.array(sample), kinds, today=TODAY)
        assert got.tolist() == _one_by_one(sample, kind)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_any_digit_string_agrees_for_persons(code: str) -> None:
    assert ric_mask(pa.array([code]), today=TODAY)[0] == _one_by_one([code], "person")[0]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET[:33], min_size=18, max_size=18))
def test_any_string_agrees_for_organizations(code: str) -> None:
    assert uscc_mask(pa.array([code]))[0] == _one_by_one([code], "organization")[0]


def test_valid_mask_by_kind() -> None:
    rng = np.random.default_rng(4)
    p = ric.generate(rng, 1, born_from=dt.date(1980, 1, 1), born_to=dt.date(1990, 1, 1))[0]
    o = uscc.generate(rng, 1)[0]
    got = valid_mask(
        pa.array([p, o, p, o]), pa.array(["person", "organization", "organization", "robot"])
    )
    assert got.tolist() == [True, True, False, False]
