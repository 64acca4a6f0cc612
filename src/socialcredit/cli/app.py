"""The ``socialcredit`` command line (docs/cli.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import PurePath
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.rule import Rule
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup

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

# markup off: what is printed is text (ids, codes, conditions come from files and may hold
# brackets); a styled line is built with rich.markup.escape around its data, markup=True
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def heading(title: str) -> None:
    """A heading: a line across the output (at most :data:`HEADING_WIDTH` wide) with
    ``title`` (markup: escape its data with rich.markup.escape) in it."""
    out.print(Rule(Text.from_markup(title)), width=min(out.width, HEADING_WIDTH))


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


class DocumentedCommand(TyperCommand):
    """A command whose help names its arguments as docs/cli.md does: ``CODE``, ``[PATH]``
    (optional), ``SCHEMES...`` (one or more); typer's own usage line writes a required
    argument as ``{code}``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is None and param.name:
                param.metavar = param.name.upper()

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # the reader of standard output left (piped into ``head``): not an error; what
            # is left to write, on exit too, goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _documented(group: typer.Typer) -> None:
    """Every command of ``group`` and of its groups a :class:`DocumentedCommand`."""
    for command in group.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = DocumentedCommand
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _documented(sub.typer_instance)


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

    _documented(app)
    return app


ENV_PREFIX = "SOCIALCREDIT_"
"""What the names of the environment variables the commands read begin with
(``SOCIALCREDIT_LEDGER``, the service's settings)."""


def _is_text(value: str) -> bool:
    """Whether ``value`` is text: Python gives the bytes of an argument (or environment
    variable) that are no UTF-8 as lone surrogates, which nothing can encode again."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _odd_bytes(value: str) -> str:
    """The bytes of ``value`` that are no UTF-8, as ``\\xNN`` (the value itself is not
    shown: it may be a person's code)."""
    odd = [c.encode("utf-8", "surrogateescape") for c in value if not _is_text(c)]
    return "".join(f"\\x{b[0]:02x}" for b in dict.fromkeys(odd))


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _values(item)
    elif isinstance(value, str | PurePath):
        yield str(value)


def _parameters_given(args: list[str]) -> list[tuple[str, str]]:
    """The parameters of the command ``args`` run that were given something that is not
    text, each named as the command's help names it, with the bytes that are no UTF-8; none
    when the command line cannot be read that far (the command's name itself, say)."""
    command = typer.main.get_command(app)
    words = list(args)
    path = ["socialcredit"]
    while isinstance(command, TyperGroup) and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    if isinstance(command, TyperGroup):
        return []
    try:
        with command.make_context(" ".join(path), list(words), resilient_parsing=True) as ctx:
            given = dict(ctx.params)
    except Exception:  # whatever the parser refuses: named off the words below, or by position
        given = {}
    found: list[tuple[str, str]] = []
    for param in command.params:
        odd = [v for v in _values(given.get(param.name or "")) if not _is_text(v)]
        if odd:
            name = " / ".join(param.opts) if param.param_type_name == "option" else None
            name = name or param.metavar or (param.name or "").upper()
            found += [(name, _odd_bytes(v)) for v in odd]
    # an option whose value is no text (a number, say) has none parsed: named by its flag
    options = {
        flag: p
        for p in command.params
        if p.param_type_name == "option" and not getattr(p, "is_flag", False)
        for flag in p.opts
    }
    named = {name for name, _ in found}
    for i, word in enumerate(words):
        flag, eq, value = word.partition("=")
        option = options.get(flag) if eq else options.get(words[i - 1]) if i else None
        name = " / ".join(option.opts) if option is not None else ""
        if option is not None and not _is_text(word) and name not in named:
            found.append((name, _odd_bytes(value if eq else word)))
            named.add(name)
    return found


def not_text(args: list[str], environ: dict[str, str]) -> str | None:
    """The error for a command line (or a ``SOCIALCREDIT_*`` environment variable) that is
    not UTF-8 text, or None when all of it is. Caught before any command runs, as nothing
    can use such a value: not print it back, store it, open a file or a database by it."""
    bad = [i for i, arg in enumerate(args) if not _is_text(arg)]
    named = (
        (_parameters_given(args) or [(f"argument {i + 1}", _odd_bytes(args[i])) for i in bad])
        if bad
        else []
    )
    named += [
        (f"${k}", _odd_bytes(v))
        for k, v in sorted(environ.items())
        if _is_text(k) and k.upper().startswith(ENV_PREFIX) and not _is_text(v)
    ]
    if not named:
        return None
    return (
        "; ".join(f"{name} has bytes that are not UTF-8 ({odd})" for name, odd in named)
        + ": the command line takes codes, names and file names in UTF-8 only (rename such "
        "a file, or link to it under a UTF-8 name)"
    )


def main() -> None:
    """Entry point of the ``socialcredit`` command."""
    command_app()
    refused = not_text(sys.argv[1:], dict(os.environ))
    if refused is not None:
        _error(refused)
        sys.exit(2)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        # piped or redirected: tables at their natural width, nothing cut to fit 80
        # columns (COLUMNS, when set, still decides)
        out.width = PIPED_WIDTH
    app()
