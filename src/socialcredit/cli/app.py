"""The ``socialcredit`` command line (docs/cli.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.rule import Rule

from socialcredit.errors import InvalidInput, SocialCreditError

app = typer.Typer(
    name="socialcredit",
    help="A social credit system built to be inspected: schemes as data, a hash-chained "
    "ledger, explained decisions, due process and a rights audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PIPED_WIDTH = 1000
"""The width of standard output when it is not a terminal and ``COLUMNS`` is not set."""
HEADING_WIDTH = 100
"""Headings are drawn across the output, up to this width."""

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def heading(title: str) -> None:
    """A heading: a line across the output (at most :data:`HEADING_WIDTH` wide) with
    ``title`` (markup) in it."""
    out.print(Rule(title), width=min(out.width, HEADING_WIDTH))


def _error(message: str) -> None:
    """Print an error: the label styled, the message as it is (no markup read in it)."""
    err.print("[bold red]error:[/] ", end="", markup=True, highlight=False)
    err.print(message, markup=False, highlight=False)


def domain_errors(fn: F) -> F:
    """Turn domain errors into a message on stderr and exit status 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InvalidInput as exc:
            _error(exc.render())
            raise typer.Exit(2) from None
        except SocialCreditError as exc:
            _error(str(exc))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def command_app() -> typer.Typer:
    """The application with every command registered (each command module adds its own)."""
    from socialcredit.cli import (  # noqa: F401
        demo,
        lab_cmds,
        ledger_cmds,
        scheme_cmds,
        score_cmds,
        serve_cmds,
    )

    return app


def main() -> None:
    """Entry point of the ``socialcredit`` command."""
    command_app()
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        # piped or redirected: tables at their natural width, nothing cut to fit 80
        # columns (COLUMNS, when set, still decides)
        out.width = PIPED_WIDTH
    try:
        app()
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        sys.exit(0)
