"""Version ranges decide which releases an extension version and an option get applied to."""

from __future__ import annotations

import re

import pytest

from monogres_oci.catalog.ranges import ANY, PATTERN, majors_range, parse_range


@pytest.mark.parametrize(("text", "admitted", "refused"), [
    (">=17", ["17.0", "17.11", "18.6"], ["16.9"]),
    (">=13,<18", ["13.0", "17.11"], ["18.0", "12.22"]),
    ("18", ["18.0", "18.6"], ["17.11"]),
    ("<18.2", ["17.11", "18.1"], ["18.2", "18.6"]),
    ("!=17", ["18.6", "16.1"], ["17.11"]),
    (">=9.1", ["17.11"], ["9.0"]),
])
def test_ranges(text: str, admitted: list[str], refused: list[str]) -> None:
    rng = parse_range(text)
    assert re.match(PATTERN, text)
    for version in admitted:
        assert rng.admits(version), (text, version)
    for version in refused:
        assert not rng.admits(version), (text, version)


def test_majors_list_and_any() -> None:
    rng = majors_range((17, 18))
    assert rng.admits("17.11") and rng.admits("18.6") and not rng.admits("16.4")
    assert ANY.admits("9.6")
    assert str(parse_range(">=13, <18")) == ">=13,<18"


@pytest.mark.parametrize("bad", ["=>17", "17.x", "", ">=", "latest"])
def test_bad_ranges(bad: str) -> None:
    assert not re.match(PATTERN, bad)
    with pytest.raises(ValueError):
        parse_range(bad)
