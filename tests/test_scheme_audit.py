"""The rights audit (SCHEME.md section 10) is not dodged by how a category is spelled."""

from __future__ import annotations

import pytest
from test_scheme import EXAMPLE

from socialcredit.scheme import audit
from socialcredit.scheme.validate import parse_scheme


@pytest.mark.parametrize("spelled", ["Religion", "' religion'", "HEALTH", "'sexuality '"])
def test_a_protected_category_is_found_however_it_is_written(spelled: str) -> None:
    text = EXAMPLE.replace("category: charity", f"category: {spelled}")
    scheme, places = parse_scheme(text, "s.yaml")
    critical = [(f.code, f.where) for f in audit(scheme, places) if f.severity == "critical"]
    assert ("protected-category", "rules[1].types[0]") in critical
    assert ("protected-category", "lists[1].when") in critical


def test_a_category_that_only_resembles_a_protected_one_is_not_a_finding() -> None:
    scheme, places = parse_scheme(EXAMPLE.replace("category: charity", "category: healthy"))
    assert not any(f.code == "protected-category" for f in audit(scheme, places))
