"""What the command line is given, and how its help names it: an argument that is not
UTF-8 text is refused before any command runs, naming it; every command's help names its
arguments as docs/cli.md does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from socialcredit.cli.app import command_app

COMMAND = Path(sys.executable).parent / "socialcredit"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _run(args: list[bytes], **env: str) -> subprocess.CompletedProcess[bytes]:
    """The installed command, run on these bytes as its arguments."""
    return subprocess.run(
        [bytes(COMMAND), *args],
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ledger") / "t.ledger"
    result = CliRunner().invoke(command_app(), ["init", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return bytes(path)


# each command line, with LEDGER for the ledger file; then the name the error gives and the
# bytes it shows
NOT_TEXT = [
    ([b"explain", b"\xff\xfe", b"--scheme", b"rongcheng", b"-l", b"LEDGER"], "CODE", r"\xff\xfe"),
    ([b"lookup", b"11010519491231002X\xff", b"-l", b"LEDGER"], "CODE", r"\xff"),
    ([b"may", b"code", b"travel.\xe9", b"-s", b"rongcheng", b"-l", b"LEDGER"], "ACTION", r"\xe9"),
    ([b"init", b"postgresql://u@localhost/db\xff?schema=s"], "PATH", r"\xff"),
    ([b"subjects", b"import", b"subjects\xff.csv", b"-l", b"LEDGER"], "FILE", r"\xff"),
    (
        b"records add --id r\xff --subject s --type a.b --occurred-at 2025-01-01 -l LEDGER".split(),
        "--id",
        r"\xff",
    ),
    ([b"score", b"-s", b"rongcheng", b"--ledger=\xfe.ledger"], "--ledger / -l", r"\xfe"),
    ([b"scheme", b"check", b"rongcheng", b"\xff.yaml"], "SCHEMES", r"\xff"),
    ([b"serve", b"--port", b"80\xff"], "--port", r"\xff"),  # a number: named by its flag
    ([b"serve", b"--workers=2\xfe"], "--workers", r"\xfe"),
    ([b"\xff"], "argument 1", r"\xff"),
]


@pytest.mark.parametrize(
    "args, name, shown", NOT_TEXT, ids=[" ".join(map(repr, a[:2])) for a, _, _ in NOT_TEXT]
)
def test_an_argument_that_is_not_utf8_is_named_not_a_traceback(
    ledger: bytes, args: list[bytes], name: str, shown: str
) -> None:
    result = _run([ledger if a == b"LEDGER" else a for a in args])
    err = result.stderr.decode("utf-8")  # strict: nothing is echoed back as it came
    assert result.returncode == 2, err
    assert "Traceback" not in err
    assert err.startswith(f"error: {name}") and f"has bytes that are not UTF-8 ({shown})" in err
    assert "11010519491231002X" not in err  # a code is not repeated, only its odd bytes
    assert result.stdout == b""


def test_a_file_name_that_is_not_utf8_creates_nothing(tmp_path: Path) -> None:
    target = bytes(tmp_path / "new") + b"\xff.ledger"
    result = _run([b"init", target])
    assert result.returncode == 2 and b"PATH has bytes that are not UTF-8" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_ledger_variable_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    env = {"SOCIALCREDIT_LEDGER": os.fsdecode(bytes(tmp_path / "l") + b"\xff")}
    result = _run([b"ledger", b"verify"], **env)
    assert result.returncode == 2, result.stderr
    assert b"error: $SOCIALCREDIT_LEDGER has bytes that are not UTF-8 (\\xff)" in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_settings_variable_spelled_in_lower_case_is_checked_too(tmp_path: Path) -> None:
    """The settings read their variables whatever their case."""
    env = {"socialcredit_database": os.fsdecode(bytes(tmp_path / "db") + b"\xff.ledger")}
    result = _run([b"db", b"upgrade"], **env)
    assert result.returncode == 2, result.stderr
    assert b"$socialcredit_database has bytes that are not UTF-8 (\\xff)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_utf8_arguments_pass_through() -> None:
    result = _run([b"scheme", b"check", "r\u00f6ngcheng".encode()])
    assert result.returncode == 2 and b"not UTF-8" not in result.stderr
    assert "r\u00f6ngcheng" in result.stderr.decode("utf-8")


# -- help -------------------------------------------------------------------------------


def _tree(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """The groups and commands under ``group`` (itself first), each with its path."""
    found = [(path, group)]
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            found += _tree(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


EVERY = [path for path, _ in _tree(typer.main.get_command(command_app()))]
COMMANDS = [
    (path, command)
    for path, command in _tree(typer.main.get_command(command_app()))
    if not hasattr(command, "commands")
]


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        command_app(), [*path, "--help"], env={"COLUMNS": "200"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _synopsis(path: tuple[str, ...]) -> str:
    """The synopsis docs/cli.md gives the command: the text block of its section."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    head = f"### socialcredit {' '.join(path)}\n"
    section = text[text.index(head) + len(head) :]
    return re.findall(r"^```text\n(.*?)^```$", section, flags=re.S | re.M)[0]


@pytest.mark.parametrize("path", EVERY, ids=lambda p: " ".join(p) or "socialcredit")
def test_help_shows_no_placeholder(path: tuple[str, ...]) -> None:
    shown = _help(path)
    assert not re.search(r"\{[^{}\s]*\}", shown), shown
    assert len(re.findall(r"^ *Usage: ", shown, flags=re.M)) == 1


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_the_usage_line_names_the_arguments_as_the_docs_do(
    path: tuple[str, ...], command: Any
) -> None:
    [usage] = re.findall(r"Usage: socialcredit .*? \[OPTIONS\](.*)", _help(path))
    synopsis = _synopsis(path)
    for argument in usage.split():
        assert re.search(rf"(?<![\w-]){re.escape(argument)}(?![\w-])", synopsis), (
            f"socialcredit {' '.join(path)}: the usage line has {argument}, docs/cli.md "
            f"writes {synopsis!r}"
        )
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.name.upper() in re.findall(r"[\w-]+", usage)
        elif "--help" not in param.opts:
            assert param.help, f"socialcredit {' '.join(path)}: {param.opts} has no help"
