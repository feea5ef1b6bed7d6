"""A catalog entry from a Debian source package: pinned from the signed index, read from its files.

The version and the sha256 of the upstream tarball come from the archive's ``Sources`` index, so
pinning needs no download. What the entry says about the extension is read from the files: the
build system, SQL names and preload need from the upstream tarball, the licence from a
machine-readable ``debian/copyright`` (from the Debian tarball, else the binary package's copy),
the supported releases from ``debian/pgversions``. What cannot be read is reported, never made up.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from monogres_oci.attest.deb_license import upstream_license
from monogres_oci.build.fetch import Fetcher
from monogres_oci.catalog.model import Origin, Source
from monogres_oci.debian.archive import archive_mirror
from monogres_oci.errors import FetchError, ImporterError
from monogres_oci.importer.archive import (
    Archive,
    SourceRecord,
    first_alternatives,
    package_name,
)
from monogres_oci.importer.detect import SourceTree, inspect
from monogres_oci.importer.versions import upstream
from monogres_oci.runner import run

# Build-Depends that are Debian's packaging tools or PostgreSQL itself (the married build provides
# Postgres; the distro's toolchain the compilers). Prefixes end with "-".
_NOT_BUILD_PACKAGES = ("debhelper", "debhelper-compat", "dh-", "dpkg-dev", "quilt", "cdbs",
                       "postgresql-", "postgresql", "libpq-dev", "libpq5", "architecture-is-",
                       "build-essential", "pkgconf", "pkg-config",
                       # documentation toolchains: Debian builds the manuals, an image ships none
                       "docbook", "docbook-", "fop", "xsltproc", "libxml2-utils", "asciidoc",
                       "asciidoctor", "pandoc", "python3-sphinx", "sphinx-", "texlive-",
                       "doxygen", "ruby-ronn", "help2man")


@dataclass(frozen=True)
class Finding:
    """One catalog key the importer set (or could not), and from what."""

    key: str
    value: str
    source: str
    detected: bool = False  # inferred from code: a person should confirm it


@dataclass(frozen=True)
class Imported:
    """A catalog entry for one source package version, with how each key was decided."""

    name: str
    package: str
    debian_version: str
    entry: dict[str, Any]
    findings: tuple[Finding, ...]
    undecided: tuple[str, ...] = field(default=())


def catalog_name(package: str, sql_names: Sequence[str]) -> str:
    """The catalog key: the source package without Debian's ``postgresql-`` prefix and release
    suffix (``pgaudit-18``, ``pgaudit-1.7``), spelled as its SQL name when it is one
    (``pg-repack`` -> ``pg_repack``)."""
    base = re.sub(r"-\d+(\.\d+)*$", "", package.removeprefix("postgresql-"))
    for name in sql_names:
        if name.replace("_", "-") == base:
            return name
    return base


def module_names(tree: SourceTree) -> list[str]:
    """The libraries of a module without a control file (a PGXS Makefile's MODULES or
    MODULE_big: loaded with LOAD or shared_preload_libraries, carried as runtime.modules); none
    for an extension with control files; ImporterError when the tree holds neither."""
    if tree.sql_names:
        return []
    if tree.modules and tree.build_system == "pgxs":
        return [m.rsplit("/", 1)[-1] for m in tree.modules]  # MODULES may name src/x
    raise ImporterError("no .control file, EXTENSION, PostgreSQL_add_extension() or PGXS "
                        "MODULES in the source: a client or tool, not an extension")


def build_packages(build_depends: str) -> list[str]:
    """The Build-Depends an extension build needs beyond Postgres and the toolchain."""
    out: list[str] = []
    for alternative in first_alternatives(build_depends):
        profiles = re.findall(r"<([^>]*)>", alternative)
        # A dependency only for a build profile (<pkg.postgresql.32-bit>, <cross>) is not ours;
        # one left out under a profile (<!nocheck>: the test suite) is.
        if profiles and all(not p.strip().startswith("!") for p in profiles):
            continue
        name = package_name(alternative)
        if any(name == d or (d.endswith("-") and name.startswith(d)) for d in _NOT_BUILD_PACKAGES):
            continue
        if name not in out:
            out.append(name)
    return out


def pg_range(pgversions: str) -> str:
    """``debian/pgversions`` (``13+``, ``all``, a list of majors) as a catalog range."""
    lines = [ln.split("#", 1)[0].strip() for ln in pgversions.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or lines == ["all"]:
        return ""
    plus = [ln[:-1] for ln in lines if ln.endswith("+")]
    if plus:
        return f">={min(plus, key=_major)}"
    majors = sorted({ln for ln in lines if re.fullmatch(r"\d+(\.\d+)?", ln)}, key=_major)
    if not majors:
        return ""
    return f">={majors[0]},<={majors[-1]}" if len(majors) > 1 else majors[0]


def _binaries_range(majors: Sequence[int], newest: int) -> str:
    """The range of the majors Debian builds binaries for: open above when the newest major of
    the archive is among them, closed otherwise (pgaudit-1.7 is built for 15 alone: ``15``)."""
    if not majors:
        return ""
    if majors[-1] >= newest:
        return f">={majors[0]}"
    return str(majors[0]) if majors[0] == majors[-1] else f">={majors[0]},<={majors[-1]}"


def _major(text: str) -> float:
    return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else 0.0


class DebianImporter:
    """Turns source package names into catalog entries."""

    def __init__(self, archive: Archive, fetcher: Fetcher, work: Path,
                 progress: Callable[[str], None] = lambda _: None,
                 licenses: Mapping[str, str] | None = None,
                 provides: Mapping[str, str] | None = None) -> None:
        self.archive = archive
        self.fetcher = fetcher
        self.work = work
        self.progress = progress
        # The catalog's licences by extension name: what a person set for an entry whose
        # debian/copyright does not say it in SPDX terms, kept when a new version is imported.
        self.licenses = dict(licenses or {})
        # Which catalog entry provides each SQL name: a control file's `requires` becomes
        # runtime.requires (the images mounted beside it). Entries imported here join it.
        self.provides = dict(provides or {})

    def _required(self, tree: SourceTree) -> tuple[list[str], list[str]]:
        """(catalog entries, SQL names no entry provides) that the control files require."""
        own = set(tree.sql_names)
        wanted = dict.fromkeys(r for c in tree.controls for r in c.requires if r not in own)
        entries = [self.provides[r] for r in wanted if r in self.provides]
        return list(dict.fromkeys(entries)), [r for r in wanted if r not in self.provides]

    def candidates(self, spec: str) -> list[SourceRecord]:
        """The archive's records for ``NAME=VERSION``, or for ``NAME``: each version, newest first."""
        package, _, version = spec.partition("=")
        records = self.archive.sources(package)
        if not records:
            raise ImporterError(f"{package}: no such source package in the archive's suites "
                                f"(apt-cache showsrc {package})")
        if version:
            match = [r for r in records if r.version == version]
            if not match:
                have = ", ".join(dict.fromkeys(r.version for r in records))
                raise ImporterError(f"{package}: no version {version} in the archive "
                                    f"(it has {have})")
            return match[:1]
        return list({r.version: r for r in reversed(records)}.values())[::-1]

    def import_spec(self, spec: str, distro_toolchain: Sequence[str] = (),
                    license_read: str = "") -> Imported:
        """The entry for ``NAME[=VERSION]``: without a version, the newest whose upstream tarball
        downloads here (the others are named in what was not decided). ``license_read``: the
        SPDX expression a person read in the package's copyright file (see ``_license``)."""
        unreachable: list[str] = []
        for record in self.candidates(spec):
            try:
                item = self.import_record(record, distro_toolchain, license_read)
            except FetchError as exc:
                unreachable.append(f"{record.version} ({' '.join(str(exc).split())[:120]})")
                continue
            if unreachable:
                item = replace(item, undecided=(*item.undecided, "newer versions whose tarball "
                                                "does not download here: " + "; ".join(unreachable)))
            return item
        raise ImporterError(f"{spec}: source unreachable: no version's upstream tarball downloads "
                            f"here: {'; '.join(unreachable)}")

    def import_record(self, record: SourceRecord, distro_toolchain: Sequence[str] = (),
                      license_read: str = "") -> Imported:
        orig = record.orig
        if orig is None:
            raise ImporterError(f"{record.package} {record.version}: a native Debian package "
                                "(no .orig tarball): not an upstream extension")
        if not record.builds_extension:
            raise ImporterError(f"{record.package} {record.version}: does not build-depend on "
                                "postgresql-server-dev-all or postgresql-all")
        source = Source(file=orig.name, sha256=orig.sha256, origins=(
            Origin(debian_package=f"{record.package}={record.version}", debian_file=orig.name),))
        self.progress(f"import {record.package} {record.version}: reading {orig.name}")
        tarball = self.fetcher.fetch(source)
        tree = inspect(tarball)
        debian = self._debian_files(record)
        findings: list[Finding] = []
        undecided: list[str] = []
        try:
            modules = module_names(tree)
        except ImporterError as exc:
            raise ImporterError(f"{record.package} {record.version}: {exc}") from None
        name = catalog_name(record.package, tree.sql_names or modules)

        license_expr, license_from = self._license(record, debian, name, license_read)
        findings.append(Finding("license", license_expr, license_from))
        if not tree.build_system:
            raise ImporterError(f"{record.package} {record.version}: build system undecided: "
                                f"{tree.build_evidence}; add the entry by hand (build.system)")
        findings.append(Finding("build.system", tree.build_system, tree.build_evidence))
        undecided += tree.notes
        build: dict[str, Any] = {"system": tree.build_system}
        packages = [p for p in build_packages(record.build_depends) if p not in distro_toolchain]
        if packages:
            build["packages"] = packages
            findings.append(Finding("build.packages", " ".join(packages), "Build-Depends"))
        if tree.subdir != ".":
            build["subdir"] = tree.subdir

        description = self.archive.synopsis(_preferred(record.binaries))
        if not description:
            undecided.append("description: no binary package of it is in the Packages indexes")
            description = f"PostgreSQL extension {name} (Debian source package {record.package})"
        findings.append(Finding("description", description, "binary package synopsis"))
        homepage = record.homepage or record.vcs_browser or \
            f"https://tracker.debian.org/pkg/{record.package}"
        entry: dict[str, Any] = {
            "sql_name": tree.sql_names[0] if len(tree.sql_names) == 1 else tree.sql_names,
            "description": description[:200],
            "homepage": homepage,
            "license": license_expr,
            "build": build,
        }
        runtime: dict[str, Any] = {}
        if modules:
            del entry["sql_name"]
            runtime["modules"] = modules
            findings.append(Finding("runtime.modules", " ".join(modules),
                                    "the Makefile's MODULES/MODULE_big, no control file"))
        module = _preload_module(tree)
        if module:
            runtime["shared_preload_libraries"] = [module]
            findings.append(Finding("runtime.shared_preload_libraries", module,
                                    "; ".join(tree.preload_evidence), detected=True))
        required, unknown = self._required(tree)
        if required:
            runtime["requires"] = required
            findings.append(Finding("runtime.requires", " ".join(required),
                                    "the control file's requires"))
        undecided += [f"runtime.requires: its control file requires {sql}, which no catalog "
                      "entry provides: nothing to add if it comes with PostgreSQL (contrib); "
                      "otherwise import that first" for sql in unknown]
        if runtime:
            entry["runtime"] = runtime

        pgversions = debian.get("pgversions")
        postgres = pg_range(pgversions) if pgversions is not None else ""
        if pgversions is None:
            majors = sorted({int(m) for b in self._all_binaries(record.package)
                             for m in re.findall(r"^postgresql-(\d+)-", b)})
            postgres = _binaries_range(majors, self.archive.newest_postgres_major())
            undecided.append("postgres: debian/pgversions could not be read; the range is the "
                             f"releases Debian builds it for ({postgres or 'none'}), open above "
                             "when it builds for the newest one")
        evidence = "debian/pgversions" if pgversions is not None else "binary packages"
        if not postgres:
            evidence += " (no lower bound given; >=13 written)"
        findings.append(Finding("postgres", postgres or ">=13", evidence))
        version: dict[str, Any] = {
            "version": upstream(record.version),
            "postgres": postgres or ">=13",
            "source": {"file": orig.name, "sha256": orig.sha256, "origins": [
                {"debian": {"package": f"{record.package}={record.version}", "file": orig.name}}]},
        }
        sql_version = tree.controls[0].default_version if tree.controls else ""
        if sql_version and sql_version != version["version"]:
            version["sql_version"] = sql_version
        entry["versions"] = [version]
        self.provides.update({sql: name for sql in tree.sql_names})
        return Imported(name=name, package=record.package, debian_version=record.version,
                        entry=entry, findings=tuple(findings), undecided=tuple(undecided))

    def _all_binaries(self, package: str) -> list[str]:
        return [b for r in self.archive.sources(package) for b in r.binaries]

    def _debian_files(self, record: SourceRecord) -> dict[str, str]:
        """copyright, pgversions and control of the Debian tarball, when it downloads here."""
        tar_file = record.debian_tarball
        if tar_file is None:
            return {}
        url = record.uri(archive_mirror(), tar_file)
        try:
            path = self.fetcher.fetch(Source(file=tar_file.name, sha256=tar_file.sha256,
                                             origins=(Origin(url=url),)))
        except FetchError as exc:
            self.progress(f"import {record.package}: {tar_file.name} does not download here: "
                          f"{' '.join(str(exc).split())[:160]}")
            return {}
        found: dict[str, str] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                base = member.name.removeprefix("./")
                if member.isfile() and base in ("debian/copyright", "debian/pgversions",
                                                 "debian/control"):
                    handle = tar.extractfile(member)
                    if handle:
                        found[base.removeprefix("debian/")] = handle.read().decode(errors="replace")
        return found

    def _license(self, record: SourceRecord, debian: dict[str, str], name: str,
                 license_read: str) -> tuple[str, str]:
        """The SPDX expression and where it comes from: a machine-readable copyright file; else
        what a person read (``license_read``, or the catalog's entry of ``name`` when it has
        one); else ImporterError saying which file to read."""
        text, where = debian.get("copyright"), f"debian/copyright of {record.package} {record.version}"
        if text is None:
            text, where = self._binary_copyright(record)
        expression = upstream_license(text) if text is not None else None
        if expression is not None and "LicenseRef-" not in expression:
            if license_read and license_read != expression:
                raise ImporterError(f"{record.package} {record.version}: --license "
                                    f"{license_read!r}, but {where} says {expression!r}: drop "
                                    "--license, or report the copyright file to Debian")
            return expression, where
        if text is None:
            why = ("neither its Debian tarball nor a binary package downloads here, so "
                   "debian/copyright cannot be read; read the upstream tarball's LICENSE/COPYING")
        elif expression is None:
            why = f"{where} is not machine-readable (no DEP-5 Format: line); read it"
        else:
            why = f"{where} names a licence without an SPDX identifier ({expression}); read it"
        if license_read:
            return license_read, f"read by a person (--license): {why.rsplit(';', 1)[0]}"
        if name in self.licenses:
            return self.licenses[name], f"the catalog's entry (set by a person): {why.rsplit(';', 1)[0]}"
        raise ImporterError(f"{record.package} {record.version}: licence undecided: {why}, then "
                            f"import it again with --license SPDX-EXPRESSION")

    def _binary_copyright(self, record: SourceRecord) -> tuple[str | None, str]:
        for binary in _preferred(record.binaries):
            deb = self.archive.binary(binary)
            if deb is None:
                continue
            try:
                path = self.fetcher.fetch(deb)
            except FetchError:
                continue
            with tempfile.TemporaryDirectory(dir=self.work) as tmp:
                run(["dpkg-deb", "-x", str(path), tmp], what=f"dpkg-deb -x {deb.file}")
                copyright_file = Path(tmp) / "usr/share/doc" / binary / "copyright"
                if copyright_file.is_file():
                    return copyright_file.read_text(errors="replace"), \
                        f"/usr/share/doc/{binary}/copyright of {deb.file}"
        return None, ""


def _preferred(binaries: Sequence[str]) -> list[str]:
    """Binary packages, the newest Postgres release's first (its description is the current one)."""
    def key(name: str) -> tuple[int, str]:
        m = re.match(r"postgresql-(\d+)-", name)
        return (-int(m.group(1)) if m else 0, name)
    return sorted(binaries, key=key)


def _preload_module(tree: SourceTree) -> str:
    """The library to preload, when _PG_init shows it must be; "" otherwise."""
    if not tree.preload_evidence:
        return ""
    named = [c.module for c in tree.controls if c.module]
    if named:
        return named[0]
    if tree.modules:
        return tree.modules[0].rsplit("/", 1)[-1]  # MODULES may name src/x
    return tree.sql_names[0]
