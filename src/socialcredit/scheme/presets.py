"""The preset schemes shipped with the package, one per real system (docs/presets.md)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from socialcredit.errors import InvalidScheme, Problem
from socialcredit.scheme.model import Scheme
from socialcredit.scheme.places import Places
from socialcredit.scheme.validate import parse_scheme, read_scheme_text


@dataclass(frozen=True)
class LoadedScheme:
    """A validated scheme with where it came from and the lines of its parts."""

    scheme: Scheme
    places: Places
    source: str
    text: str


def preset_names() -> list[str]:
    """The names of the shipped presets, sorted."""
    folder = resources.files("socialcredit.scheme") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a preset."""
    path = resources.files("socialcredit.scheme") / "presets" / f"{name}.yaml"
    return path.read_text(encoding="utf-8")


def load(name_or_path: str) -> LoadedScheme:
    """Load a scheme by preset name or by file path, validated whole.

    A value that names an existing file is read as a file; otherwise it must be a preset.
    """
    path = Path(name_or_path)
    if path.is_file():
        text = read_scheme_text(path)
        scheme, places = parse_scheme(text, str(path))
        return LoadedScheme(scheme, places, str(path), text)
    if name_or_path in preset_names():
        text = preset_text(name_or_path)
        source = f"preset:{name_or_path}"
        scheme, places = parse_scheme(text, source)
        return LoadedScheme(scheme, places, source, text)
    known = ", ".join(preset_names())
    raise InvalidScheme(
        [
            Problem(
                name_or_path, 0, "", f"no such file, and no preset of that name (presets: {known})"
            )
        ]
    )
