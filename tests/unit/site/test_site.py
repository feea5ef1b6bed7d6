"""The site is put in place whole: an older site is replaced (pages gone with it), and a
directory that is not a site is never touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from monogres_oci.errors import UsageError
from monogres_oci.site.command import write_site


def test_a_site_replaces_the_previous_one_whole(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_site({"index.html": b"one", "extensions/old.html": b"old"}, out)
    write_site({"index.html": b"two", "extensions/new.html": b"new"}, out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "extensions/new.html", "index.html"]
    assert (out / "index.html").read_bytes() == b"two"
    assert oct((out / "index.html").stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # nothing left beside it


def test_a_directory_that_is_not_a_site_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="holds no site"):
        write_site({"index.html": b"x"}, out)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
