"""``socialcredit scheme``: list, show, check, audit and the JSON Schema."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.syntax import Syntax
from rich.table import Table

from socialcredit.cli.app import app, domain_errors, err, out
from socialcredit.cli.render import findings_table
from socialcredit.errors import InvalidScheme
from socialcredit.scheme import audit, load, preset_names
from socialcredit.scheme.model import json_schema

scheme_app = typer.Typer(help="Write, check and audit schemes.", no_args_is_help=True)
app.add_typer(scheme_app, name="scheme")

SchemeArg = Annotated[str, typer.Argument(help="A scheme file, or the name of a preset.")]


@scheme_app.command("list")
@domain_errors
def list_presets() -> None:
    """List the preset schemes shipped with the package, with their audit summary."""
    table = Table(show_edge=False)
    for name in ("preset", "title", "subjects", "rules", "lists", "measures", "audit"):
        table.add_column(name)
    for name in preset_names():
        loaded = load(name)
        s = loaded.scheme
        found = audit(s, loaded.places)
        crit = sum(f.severity == "critical" for f in found)
        warn = sum(f.severity == "warning" for f in found)
        summary = f"{crit} critical, {warn} warnings" if found else "clean"
        table.add_row(
            name,
            s.title or "",
            ", ".join(s.subjects),
            str(len(s.rules)),
            str(len(s.lists)),
            str(len(s.measures)),
            summary,
        )
    out.print(table)


@scheme_app.command("show")
@domain_errors
def show(scheme: SchemeArg) -> None:
    """Print a scheme's YAML (a preset's with its source comments)."""
    loaded = load(scheme)
    if out.is_terminal:
        out.print(Syntax(loaded.text, "yaml", line_numbers=True, word_wrap=True))
    else:
        typer.echo(loaded.text, nl=False)


@scheme_app.command("check")
def check(schemes: Annotated[list[str], typer.Argument(help="Scheme files or presets.")]) -> None:
    """Validate schemes whole; report every problem with its place. Exit 2 if any is invalid."""
    bad = 0
    for name in schemes:
        try:
            loaded = load(name)
        except InvalidScheme as exc:
            bad += 1
            err.print(exc.render(), markup=False, highlight=False)
            continue
        s = loaded.scheme
        out.print(
            f"{loaded.source}: ok — scheme {s.scheme!r}: {len(s.records)} record types, "
            f"{len(s.rules)} rules, {len(s.grades)} grades, {len(s.lists)} lists, "
            f"{len(s.measures)} measures",
            markup=False,
        )
    if bad:
        raise typer.Exit(2)


@scheme_app.command("audit")
@domain_errors
def audit_cmd(
    scheme: SchemeArg,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Print the rights-audit findings of a scheme (SCHEME.md section 10), with places.

    Exit status 0 when there is no critical finding, 1 when there is one.
    """
    loaded = load(scheme)
    found = audit(loaded.scheme, loaded.places)
    if fmt == "json":
        typer.echo(json.dumps([f.__dict__ for f in found], indent=2))
    elif fmt == "text":
        if not found:
            out.print(f"{loaded.source}: no findings")
        else:
            out.print(findings_table(found, f"rights audit of {loaded.source}"))
    else:
        raise typer.BadParameter("--format must be text or json")
    if any(f.severity == "critical" for f in found):
        raise typer.Exit(1)


@scheme_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the scheme language, for editors."""
    typer.echo(json.dumps(json_schema(), indent=2))
