"""relocate: paths that break under /extensions/<name> are rewritten or fail the build, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from monogres_oci.errors import BuildError
from monogres_oci.package.relocate import Relocated, relocate

PREFIX = "/usr/lib/postgresql/18"
MOUNT = "/extensions/unit"


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    image, postgres = tmp_path / "image", tmp_path / "pg"
    (postgres / "share/tsearch_data").mkdir(parents=True)
    (postgres / "share/tsearch_data/english.stop").write_text("a\n")
    (postgres / "lib").mkdir()
    (postgres / "lib/plpgsql.so").write_bytes(b"\x7fELF")
    return image, postgres


def files(root: Path, contents: dict[str, str | bytes]) -> dict[str, Path]:
    out = {}
    for rel, data in contents.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        out[rel] = path
    return out


def run(image_files: dict[str, Path], postgres: Path, keep: dict[str, str] | None = None) -> Relocated:
    return relocate(image_files, prefix=PREFIX, mount=MOUNT, postgres_tree=postgres,
                    keep=keep or {}, extension="unit")


def test_a_path_to_the_images_own_file_is_rewritten_to_the_mount_point(
        trees: tuple[Path, Path]) -> None:
    image, postgres = trees
    sql = ("CREATE TABLE t(x text);\n"
           f"COPY t FROM '{PREFIX}/share/extension/unit_prefixes.data';\n"
           f"-- the core stop words stay: '{PREFIX}/share/tsearch_data/english.stop'\n")
    found = files(image, {"share/extension/unit--7.sql": sql,
                          "share/extension/unit_prefixes.data": "k\tv\n"})
    out = run(found, postgres)
    (rewrite,) = out.rewrites
    assert (rewrite.path, rewrite.line) == ("share/extension/unit--7.sql", 2)
    assert rewrite.after == f"{MOUNT}/share/extension/unit_prefixes.data"
    text = out.contents["share/extension/unit--7.sql"].decode()
    assert f"FROM '{MOUNT}/share/extension/unit_prefixes.data'" in text
    assert f"'{PREFIX}/share/tsearch_data/english.stop'" in text  # PostgreSQL's own file
    assert found["share/extension/unit--7.sql"].read_text() == sql  # the build output is untouched


def test_a_path_nobody_ships_fails_naming_file_line_and_catalog_key(
        trees: tuple[Path, Path]) -> None:
    image, postgres = trees
    found = files(image, {"share/extension/unit--7.sql":
                          f"SELECT 1;\nCOPY t FROM '{PREFIX}/share/extension/missing.data';\n"})
    with pytest.raises(BuildError) as err:
        run(found, postgres)
    message = str(err.value)
    assert "share/extension/unit--7.sql:2" in message
    assert f"{PREFIX}/share/extension/missing.data" in message
    assert "extensions.unit.build.data" in message and "keep_paths" in message
    # The catalog can ship such a file as it is, with a reason.
    assert run(found, postgres, {"share/extension/*.sql": "the file is optional"}).rewrites == ()


def test_build_paths_fail_in_text_and_binary_files(trees: tuple[Path, Path]) -> None:
    image, postgres = trees
    found = files(image, {"lib/unit.so": b"\x7fELF\0\0/build/src/unit.c\0"})
    with pytest.raises(BuildError, match="lib/unit.so: holds the build path /build/src/"):
        run(found, postgres)


def test_libdir_references(trees: tuple[Path, Path]) -> None:
    image, postgres = trees
    ok = files(image, {"lib/unit.so": b"\x7fELF",
                       "share/extension/unit--1.sql":
                           "CREATE FUNCTION f() RETURNS int AS '$libdir/unit' LANGUAGE C;\n"
                           "CREATE FUNCTION g() RETURNS int AS '$libdir/plpgsql' LANGUAGE C;\n"})
    assert run(ok, postgres).rewrites == ()
    nested = files(image, {"share/extension/unit--2.sql": "AS '$libdir/plugins/unit'\n"})
    with pytest.raises(BuildError, match=r"unit--2.sql:1: \$libdir/plugins/unit: PostgreSQL 18"):
        run({**ok, **nested}, postgres)
    missing = files(image, {"share/extension/unit--3.sql": "AS '$libdir/unit-9'\n"})
    with pytest.raises(BuildError, match="no such library in this image or in PostgreSQL"):
        run({**ok, **missing}, postgres)


def test_load_of_an_images_library_drops_libdir(trees: tuple[Path, Path]) -> None:
    # PostgreSQL 18 does not strip $libdir/ from LOAD, so ALTER EXTENSION ... UPDATE would look
    # in the Postgres tree; a bare name is searched in dynamic_library_path.
    image, postgres = trees
    found = files(image, {"lib/unit.so": b"\x7fELF",
                          "share/extension/unit--6--7.sql": "LOAD '$libdir/unit';\n"
                                                            "LOAD '$libdir/plpgsql';\n"})
    out = run(found, postgres)
    assert [(r.line, r.before, r.after) for r in out.rewrites] == [
        (1, "LOAD '$libdir/unit'", "LOAD 'unit'")]
    assert out.contents["share/extension/unit--6--7.sql"].decode() == (
        "LOAD 'unit';\nLOAD '$libdir/plpgsql';\n")


def test_load_of_module_pathname_drops_libdir(trees: tuple[Path, Path]) -> None:
    # pg_comparator's script says LOAD 'MODULE_PATHNAME'; CREATE EXTENSION puts the control
    # file's '$libdir/pgcmp' there, which LOAD looks up in the Postgres tree only.
    image, postgres = trees
    found = files(image, {
        "lib/pgcmp.so": b"\x7fELF",
        "share/extension/pgcmp.control": "module_pathname = '$libdir/pgcmp'\n",
        "share/extension/pgcmp--3.1.sql": "AS 'MODULE_PATHNAME', 'f';\nLOAD 'MODULE_PATHNAME';\n",
        # another extension's script, whose control names no library: left alone
        "share/extension/other--1.sql": "LOAD 'MODULE_PATHNAME';\n"})
    out = run(found, postgres)
    assert [(r.path, r.line, r.after) for r in out.rewrites] == [
        ("share/extension/pgcmp--3.1.sql", 2, "LOAD 'pgcmp'")]
    assert out.contents["share/extension/pgcmp--3.1.sql"].decode() == (
        "AS 'MODULE_PATHNAME', 'f';\nLOAD 'pgcmp';\n")


def test_bundled_licence_texts_ship_as_debian_wrote_them(trees: tuple[Path, Path]) -> None:
    # boost's copyright file (bundled by pgagent) quotes a /build/src path of its own
    image, postgres = trees
    found = files(image, {"licenses/libboost-thread1.74.0/copyright":
                          "Files: /build/src/boost/thread.hpp\n"})
    assert run(found, postgres).rewrites == ()


def test_a_module_pathname_no_script_uses_is_not_checked(trees: tuple[Path, Path]) -> None:
    # pg_track_settings 2.x is SQL only; its control file still names $libdir/pg_track_settings
    image, postgres = trees
    sql_only = {"share/extension/track.control": "module_pathname = '$libdir/track'\n",
                "share/extension/track--2.1.sql": "CREATE TABLE t ();\n"}
    assert run(files(image, sql_only), postgres).rewrites == ()
    used = {**sql_only, "share/extension/track--2.1.sql": "AS 'MODULE_PATHNAME', 'f';\n"}
    with pytest.raises(BuildError, match=r"track.control:1: \$libdir/track: no such library"):
        run(files(image, used), postgres)
