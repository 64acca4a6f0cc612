"""Schemes as data: the YAML language of SCHEME.md, its validation, presets and audit."""

from socialcredit.scheme.audit import Finding, audit, is_critical, refuse_critical
from socialcredit.scheme.model import Scheme
from socialcredit.scheme.presets import LoadedScheme, load, preset_names, preset_text
from socialcredit.scheme.validate import (
    load_scheme_file,
    load_scheme_text,
    parse_scheme,
    parse_scheme_file,
)

__all__ = [
    "Finding",
    "LoadedScheme",
    "Scheme",
    "audit",
    "is_critical",
    "load",
    "load_scheme_file",
    "load_scheme_text",
    "parse_scheme",
    "parse_scheme_file",
    "preset_names",
    "preset_text",
    "refuse_critical",
]
