"""The Debian importer's readers, on real archive files (tests/data/debian) and small source trees."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from monogres_oci.attest.deb_license import upstream_license
from monogres_oci.catalog import load_catalog
from monogres_oci.debian.deb822 import paragraphs
from monogres_oci.errors import ImporterError, UsageError
from monogres_oci.importer.archive import Archive, SourceRecord, _record
from monogres_oci.importer.catalog_edit import Change, apply
from monogres_oci.importer.check import outdated
from monogres_oci.importer.command import spdx_expression
from monogres_oci.importer.debian import (
    DebianImporter,
    Finding,
    Imported,
    _binaries_range,
    build_packages,
    catalog_name,
    module_names,
    pg_range,
)
from monogres_oci.importer.detect import inspect
from monogres_oci.importer.versions import DebianVersion, upstream

REPO = Path(__file__).parents[3]
DATA = REPO / "tests" / "data" / "debian"


def _records(name: str) -> list[SourceRecord]:
    text = (DATA / "Sources.excerpt").read_text()
    out = []
    for chunk in text.split("\n\n"):
        suite = chunk.split("\n", 1)[0].removeprefix("# suite: ")
        for par in paragraphs(chunk):
            if par["package"] == name:
                out.append(_record(par, suite))
    return out


def test_a_source_record_pins_the_orig_tarball_by_the_index_sha256() -> None:
    sid = next(r for r in _records("pg-repack") if r.suite == "sid")
    assert (sid.version, upstream(sid.version)) == ("1.5.3-1", "1.5.3")
    assert sid.orig is not None and sid.orig.name == "pg-repack_1.5.3.orig.tar.gz"
    # the value the catalog pins for pg_repack 1.5.3, downloaded and checked by hand before
    assert sid.orig.sha256 == "9439892c0b7c7575677f61133e5692f3e8cfd5c6688c5db4fb202320c668c745"
    assert sid.debian_tarball is not None and sid.debian_tarball.name.endswith(".debian.tar.xz")
    assert sid.builds_extension and sid.binaries == ("postgresql-18-repack",)
    assert sid.homepage == "https://github.com/reorg/pg_repack"


def test_a_client_library_is_not_an_extension() -> None:
    assert _records("psycopg2") and not any(r.builds_extension for r in _records("psycopg2"))


def test_build_packages_leave_out_postgres_debian_tooling_and_profiles() -> None:
    [pgsphere] = [r for r in _records("pgsphere") if r.suite == "sid"] or _records("pgsphere")[:1]
    packages = build_packages(pgsphere.build_depends)
    assert "libhealpix-cxx-dev" in packages
    assert not any(p.startswith(("debhelper", "postgresql", "docbook", "architecture-is"))
                   or p in ("fop", "xsltproc") for p in packages), packages
    assert build_packages("debhelper-compat (= 13), libh3-dev (>= 4) | libh3-1-dev, "
                          "cmake <!nocheck>, gcc-multilib <pkg.postgresql.32-bit>, "
                          "postgresql-server-dev-all") == ["libh3-dev", "cmake"]


@pytest.mark.parametrize(("a", "op", "b"), [
    ("2.31.0+dfsg-1", ">", "2.19.3+dfsg-1+deb13u1"), ("1.0~rc1-1", "<", "1.0-1"),
    ("1:0.9", ">", "2.0"), ("1.5.3-1~bpo12+1", "<", "1.5.3-1"), ("1.10", ">", "1.9"),
    ("8.4.8.10-1", "==", "8.4.8.10-1")])
def test_debian_versions_order_as_dpkg_orders_them(a: str, op: str, b: str) -> None:
    dpkg = {">": "gt", "<": "lt", "==": "eq"}[op]
    assert subprocess.run(["dpkg", "--compare-versions", a, dpkg, b]).returncode == 0
    assert {">": DebianVersion(a) > DebianVersion(b), "<": DebianVersion(a) < DebianVersion(b),
            "==": DebianVersion(a) == DebianVersion(b)}[op]


@pytest.mark.parametrize(("file", "expected"), [
    ("copyright.h3-pg", "Apache-2.0"),
    ("copyright.timescaledb", "Apache-2.0 AND PostgreSQL"),
    ("copyright.postgresql-18-pgsphere", "BSD-3-Clause AND GPL-3.0-or-later"),
    ("copyright.postgresql-18-pointcloud", "BSD-3-Clause"),
    ("copyright.postgresql-18-repack", None),  # not DEP-5: refused, never guessed
])
def test_licence_from_debian_copyright(file: str, expected: str | None) -> None:
    assert upstream_license((DATA / file).read_text()) == expected


def test_a_licence_without_an_spdx_id_stays_a_reference_for_the_importer_to_refuse() -> None:
    expression = upstream_license((DATA / "copyright.postgresql-18-set-user").read_text())
    assert expression is not None and "LicenseRef-" in expression


def test_pgversions_and_names() -> None:
    assert pg_range((DATA / "pgversions.h3-pg").read_text()) == ">=14"
    assert pg_range("all\n") == "" and pg_range("16\n17\n18\n") == ">=16,<=18"
    assert catalog_name("pg-repack", ["pg_repack"]) == "pg_repack"
    assert catalog_name("pgaudit-18", ["pgaudit"]) == "pgaudit"
    assert catalog_name("pgaudit-1.7", ["pgaudit"]) == "pgaudit"
    assert catalog_name("postgresql-unit", ["unit"]) == "unit"
    assert catalog_name("pgvector", ["vector"]) == "pgvector"


def test_without_pgversions_the_range_is_what_debian_builds_it_for() -> None:
    # pgaudit-1.7 has binaries for 15 alone while the archive holds 18: it stops at 15
    assert _binaries_range([15], newest=18) == "15"
    assert _binaries_range([13, 14, 15], newest=18) == ">=13,<=15"
    # built for the newest release: open above, as new releases get it too
    assert _binaries_range([15, 16, 17, 18], newest=18) == ">=15"
    assert _binaries_range([], newest=18) == ""


def _tarball(tmp_path: Path, files: dict[str, str]) -> Path:
    path = tmp_path / "src.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"ext-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_pgxs_extension_with_a_preloaded_background_worker(tmp_path: Path) -> None:
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "MODULE_big = cron\nEXTENSION = pg_cron\nREGRESS = basic\n"
                    "PGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
        "pg_cron.control": "default_version = '1.6'\nmodule_pathname = '$libdir/pg_cron'\n",
        "src/pg_cron.c": "void _PG_init(void)\n{\n  if (!process_shared_preload_libraries_in_progress)"
                         "\n    ereport(ERROR, ...);\n  RegisterBackgroundWorker(&worker);\n}\n",
        "test/other.control": "default_version = '0'\n",
    }))
    assert (tree.build_system, tree.subdir, tree.sql_names) == ("pgxs", ".", ["pg_cron"])
    assert tree.controls[0].default_version == "1.6" and tree.controls[0].module == "pg_cron"
    assert tree.preload_evidence == ("src/pg_cron.c:3: process_shared_preload_libraries_in_progress",)
    assert tree.regress


def test_a_module_without_a_control_file(tmp_path: Path) -> None:
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "MODULES = src/bgw_replstatus\nPG_CONFIG = pg_config\n"
                    "PGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
        "src/bgw_replstatus.c": "void _PG_init(void)\n{\n  if "
                                "(!process_shared_preload_libraries_in_progress)\n    return;\n}\n",
    }))
    assert (tree.build_system, tree.sql_names, tree.modules) == ("pgxs", [], ("src/bgw_replstatus",))
    assert module_names(tree) == ["bgw_replstatus"]
    cmake = inspect(_tarball(tmp_path, {"CMakeLists.txt": "project(tool C)\n"}))
    with pytest.raises(ImporterError, match="a client or tool"):
        module_names(cmake)


def test_a_control_template_is_named_without_its_template_suffix(tmp_path: Path) -> None:
    # MobilityDB 1.3.0 names its templates NAME.in.control; pg_repack's is NAME.control.in
    tree = inspect(_tarball(tmp_path, {
        "CMakeLists.txt": "project(MobilityDB)\n",
        "mobilitydb/sql/CMakeLists.txt": "configure_file(mobilitydb.in.control mobilitydb.control)\n",
        "mobilitydb/sql/mobilitydb.in.control": "default_version = '@VERSION@'\n",
        "mobilitydb/test/fixture.control": "default_version = '0'\n",  # named by no build file
        "mobilitydb/datagen/mobilitydb_datagen.in.control": "requires = 'mobilitydb'\n",
        "mobilitydb/datagen/CMakeLists.txt": "configure_file(mobilitydb_datagen.in.control x)\n",
        "lib/other.control.in": "default_version = '1.0'\n",
    }))
    # in the order of their requires: mobilitydb_datagen requires mobilitydb
    assert tree.sql_names == ["other", "mobilitydb", "mobilitydb_datagen"]


def test_a_computed_make_variable_is_not_read_as_names(tmp_path: Path) -> None:
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "EXTENSION = $(shell grep -m 1 '\"name\":' META.json | sed -e 's/x//')\n"
                    "include $(PGXS)\n",
        "sql/semver.sql": "",
        "semver.control": "default_version = '0.40.0'\n"}))
    assert tree.sql_names == ["semver"]


def test_cmake_extension_names_from_postgresql_add_extension(tmp_path: Path) -> None:
    tree = inspect(_tarball(tmp_path, {
        "CMakeLists.txt": "project(h3-pg)\nadd_subdirectory(h3)\n",
        "h3/CMakeLists.txt": "PostgreSQL_add_extension(postgresql_h3\n  NAME h3\n  VERSION 4\n)\n",
        "lib/CMakeLists.txt": "PostgreSQL_add_extension(plain VERSION 1)\n",
        "src/ext.c": "/* _PG_init: RegisterBackgroundWorker( in a comment only */\n",
    }))
    assert tree.build_system == "cmake" and tree.sql_names == ["h3", "plain"]
    assert tree.preload_evidence == ()


def test_a_secondary_control_file_is_not_an_extension(tmp_path: Path) -> None:
    # pgnodemx 1.7 ships pg_proctab--0.0.10-compat.control beside its own control files: the
    # control file of pg_proctab's update scripts (NAME--VERSION.control), not an extension.
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "EXTENSION = pgnodemx pg_proctab--0.0.10-compat pg_proctab\n"
                    "PGXS := $(shell $(PG_CONFIG) --pgxs)\n",
        "pgnodemx.control": "default_version = '1.7'\n",
        "pg_proctab.control": "default_version = '0.0.10-compat'\n",
        "pg_proctab--0.0.10-compat.control": "requires = 'pgnodemx'\n",
    }))
    assert tree.sql_names == ["pg_proctab", "pgnodemx"]


def test_a_control_file_in_a_directory_the_makefile_never_enters_is_not_an_extension(
        tmp_path: Path) -> None:
    # pllua 2.0.12: hstore/hstore_pllua.control has its own Makefile, which the top one does not
    # run; pg_repack's top Makefile names lib/ (SUBDIRS), where its control file is.
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "MODULE_big = pllua\nEXTENSION = pllua plluau\ninclude $(PGXS)\n",
        "pllua.control": "default_version = '2.0'\n",
        "plluau.control": "default_version = '2.0'\n",
        "hstore/Makefile": "EXTENSION = hstore_pllua\ninclude $(PGXS)\n",
        "hstore/hstore_pllua.control": "default_version = '1.0'\n",
    }))
    assert tree.sql_names == ["pllua", "plluau"]
    assert len(tree.notes) == 1 and tree.notes[0].startswith("hstore/hstore_pllua.control: ")
    repack = inspect(_tarball(tmp_path, {
        "Makefile": "PG_CONFIG ?= pg_config\nSUBDIRS = bin lib regress\n",
        "lib/Makefile": "EXTENSION = pg_repack\ninclude $(PGXS)\n",
        "lib/pg_repack.control.in": "default_version = '1.5.3'\n",
    }))
    assert repack.sql_names == ["pg_repack"] and repack.notes == ()


def test_a_makefile_that_includes_pgxs_through_a_file_of_its_own_is_pgxs(tmp_path: Path) -> None:
    # pgq-node 3.5: `include mk/common-pgxs.mk`, and that file includes $(PGXS)
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "EXTENSION = pgq_node\ninclude mk/common-pgxs.mk\n",
        "mk/common-pgxs.mk": "PG_CONFIG ?= pg_config\nPGXS = $(shell $(PG_CONFIG) --pgxs)\n"
                             "include $(PGXS)\n",
        "pgq_node.control": "default_version = '3.5'\n",
    }))
    assert (tree.build_system, tree.sql_names) == ("pgxs", ["pgq_node"])
    assert "Makefile uses PGXS" in tree.build_evidence
    bare = inspect(_tarball(tmp_path, {"Makefile": "include mk/common-pgxs.mk\n",
                                       "pgq_node.control": ""}))
    assert bare.build_system == ""  # the included file is not in the tarball: nothing says PGXS


def test_configure_ac_without_configure_is_built_after_autoreconf(tmp_path: Path) -> None:
    # pointcloud 1.2.5: configure.ac and autogen.sh at the top; pgsql_postgis/Makefile includes
    # PGXS and ../config.mk, which only configure writes (seen: "../config.mk: No such file"),
    # so the PGXS Makefile one directory down must not be taken for the build system
    tree = inspect(_tarball(tmp_path, {
        "configure.ac": "AC_INIT([pointcloud], [1.2.5])\n",
        "pgsql_postgis/Makefile": "include ../config.mk\nPGXS := $(shell $(PG_CONFIG) --pgxs)\n"
                                  "include $(PGXS)\n",
        "pgsql_postgis/pointcloud_postgis.control": "default_version = '1.2.5'\n"}))
    assert (tree.build_system, tree.subdir) == ("autoreconf", ".")
    assert "no configure script" in tree.build_evidence


def test_configure_and_pgxs_one_directory_down(tmp_path: Path) -> None:
    assert inspect(_tarball(tmp_path, {"configure": "#!/bin/sh\n", "Makefile.in": "",
                                       "x.control.in": "default_version = '@VER@'\n"})
                   ).build_system == "configure"
    below = inspect(_tarball(tmp_path, {"README": "", "ext/Makefile": "include $(PGXS)\n",
                                        "ext/x.control": ""}))
    assert (below.build_system, below.subdir, below.sql_names) == ("pgxs", "ext", ["x"])
    # pg_auto_failover 2.2: the top Makefile runs tests and recurses into src/, which builds
    # the monitor extension (PGXS, beside its control file) and a client program
    deep = inspect(_tarball(tmp_path, {
        "Makefile": "install:\n\t$(MAKE) -C src install\n",
        "src/Makefile": "install:\n\t$(MAKE) -C monitor install\n",
        "src/monitor/Makefile": "EXTENSION = pgautofailover\nPGXS = $(shell $(PG_CONFIG) --pgxs)\n",
        "src/monitor/pgautofailover.control": "default_version = '2.2'\n",
        "src/bin/pg_autoctl/Makefile": "pg_autoctl: main.o\n",
        "tests/upgrade/Makefile": "include $(PGXS)\n"}))
    assert (deep.build_system, deep.subdir, deep.sql_names) == \
        ("pgxs", "src/monitor", ["pgautofailover"])
    # deeper than one directory, a PGXS Makefile with no control file beside it is not taken
    assert inspect(_tarball(tmp_path, {"a/b/Makefile": "include $(PGXS)\n",
                                       "a/x.control": ""})).build_system == ""
    none = inspect(_tarball(tmp_path, {"setup.py": ""}))
    assert none.build_system == "" and "no PGXS Makefile" in none.build_evidence


def _imported(name: str, version: str, **entry: object) -> Imported:
    base: dict[str, Any] = {"sql_name": name, "description": "An extension.",
            "homepage": "https://example.org/",
            "license": "PostgreSQL", "build": {"system": "pgxs"},
            "versions": [{"version": version, "postgres": ">=15", "source": {
                "file": f"{name}_{version}.orig.tar.gz", "sha256": "ab" * 32,
                "origins": [{"debian": {"package": f"{name}={version}-1",
                                        "file": f"{name}_{version}.orig.tar.gz"}}]}}]}
    base.update(entry)
    return Imported(name=name, package=name, debian_version=f"{version}-1", entry=base,
                    findings=(Finding("runtime.shared_preload_libraries", name, "x.c:3: marker",
                                      detected=True),) if "runtime" in entry else ())


def test_import_keeps_every_line_of_the_catalog_and_appends(tmp_path: Path) -> None:
    catalog = tmp_path / "extensions.yaml"
    shutil.copy(REPO / "extensions.yaml", catalog)
    shutil.copytree(REPO / "patches", tmp_path / "patches")
    before = catalog.read_text()
    changes = apply(catalog, [_imported("newext", "18.0",
                                        runtime={"shared_preload_libraries": ["newext"]})])
    assert changes == [Change("newext", "added", "18.0")]
    after = catalog.read_text()
    assert after.startswith(before)  # comments, order and style of what was there: untouched
    added = after[len(before):]
    assert "# imported from Debian source package newext 18.0-1" in added
    assert 'version: "18.0"' in added  # a string, not the float 18.0
    assert "detected (x.c:3: marker): confirm" in added
    assert load_catalog(catalog).extension("newext").versions[0].version == "18.0"


def test_import_adds_new_versions_newest_first_and_leaves_a_known_one(tmp_path: Path) -> None:
    catalog = tmp_path / "extensions.yaml"
    shutil.copy(REPO / "extensions.yaml", catalog)
    shutil.copytree(REPO / "patches", tmp_path / "patches")
    before = catalog.read_text()
    assert apply(catalog, [_imported("unit", "7.10")]) == [Change("unit", "unchanged", "7.10")]
    assert catalog.read_text() == before
    assert apply(catalog, [_imported("unit", "7.11")]) == [Change("unit", "new version", "7.11")]
    assert [v.version for v in load_catalog(catalog).extension("unit").versions] == ["7.11", "7.10"]
    assert apply(catalog, [_imported("unit", "7.9")]) == [Change("unit", "new version", "7.9")]
    assert [v.version for v in load_catalog(catalog).extension("unit").versions] == \
        ["7.11", "7.10", "7.9"]


def test_an_entry_that_would_break_the_catalog_is_left_out_with_the_reason(tmp_path: Path) -> None:
    catalog = tmp_path / "extensions.yaml"
    shutil.copy(REPO / "extensions.yaml", catalog)
    shutil.copytree(REPO / "patches", tmp_path / "patches")
    before = catalog.read_text()
    [bad, good] = apply(catalog, [_imported("bad", "1.0", license=""),
                                   _imported("good", "1.0")])
    assert bad.action == "invalid" and f"{catalog}: /extensions/bad/license" in bad.reason
    assert good == Change("good", "added", "1.0")  # one bad entry does not hold the others back
    assert catalog.read_text().startswith(before) and "bad:" not in catalog.read_text()
    assert not list(tmp_path.glob(".import-*"))
    assert load_catalog(catalog).extension("good")


class _ExcerptIndexes:
    """The private apt's index files, served from the excerpts kept as test data (one text per
    suite, as apt keeps one index file per suite)."""

    def __init__(self) -> None:
        self.texts: dict[tuple[str, str], str] = {}
        for kind in ("Sources", "Packages"):
            for chunk in (DATA / f"{kind}.excerpt").read_text().split("\n\n"):
                head, _, body = chunk.partition("\n")
                suite = head.removeprefix("# suite: ")
                self.texts[(kind, suite)] = self.texts.get((kind, suite), "") + body + "\n\n"

    def indexes(self, kind: str) -> list[tuple[str, Path]]:
        return [(suite, Path(f"{kind}/{suite}")) for k, suite in self.texts if k == kind]

    def read_index(self, path: Path) -> str:
        return self.texts[(path.parent.name, path.name)]


def test_check_finds_the_newer_upstream_release_in_sid(tmp_path: Path) -> None:
    archive = Archive(_ExcerptIndexes())
    found = {o.name: o for o in outdated(load_catalog(REPO / "extensions.yaml"), archive)}
    # The catalog takes TimescaleDB from trixie (2.19.3+dfsg-1+deb13u1); sid has 2.31.0.
    assert found["timescaledb"].spec == "timescaledb=2.31.0+dfsg-1"
    assert found["timescaledb"].suite == "sid"
    assert "pg_repack" not in found  # 1.5.3-1 is the archive's newest


def test_archive_lookups_by_name(tmp_path: Path) -> None:
    archive = Archive(_ExcerptIndexes())
    assert [r.version for r in archive.sources("pg-repack")][:2] == ["1.5.3-1", "1.5.2-1"]
    assert archive.synopsis(["postgresql-19-repack", "postgresql-18-repack"]).startswith(
        "reorganize tables")
    assert {r.package for r in archive.extension_sources()} == {"pg-repack", "pgsphere",
                                                                 "timescaledb"}
    assert archive.newest_postgres_major() == 18  # postgresql-18 in sid, postgresql-17 in trixie


def _importer(tmp_path: Path, licenses: dict[str, str] | None = None) -> DebianImporter:
    return DebianImporter(Archive(_ExcerptIndexes()), None, tmp_path,  # type: ignore[arg-type]
                          licenses=licenses)


def test_a_licence_not_machine_readable_is_refused_naming_the_file_and_what_to_give(
        tmp_path: Path) -> None:
    record = _records("pg-repack")[0]
    copyright_file = {"copyright": (DATA / "copyright.postgresql-18-repack").read_text()}
    with pytest.raises(ImporterError, match=r"debian/copyright of pg-repack 1\.5\.3-1 is not "
                       r"machine-readable.*import it again with --license SPDX-EXPRESSION"):
        _importer(tmp_path)._license(record, copyright_file, "pg_repack", "")
    # what a person read, given once...
    expression, source = _importer(tmp_path)._license(record, copyright_file, "pg_repack",
                                                      "BSD-3-Clause")
    assert expression == "BSD-3-Clause" and source.startswith("read by a person (--license)")
    # ...and kept from the catalog's entry when a later version is imported
    expression, source = _importer(tmp_path, {"pg_repack": "BSD-3-Clause"})._license(
        record, copyright_file, "pg_repack", "")
    assert expression == "BSD-3-Clause" and source.startswith("the catalog's entry")


def test_a_licence_the_copyright_file_states_wins_and_a_different_one_given_is_refused(
        tmp_path: Path) -> None:
    record = _records("pgsphere")[0]
    copyright_file = {"copyright": (DATA / "copyright.postgresql-18-pgsphere").read_text()}
    stated = "BSD-3-Clause AND GPL-3.0-or-later"
    importer = _importer(tmp_path, {"pgsphere": "PostgreSQL"})
    assert importer._license(record, copyright_file, "pgsphere", "")[0] == stated
    assert importer._license(record, copyright_file, "pgsphere", stated)[0] == stated
    with pytest.raises(ImporterError, match="--license 'MIT', but debian/copyright of pgsphere"):
        importer._license(record, copyright_file, "pgsphere", "MIT")


@pytest.mark.parametrize(("given", "expected"), [
    ("bsd-3-clause", "BSD-3-Clause"),  # SPDX's spelling
    ("GPL-2.0+ OR Artistic-1.0", "GPL-2.0-or-later OR Artistic-1.0"),
    ("LicenseRef-pgpcre", "LicenseRef-pgpcre"),
    ("Foo-1", "Foo-1: not an SPDX licence identifier"),
    ("MIT AND", "not an SPDX expression"),
])
def test_a_licence_given_on_the_command_line_must_be_spdx(given: str, expected: str) -> None:
    if "SPDX" in expected:
        with pytest.raises(UsageError, match=expected):
            spdx_expression(given)
    else:
        assert spdx_expression(given) == expected


def test_a_required_extension_becomes_the_entry_that_provides_it(tmp_path: Path) -> None:
    # pgq-node's control file: requires = 'pgq'; the catalog's pgq entry provides that SQL name
    tree = inspect(_tarball(tmp_path, {
        "Makefile": "EXTENSION = pgq_node\ninclude $(PGXS)\n",
        "pgq_node.control": "default_version = '3.5'\nrequires = 'pgq, plpgsql'\n",
    }))
    assert tree.controls[0].requires == ("pgq", "plpgsql")
    importer = DebianImporter(Archive(_ExcerptIndexes()), None, tmp_path,  # type: ignore[arg-type]
                              provides={"pgq": "pgq", "postgis": "postgis"})
    # plpgsql comes with PostgreSQL: no entry provides it, and the importer says so
    assert importer._required(tree) == (["pgq"], ["plpgsql"])
