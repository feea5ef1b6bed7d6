"""No install or build path in what ships: check an extension's files, rewrite what would break.

An extension image is mounted at ``/extensions/<name>``, not at the Postgres prefix it was built
for. A shipped text file that names a file *of this image* by its path under the prefix
(``COPY ... FROM '/usr/lib/postgresql/18/share/extension/unit_prefixes.data'``) would break, so
the path is rewritten to the mount point, the same way in every extension; each rewrite is
recorded. A path under the prefix that names a file of PostgreSQL itself works as it is (the
runnable image has that tree). Anything else fails the build, naming the file, the line and the
catalog key that would fix it:

* a path under the prefix that neither this image nor PostgreSQL ships;
* a build path (``/build/src``, ``/build/cmake``) in any shipped file, text or binary;
* ``$libdir/NAME`` (SQL and control files) naming no library of the image or PostgreSQL, or
  ``$libdir/DIR/NAME``, which PostgreSQL 18 does not look up in ``dynamic_library_path``.

PostgreSQL 18 strips ``$libdir/`` from a function's library (``AS '$libdir/postgis-3'``) and
searches ``dynamic_library_path``, but not from ``LOAD``: an update script's
``LOAD '$libdir/postgis-3'`` would look in the Postgres tree and fail ``ALTER EXTENSION ...
UPDATE``. It is rewritten to ``LOAD 'postgis-3'``, which every release searches for in
``dynamic_library_path`` (``$libdir`` first, so it still works when copied into the tree).
``LOAD 'MODULE_PATHNAME'`` (pg_comparator) becomes the same when the control file's
``module_pathname`` is ``$libdir/NAME``.

The licence texts of bundled Debian packages (``licenses/``) ship as Debian wrote them, unread
(boost's copyright file names a /build/src path of its own); a control file's
``module_pathname`` is checked only when a script of that extension says ``MODULE_PATHNAME``.

Pure: it reads the files it is given and returns what to write; the packager writes the layer.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.errors import BuildError

BUILD_PATHS = (b"/build/src/", b"/build/cmake/")
_LIBDIR = re.compile(r"\$libdir/([A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*)")
_LOAD_LIBDIR = re.compile(r"(\bLOAD\s+')\$libdir/([A-Za-z0-9_.+-]+)'", re.IGNORECASE)
# LOAD 'MODULE_PATHNAME': CREATE EXTENSION puts the control file's module_pathname there.
_LOAD_MODULE = re.compile(r"(\bLOAD\s+')MODULE_PATHNAME'", re.IGNORECASE)
_MODULE_PATHNAME = re.compile(r"^\s*module_pathname\s*=\s*'\$libdir/([A-Za-z0-9_.+-]+)'",
                              re.MULTILINE)
_PATH_END = "\\s'\"`;,()<>|"
SNIFF = 8192


@dataclass(frozen=True)
class Rewrite:
    """One absolute path rewritten from the Postgres prefix to the image's mount point."""

    path: str  # the shipped file, as the image holds it (share/extension/unit--7.sql)
    line: int
    before: str
    after: str


@dataclass(frozen=True)
class Relocated:
    """The outcome for one image: what was rewritten, and the new contents of those files."""

    rewrites: tuple[Rewrite, ...]
    contents: Mapping[str, bytes]  # image path -> rewritten bytes


def is_text(data: bytes) -> bool:
    """A file is text when its start holds no NUL byte and it is not an ELF object."""
    head = data[:SNIFF]
    return not head.startswith(b"\x7fELF") and b"\0" not in head


def relocate(files: Mapping[str, Path], *, prefix: str, mount: str, postgres_tree: Path,
             keep: Mapping[str, str], extension: str) -> Relocated:
    """Check the image's files (image path -> file on disk) and rewrite paths under ``prefix``
    that name the image's own files to ``mount``.

    ``postgres_tree`` is the Postgres install tree (the directory ``prefix`` names in it);
    ``keep`` maps file globs of the catalog's ``build.keep_paths`` to their reasons: such files
    are shipped as they are.
    """
    shipped = set(files)
    modules = _modules(files)
    # A control file's module_pathname matters only to scripts that say MODULE_PATHNAME
    # (pg_track_settings 2.x is SQL only, and its control still names a library).
    module_users = {_extension_of(p) for p, f in files.items()
                    if p.endswith(".sql") and b"MODULE_PATHNAME" in f.read_bytes()}
    problems: list[str] = []
    rewrites: list[Rewrite] = []
    contents: dict[str, bytes] = {}
    prefix_re = re.compile(re.escape(prefix) + f"(/[^{_PATH_END}]*)?")
    hint_keep = (f"or ship the file as it is with extensions.{extension}.build.keep_paths: "
                 "[{file: PATH, reason: ...}]")
    for path in sorted(files):
        if path.startswith("licenses/"):
            continue  # licence texts of bundled Debian packages, shipped as Debian wrote them
        data = files[path].read_bytes()
        kept = any(fnmatch.fnmatchcase(path, glob) for glob in keep)
        for marker in BUILD_PATHS:
            if marker in data and not kept:
                problems.append(f"{path}: holds the build path {marker.decode()} (the build "
                                f"leaked it; fix the build's flags in extensions.{extension}."
                                f"build, {hint_keep})")
        if not is_text(data) or kept:
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        lines = text.split("\n")
        changed = False
        for number, line in enumerate(lines, 1):
            new = line
            for match in prefix_re.finditer(line):
                rest = match.group(1) or ""
                inside = rest.lstrip("/")
                if rest.startswith(("/share/", "/lib/")) and inside in shipped:
                    after = mount + rest
                    rewrites.append(Rewrite(path, number, match.group(0), after))
                    new = new.replace(match.group(0), after, 1)
                elif not (postgres_tree / inside).exists():
                    problems.append(
                        f"{path}:{number}: names {match.group(0)}, which neither this image nor "
                        f"PostgreSQL ships (add it with extensions.{extension}.build.data, "
                        f"{hint_keep})")
            if path.endswith(".sql"):
                # LOAD of one of the image's libraries, by $libdir/NAME or MODULE_PATHNAME
                module = modules.get(_extension_of(path))
                loads = [(m, module) for m in _LOAD_MODULE.finditer(new) if module]
                loads += [(m, m.group(2)) for m in _LOAD_LIBDIR.finditer(new)]
                for match, name in loads:
                    if f"lib/{name}.so" in shipped or f"lib/{name}" in shipped:
                        after = f"{match.group(1)}{name}'"
                        rewrites.append(Rewrite(path, number, match.group(0), after))
                        new = new.replace(match.group(0), after, 1)
            unused_module = (path.endswith(".control") and "module_pathname" in line
                             and _extension_of(path) not in module_users)
            if path.endswith((".sql", ".control")) and not unused_module:
                for match in _LIBDIR.finditer(line):
                    problem = _libdir_problem(match.group(1), shipped, postgres_tree)
                    if problem:
                        problems.append(f"{path}:{number}: {match.group(0)}: {problem} "
                                        f"({hint_keep})")
            if new != line:
                lines[number - 1] = new
                changed = True
        if changed:
            contents[path] = "\n".join(lines).encode("utf-8", errors="surrogateescape")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise BuildError(f"{extension}: shipped files name paths that break when the image is "
                         f"mounted at {mount}:\n  {shown}{more}")
    return Relocated(tuple(rewrites), contents)


def _extension_of(path: str) -> str:
    """The extension a script or control file belongs to: share/extension/NAME--1.0.sql and
    share/extension/NAME.control -> NAME."""
    return path.rsplit("/", 1)[-1].split("--", 1)[0].removesuffix(".control")


def _modules(files: Mapping[str, Path]) -> dict[str, str]:
    """Each control file's ``module_pathname`` library, when it is ``$libdir/NAME``."""
    out = {}
    for path, file in files.items():
        # NAME.control; a secondary NAME--VERSION.control is not read here
        if (path.startswith("share/extension/") and path.endswith(".control")
                and "--" not in path.rsplit("/", 1)[-1]):
            match = _MODULE_PATHNAME.search(file.read_text(errors="replace"))
            if match:
                out[_extension_of(path)] = match.group(1)
    return out


def _libdir_problem(name: str, shipped: set[str], postgres_tree: Path) -> str:
    """Why ``$libdir/NAME`` would not load from the image volume; empty when it would."""
    if (postgres_tree / "lib" / name).exists() or (postgres_tree / "lib" / f"{name}.so").exists():
        return ""  # PostgreSQL's own library
    if "/" in name:
        return ("PostgreSQL 18 looks up $libdir/NAME in dynamic_library_path only when NAME has "
                "no directory; this one resolves to the Postgres tree, where the image is not")
    if f"lib/{name}" in shipped or f"lib/{name}.so" in shipped:
        return ""
    return "no such library in this image or in PostgreSQL"


def kept_files(files: Sequence[str], keep: Mapping[str, str]) -> list[str]:
    """The shipped files the catalog's keep_paths globs match (for the build record)."""
    return [f for f in files if any(fnmatch.fnmatchcase(f, glob) for glob in keep)]
