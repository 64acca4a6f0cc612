"""Dates as whole days since 1970-01-01, the unit of all engine arithmetic."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.date(1970, 1, 1)


def to_day(value: dt.date | str) -> int:
    """Return the day number of a date or a ``YYYY-MM-DD`` string."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return (value - EPOCH).days


def from_day(day: int) -> dt.date:
    """Return the date of a day number."""
    return EPOCH + dt.timedelta(days=int(day))


LAST_DAY = (dt.date.max - EPOCH).days  # the last day a date can hold
_FIRST = (dt.date.min - EPOCH).days


def day_text(day: int) -> str:
    """A day number as ``YYYY-MM-DD``, or the calendar's end it lies beyond (a notice or a
    window may reach past the last date a calendar holds)."""
    if day > LAST_DAY:
        return f"after {dt.date.max.isoformat()}"
    if day < _FIRST:
        return f"before {dt.date.min.isoformat()}"
    return from_day(day).isoformat()


def parse_date(text: str) -> dt.date:
    """Parse a strict ``YYYY-MM-DD`` date, raising ValueError with a readable message."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid calendar date") from None
