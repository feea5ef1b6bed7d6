"""What an extension's source tree says about itself: build system, SQL names, preload, tests.

Read from the upstream tarball without unpacking it. Each finding carries the file it came from,
so the importer can say why it decided, and what it could not decide.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from monogres_oci.errors import ImporterError

_SKIP_DIRS = {"test", "tests", "expected", "sql", "regress", "debian", "doc", "docs", "contrib"}
# What makes a module need shared_preload_libraries: it reserves shared memory or starts a
# background worker from _PG_init, or refuses to load otherwise. A session LOAD cannot do these.
_PRELOAD_MARKERS = (
    "process_shared_preload_libraries_in_progress",
    "RegisterBackgroundWorker(",
    "RequestAddinShmemSpace",
    "shmem_request_hook",
)
_TEXT_LIMIT = 4 << 20


@dataclass(frozen=True)
class ControlFile:
    """One ``.control`` (or ``.control.in``) file."""

    path: str
    sql_name: str
    default_version: str
    module: str  # the library its module_pathname names, or ""
    requires: tuple[str, ...] = ()  # the SQL names of the extensions it requires


@dataclass(frozen=True)
class SourceTree:
    """The findings, relative to the tarball's top directory."""

    build_system: str  # pgxs | cmake | configure | autoreconf | "" (undecided)
    subdir: str
    build_evidence: str
    controls: tuple[ControlFile, ...]
    modules: tuple[str, ...]
    preload_evidence: tuple[str, ...]  # "file:line: marker"
    regress: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def sql_names(self) -> list[str]:
        return list(dict.fromkeys(c.sql_name for c in self.controls))


def _members(path: Path) -> Iterator[tuple[PurePosixPath, tarfile.TarFile, tarfile.TarInfo]]:
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    yield PurePosixPath(member.name), tar, member
    except (tarfile.TarError, OSError) as exc:
        raise ImporterError(f"{path}: not a readable tarball ({exc})") from None


def _text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    if member.size > _TEXT_LIMIT:
        return ""
    handle = tar.extractfile(member)
    return handle.read().decode("utf-8", errors="replace") if handle else ""


def _make_var(text: str, name: str) -> list[str]:
    """The words of a Makefile variable (``NAME = a b``, ``NAME += c``, continuation lines)."""
    joined = text.replace("\\\n", " ")
    words: list[str] = []
    for m in re.finditer(rf"^\s*{name}\s*[:+?]?=\s*(.*)$", joined, re.MULTILINE):
        if "$(" in m.group(1):
            continue  # computed by make (semver's $(shell grep ... META.json)): not readable here
        words += [w for w in m.group(1).split() if not w.startswith("$")]
    return words


def _control(path: str, text: str) -> ControlFile:
    # NAME.control, or a template a build fills in: NAME.control.in, NAME.in.control (MobilityDB)
    name = PurePosixPath(path).name
    name = next(name.removesuffix(s) for s in (".control.in", ".in.control", ".control")
                if name.endswith(s))
    values = dict(re.findall(r"^\s*(\w+)\s*=\s*'?([^'\n]*)'?\s*$", text, re.MULTILINE))
    module = values.get("module_pathname", "")
    module = module.removeprefix("$libdir/") if "@" not in module else ""
    version = values.get("default_version", "")
    # A template's placeholder (@VERSION@, REPACK_VERSION) is no version.
    version = version if re.fullmatch(r"[0-9][A-Za-z0-9._+~-]*", version) else ""
    requires = tuple(r for r in re.split(r"[\s,]+", values.get("requires", "")) if r)
    return ControlFile(path=path, sql_name=name, default_version=version, module=module,
                       requires=requires)


def inspect(tarball: Path) -> SourceTree:
    """Read ``tarball`` (any compression tarfile knows) and report what it holds."""
    top: str | None = None
    files: dict[str, str] = {}  # relative path -> text, for the files that matter
    c_files: dict[str, str] = {}
    for member_path, tar, member in _members(tarball):
        parts = member_path.parts
        if top is None:
            top = parts[0] if len(parts) > 1 else ""
        rel = str(PurePosixPath(*parts[1:])) if top and parts[0] == top and len(parts) > 1 \
            else str(member_path)
        base = PurePosixPath(rel).name
        if base in ("Makefile", "GNUmakefile", "CMakeLists.txt", "configure", "configure.ac") \
                or base.endswith((".control", ".control.in", ".mk")) \
                or base.lower().startswith("readme"):
            files[rel] = _text(tar, member)
        elif base.endswith(".c"):
            text = _text(tar, member)
            if "_PG_init" in text:
                c_files[rel] = text

    system, subdir, evidence = _build_system(files)
    # Test and documentation directories hold no extension of the build, unless a build file
    # names the file (MobilityDB's CMake configures mobilitydb/sql/mobilitydb.in.control).
    build_text = "\n".join(t for p, t in files.items()
                           if PurePosixPath(p).name in ("CMakeLists.txt", "Makefile"))
    wanted = {p: t for p, t in files.items()
              if not _SKIP_DIRS.intersection(PurePosixPath(p).parts[:-1])
              or PurePosixPath(p).name in build_text}
    # NAME--VERSION.control is a secondary control file of NAME's update scripts, not an
    # extension of its own (pgnodemx ships pg_proctab--0.0.10-compat.control).
    controls = _required_first(sorted((_control(p, t) for p, t in wanted.items()
                                       if p.endswith((".control", ".control.in"))
                                       and "--" not in PurePosixPath(p).name),
                                      key=lambda c: (c.path.count("/"), c.path)))
    makefile = files.get(f"{subdir}/Makefile" if subdir != "." else "Makefile", "")
    notes: list[str] = []
    if system == "pgxs":
        controls, unbuilt = _built_by(controls, subdir, makefile)
        notes += [f"{c.path}: not an extension of this build (the Makefile that builds it does "
                  "not name its directory, so `make install` never reaches it)" for c in unbuilt]
    # Control files a build generates: PGXS's EXTENSION, CMake's PostgreSQL_add_extension().
    generated = [(f"{subdir}/Makefile", n) for n in _make_var(makefile, "EXTENSION")
                 if "--" not in n]
    generated += [(p, n) for p, t in sorted(wanted.items()) if p.endswith("CMakeLists.txt")
                  for n in _cmake_extensions(t)]
    known = {c.sql_name for c in controls}
    for where, sql_name in generated:
        if sql_name not in known:
            known.add(sql_name)
            controls.append(ControlFile(path=where, sql_name=sql_name, default_version="",
                                        module=""))
    modules = tuple(dict.fromkeys(_make_var(makefile, "MODULE_big") + _make_var(makefile, "MODULES")))
    preload = []
    for path, text in sorted(c_files.items()):
        for number, line in enumerate(text.splitlines(), 1):
            marker = next((m for m in _PRELOAD_MARKERS if m in line), None)
            if marker and not line.lstrip().startswith(("//", "/*", "*")):
                preload.append(f"{path}:{number}: {marker.rstrip('(')}")
                break
    regress = bool(_make_var(makefile, "REGRESS"))
    return SourceTree(build_system=system, subdir=subdir, build_evidence=evidence,
                      controls=tuple(controls), modules=modules, preload_evidence=tuple(preload),
                      regress=regress, notes=tuple(notes))


def _required_first(controls: list[ControlFile]) -> list[ControlFile]:
    """Each control file after those of the tree it requires (the main extension first:
    MobilityDB's mobilitydb before mobilitydb_datagen, which requires it); otherwise in order."""
    ordered: list[ControlFile] = []
    pending = list(controls)
    while pending:
        names = {c.sql_name for c in pending}
        ready = [c for c in pending if not names.intersection(set(c.requires) - {c.sql_name})]
        ready = ready or pending  # a cycle: keep the order it had
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def _built_by(controls: list[ControlFile], subdir: str,
              makefile: str) -> tuple[list[ControlFile], list[ControlFile]]:
    """(built, not built): a control file in a directory below the PGXS build's is installed
    only if that Makefile names the directory (SUBDIRS, a recursive $(MAKE) -C); pllua 2.0.12's
    hstore/ has its own Makefile that the top one never runs."""
    words = set(re.findall(r"[A-Za-z0-9_.+-]+", makefile))
    built: list[ControlFile] = []
    unbuilt: list[ControlFile] = []
    for control in controls:
        rel = PurePosixPath(control.path)
        if subdir != ".":
            if not rel.is_relative_to(subdir):
                built.append(control)  # outside the build directory: not this rule's to judge
                continue
            rel = rel.relative_to(subdir)
        below = rel.parts[:-1]
        (built if not below or below[0] in words else unbuilt).append(control)
    return built, unbuilt


def _cmake_extensions(text: str) -> list[str]:
    """The names ``PostgreSQL_add_extension(LIBRARY [NAME name] ...)`` calls give (the library's,
    unless NAME says otherwise): the convention of the FindPostgreSQL modules CMake extensions
    carry."""
    names = []
    for m in re.finditer(r"PostgreSQL_add_extension\(\s*([A-Za-z0-9_]+)([^)]*)\)", text):
        named = re.search(r"\bNAME\s+([A-Za-z0-9_]+)", m.group(2))
        names.append(named.group(1) if named else m.group(1))
    return names


def _with_includes(files: dict[str, str], name: str) -> str:
    """A top-level Makefile's text and that of the files of the tarball it includes by a plain
    relative path (pgq-node includes mk/common-pgxs.mk, which includes PGXS)."""
    text = files.get(name, "")
    included = re.findall(r"^-?include\s+([A-Za-z0-9_./-]+)\s*$", text, re.MULTILINE)
    return "\n".join([text, *(files.get(path, "") for path in included)])


def _build_system(files: dict[str, str]) -> tuple[str, str, str]:
    """(system, subdir, why): a PGXS Makefile at the top, else CMake, else configure, else the one
    PGXS Makefile below: one directory down, or deeper beside a control file (pg_auto_failover's
    src/monitor, under a top Makefile of its own that also builds a client)."""
    for name in ("Makefile", "GNUmakefile"):
        text = _with_includes(files, name)
        if "PGXS" in text or "PG_CONFIG" in text:
            # A top Makefile that recurses into directories which include PGXS (pg_repack's)
            # names PG_CONFIG to pass it down.
            return "pgxs", ".", f"{name} uses {'PGXS' if 'PGXS' in text else 'PG_CONFIG'}"
    if "CMakeLists.txt" in files:
        return "cmake", ".", "CMakeLists.txt at the top"
    if "configure" in files:
        return "configure", ".", "configure script at the top"
    if "configure.ac" in files:
        # Before a PGXS Makefile below: it may include what configure writes (pointcloud's
        # config.mk), and the release ships no configure script to write it.
        return "autoreconf", ".", "configure.ac at the top but no configure script"
    controls = {str(PurePosixPath(p).parent) for p in files
                if p.endswith((".control", ".control.in"))}
    below = sorted(p for p, t in files.items()
                   if PurePosixPath(p).name in ("Makefile", "GNUmakefile") and "PGXS" in t
                   and not _SKIP_DIRS.intersection(PurePosixPath(p).parts[:-1])
                   and (p.count("/") == 1 or str(PurePosixPath(p).parent) in controls))
    if len(below) == 1:
        subdir = str(PurePosixPath(below[0]).parent)
        return "pgxs", subdir, f"{below[0]} includes PGXS"
    return "", ".", "no PGXS Makefile, CMakeLists.txt or configure script found"
