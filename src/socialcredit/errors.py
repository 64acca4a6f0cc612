"""The domain exceptions of socialcredit.

Every error a user can cause is one of these, and its message says what is wrong, where
(file, line, field) and what would be valid. The CLI prints the message and exits 2; the
HTTP layer maps each class to a status in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class SocialCreditError(Exception):
    """Base of every error socialcredit raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input, with its place.

    ``source`` is a file name (or ``<string>``); ``line`` is 1-based, or 0 when unknown;
    ``where`` is the path inside the document (``rules[2].cap``) or the field of a row.
    """

    source: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        place = self.source
        if self.line:
            place += f":{self.line}"
        if self.where:
            place += f": {self.where}"
        return f"{place}: {self.message}"


SHOWN_PROBLEMS = 1000
"""How many problems a message lists before it says how many more there are."""


class InvalidInput(SocialCreditError):
    """An input (scheme, subjects file, records file) has one or more problems.

    All problems are collected before raising, so a user sees every one at once; nothing
    of the input has been used.
    """

    def __init__(self, problems: list[Problem], *, what: str = "input") -> None:
        self.problems = list(problems)
        self.what = what
        super().__init__(self.render())

    def render(self, limit: int = SHOWN_PROBLEMS) -> str:
        n = len(self.problems)
        head = f"{self.what} is invalid: {n} problem{'s' if n != 1 else ''}"
        lines = [head] + [f"  {p}" for p in self.problems[:limit]]
        if n > limit:
            lines.append(f"  ... and {n - limit} more")
        return "\n".join(lines)


class InvalidScheme(InvalidInput):
    """A scheme file failed validation (SCHEME.md section 9)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, what="scheme")


class InvalidCode(SocialCreditError):
    """A subject code failed its format or check character."""


class RefusedScheme(SocialCreditError):
    """A scheme with a critical rights-audit finding was refused for real records."""


class LedgerError(SocialCreditError):
    """The ledger file is missing, of another version, or was tampered with."""


class UnknownSubject(SocialCreditError):
    """A code that is not in the registry (or not scored by the scheme)."""


class ScoreOverflow(SocialCreditError):
    """A contribution or score does not fit in a signed 64-bit integer."""
