"""A small synthetic town: persons and organizations with valid codes, and a period of
conduct records sent by several agencies.

Everything is drawn from one seed, so a town is exactly reproducible. Codes are real-format
codes in the ranges :mod:`socialcredit.ids` marks synthetic. Rates are per subject per year
and depend on the income decile where the accounts suggest they do (arrears and late fees
fall with income, donations rise with it); they are illustrative, not estimates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from socialcredit.days import to_day
from socialcredit.ids import ric, uscc
from socialcredit.records import RECORDS_SCHEMA, SUBJECTS_SCHEMA


@dataclass(frozen=True)
class Conduct:
    """One kind of conduct: the agency that records it and its yearly rate."""

    type: str
    agency: str
    kind: str  # person | organization
    rate: float  # events per subject per year, at the middle income decile
    income_slope: float = 0.0  # rate multiplier per decile above the middle (negative: falls)
    amount: tuple[int, int] = (0, 0)  # amounts drawn uniformly in [lo, hi]
    delay_days: int = 3  # mean days from conduct to recording


TOWN_CONDUCT: tuple[Conduct, ...] = (
    Conduct("traffic.violation", "traffic-police", "person", 0.6),
    Conduct("traffic.drunk_driving", "traffic-police", "person", 0.004),
    Conduct("utility.late_payment", "utility", "person", 0.25, income_slope=-0.15),
    Conduct("utility.theft", "utility", "person", 0.004),
    Conduct("utility.heating_tampering", "utility", "person", 0.004),
    Conduct("finance.overdue", "bank", "person", 0.4, income_slope=-0.2),
    Conduct("finance.private_lending_breach", "court", "person", 0.01, income_slope=-0.1),
    Conduct("contract.breach", "court", "person", 0.02),
    Conduct("court.debt_judgment", "court", "person", 0.01, income_slope=-0.2),
    Conduct("court.judgment_unfulfilled", "court", "person", 0.012, income_slope=-0.2),
    Conduct("civic.heroic_act", "civil-affairs", "person", 0.004),
    Conduct(
        "charity.donation",
        "charity-federation",
        "person",
        0.25,
        income_slope=0.25,
        amount=(50, 2000),
        delay_days=10,
    ),
    Conduct("court.judgment_unfulfilled", "court", "organization", 0.03),
    Conduct("penalty.minor", "market-regulation", "organization", 0.2),
    Conduct("penalty.general", "market-regulation", "organization", 0.05),
    Conduct("penalty.serious", "market-regulation", "organization", 0.01),
    Conduct("tax.arrears", "tax", "organization", 0.05),
    Conduct("registry.annual_report_missing", "market-regulation", "organization", 0.04),
)

FULFIL_SHARE = 0.5
"""Share of unfulfilled judgments that are fulfilled later in the period."""

PROPENSITY_SHAPE = 0.5
"""Shape of the gamma-distributed (mean 1) propensity that scales each subject's rates of
adverse conduct: most subjects have few records, a few have many."""


@dataclass(frozen=True)
class Town:
    """The subjects and records of a synthetic town, plus per-person attributes."""

    subjects: pa.Table
    records: pa.Table
    income_decile: npt.NDArray[np.int8]  # per person, 1..10 (persons first in subjects)
    start: dt.date
    end: dt.date


def build_town(
    *,
    persons: int = 3000,
    organizations: int = 300,
    start: dt.date = dt.date(2025, 1, 1),
    days: int = 365,
    seed: int = 7,
    conduct: tuple[Conduct, ...] = TOWN_CONDUCT,
) -> Town:
    """Draw a town. Records occur in ``[start, start + days)`` and are recorded after."""
    rng = np.random.default_rng(seed)
    person_codes = ric.generate(
        rng, persons, born_from=dt.date(1950, 1, 1), born_to=dt.date(2006, 12, 31)
    )
    org_codes = uscc.generate(rng, organizations)
    codes = np.array(person_codes + org_codes, dtype=object)
    kinds = np.array(["person"] * persons + ["organization"] * organizations, dtype=object)
    decile = rng.integers(1, 11, size=persons).astype(np.int8)
    propensity = rng.gamma(PROPENSITY_SHAPE, 1 / PROPENSITY_SHAPE, size=persons + organizations)
    first = to_day(start)
    years = days / 365.0

    columns: dict[str, list[npt.NDArray[np.generic]]] = {
        k: [] for k in ("subject", "type", "occurred", "recorded", "amount", "agency")
    }
    for c in conduct:
        if c.kind == "person":
            owners = np.arange(persons)
            scale = np.exp(c.income_slope * (decile.astype(np.float64) - 5.5))
        else:
            owners = np.arange(persons, persons + organizations)
            scale = np.ones(organizations)
        if c.type not in ("charity.donation", "civic.heroic_act"):
            scale = scale * propensity[owners]
        counts = rng.poisson(c.rate * years * scale)
        who = np.repeat(owners, counts)
        n = len(who)
        occurred = first + rng.integers(0, days, size=n)
        recorded = occurred + rng.poisson(c.delay_days, size=n)
        lo, hi = c.amount
        amount = rng.integers(lo, hi + 1, size=n) if hi else np.zeros(n, dtype=np.int64)
        columns["subject"].append(who)
        columns["type"].append(np.full(n, c.type, dtype=object))
        columns["occurred"].append(occurred)
        columns["recorded"].append(recorded)
        columns["amount"].append(amount.astype(np.int64))
        columns["agency"].append(np.full(n, c.agency, dtype=object))

    merged = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.lexsort((merged["subject"], merged["recorded"]))
    merged = {k: v[order] for k, v in merged.items()}
    n = len(order)
    ids = np.array([f"{a}-{i:07d}" for i, a in enumerate(merged["agency"])], dtype=object)
    refs = np.full(n, None, dtype=object)

    # Some unfulfilled judgments are fulfilled later: a record that refs the judgment.
    judged = np.flatnonzero(merged["type"] == "court.judgment_unfulfilled")
    paid = judged[rng.random(len(judged)) < FULFIL_SHARE]
    paid_on = merged["recorded"][paid] + rng.integers(15, 240, size=len(paid))
    keep = paid_on < first + days
    paid, paid_on = paid[keep], paid_on[keep]
    extra = {
        "subject": merged["subject"][paid],
        "type": np.full(len(paid), "court.judgment_fulfilled", dtype=object),
        "occurred": paid_on,
        "recorded": paid_on,
        "amount": np.zeros(len(paid), dtype=np.int64),
    }
    extra_ids = np.array([f"court-f{i:06d}" for i in range(len(paid))], dtype=object)

    def col(name: str) -> npt.NDArray[np.generic]:
        return np.concatenate([merged[name], extra[name]])

    records = pa.Table.from_arrays(
        [
            pa.array(np.concatenate([ids, extra_ids]), pa.string()),
            pa.array(codes[col("subject").astype(np.int64)], pa.string()),
            pa.array(col("type"), pa.string()),
            pa.array(col("occurred").astype(np.int32), pa.int32()).cast(pa.date32()),
            pa.array(col("recorded").astype(np.int32), pa.int32()).cast(pa.date32()),
            pa.array(col("amount").astype(np.int64), pa.int64()),
            pa.array(np.concatenate([refs, ids[paid]]), pa.string()),
        ],
        schema=RECORDS_SCHEMA,
    )
    subjects = pa.Table.from_arrays(
        [pa.array(codes, pa.string()), pa.array(kinds, pa.string())], schema=SUBJECTS_SCHEMA
    )
    return Town(subjects, records, decile, start, start + dt.timedelta(days=days))
