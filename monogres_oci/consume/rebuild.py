"""Rebuild published artifacts and compare them with what was published, digest by digest.

Three steps, data flowing one way: ``identify`` reads a published index's annotations and says
which catalog target made it; the caller plans and builds those targets from scratch (a fresh
build directory, BuildKit's cache off) into a new layout; ``compare`` then sets the rebuilt
index, manifests, configs and layers against the published ones. Where a layer differs, the two
tars are compared file by file, and ``diffoscope`` (when installed) explains each differing file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from monogres_oci.consume.identify import A, Published
from monogres_oci.errors import CommandError, VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import ANNOTATION_REF_NAME, Descriptor, Manifest
from monogres_oci.oci.parse import parse_manifest
from monogres_oci.oci.reference import split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.runner import run

DIFFOSCOPE_FILES = 5  # at most this many differing files are run through diffoscope
DIFFOSCOPE_LINES = 40  # lines of each diffoscope report kept in the result (all of it on disk)

@dataclass(frozen=True)
class Comparison:
    """One digest, published and rebuilt."""

    what: str  # "index", "linux/amd64 manifest", "linux/amd64 layer 1/3", ...
    published: str
    rebuilt: str

    @property
    def identical(self) -> bool:
        return self.published == self.rebuilt


@dataclass(frozen=True)
class FileDifference:
    """A file that differs between a published and a rebuilt layer."""

    layer: str
    path: str
    change: str  # "content", "metadata", "only in published", "only in rebuilt"
    detail: str = ""
    diffoscope: str = ""  # the head of diffoscope's report, when it ran


@dataclass(frozen=True)
class RebuildResult:
    """How one published artifact compares with its rebuild."""

    reference: str
    rebuilt_ref: str
    comparisons: tuple[Comparison, ...]
    files: tuple[FileDifference, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return bool(self.comparisons) and all(c.identical for c in self.comparisons)

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference, "rebuilt": self.rebuilt_ref, "identical": self.identical,
            "digests": [{"what": c.what, "published": c.published, "rebuilt": c.rebuilt,
                         "identical": c.identical} for c in self.comparisons],
            "files": [{"layer": f.layer, "path": f.path, "change": f.change, "detail": f.detail,
                       "diffoscope": f.diffoscope} for f in self.files],
            "notes": list(self.notes),
        }


def find_rebuilt(layout: Layout, published: Published) -> Descriptor:
    """The layout entry that is the rebuild of ``published``: same tag, else same identity."""
    refs = layout.refs()
    repo = published.local_repository
    if published.reference.tag and f"{repo}:{published.reference.tag}" in refs:
        return refs[f"{repo}:{published.reference.tag}"]
    wanted = dict(published.identity)
    for name, desc in refs.items():
        if split_ref_name(name)[0] != repo:
            continue
        notes = _manifest_annotations(layout, desc)
        if all(notes.get(k) == v for k, v in wanted.items()):
            return desc
    raise VerifyError(f"the rebuild made no {repo} artifact for {published.reference} "
                      "(was it built from another catalog?)")


def _manifest_annotations(layout: Layout, desc: Descriptor) -> dict[str, str]:
    index = layout.read_index(desc.digest)
    return dict(layout.read_manifest(index.manifests[0].digest).annotations) if index.manifests \
        else {}


def compare(
    client: RegistryClient,
    published: Published,
    layout: Layout,
    work_dir: Path,
    *,
    diffoscope: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> RebuildResult:
    """Compare one published artifact with its rebuild in ``layout``, down to files."""
    ref = published.reference
    local = find_rebuilt(layout, published)
    rebuilt_index = layout.read_index(local.digest)
    comparisons = [Comparison("index", published.digest, local.digest)]
    files: list[FileDifference] = []
    notes: list[str] = []
    mine = {str(d.platform): d for d in rebuilt_index.manifests if d.platform}
    for desc in published.index.manifests:
        platform = str(desc.platform) if desc.platform else "?"
        other = mine.get(platform)
        comparisons.append(Comparison(f"{platform} manifest", desc.digest,
                                      other.digest if other else "(not rebuilt)"))
        if other is None or other.digest == desc.digest:
            continue
        theirs = parse_manifest(*client.get_manifest(ref.repository, desc.digest)[:2])
        ours = layout.read_manifest(other.digest)
        notes.extend(_annotation_notes(platform, theirs, ours))
        comparisons.append(Comparison(f"{platform} config", theirs.config.digest,
                                      ours.config.digest))
        if theirs.config.digest != ours.config.digest:
            files.extend(_config_differences(
                platform, client.get_blob(ref.repository, theirs.config.digest),
                layout.read_blob(ours.config.digest)))
        total = max(len(theirs.layers), len(ours.layers))
        for i in range(total):
            a = theirs.layers[i] if i < len(theirs.layers) else None
            b = ours.layers[i] if i < len(ours.layers) else None
            what = f"{platform} layer {i + 1}/{total}"
            comparisons.append(Comparison(what, a.digest if a else "(none)",
                                          b.digest if b else "(none)"))
            if a is None or b is None or a.digest == b.digest:
                continue
            progress(f"{ref}: {what} differs; comparing its files")
            blob = work_dir / "published" / a.digest.replace(":", "-")
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                client.download_blob(ref.repository, a.digest, blob, a.size)
            files.extend(diff_layers(what, blob, layout.blob_path(b.digest),
                                     work_dir / "files" / a.digest[7:19],
                                     diffoscope=diffoscope))
    if published.input_digest:
        rebuilt_input = _manifest_annotations(layout, local).get(A + "input.digest", "")
        if rebuilt_input != published.input_digest:
            notes.append(
                f"the build inputs differ (published {published.input_digest[:19]}, rebuilt "
                f"{rebuilt_input[:19]}): the catalog, recipes, packages or base image are not the "
                "ones the artifact was built from, so differences are expected")
    return RebuildResult(str(ref), local.annotations[ANNOTATION_REF_NAME], tuple(comparisons),
                         tuple(files), tuple(notes))


def _annotation_notes(platform: str, theirs: Manifest, ours: Manifest) -> Iterator[str]:
    for key in sorted(set(theirs.annotations) | set(ours.annotations)):
        a, b = theirs.annotations.get(key), ours.annotations.get(key)
        if a != b:
            yield f"{platform} manifest annotation {key}: published {a!r}, rebuilt {b!r}"


def _config_differences(platform: str, theirs: bytes, ours: bytes) -> list[FileDifference]:
    """The config keys (flattened) whose values differ."""
    a, b = _flatten(json.loads(theirs)), _flatten(json.loads(ours))
    return [FileDifference(f"{platform} config", key, "content",
                           f"published {a.get(key)!r}, rebuilt {b.get(key)!r}")
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class _Entry:
    kind: str
    mode: int
    owner: tuple[int, int]
    mtime: int
    link: str
    sha256: str = ""  # of a regular file's content


def _entries(path: Path) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for m in tar:
            digest = ""
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
            kind = "file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym() \
                else "hardlink" if m.islnk() else "other"
            out[m.name] = _Entry(kind, m.mode, (m.uid, m.gid), int(m.mtime), m.linkname, digest)
    return out


def diff_layers(what: str, published: Path, rebuilt: Path, scratch: Path, *,
                diffoscope: bool = True) -> list[FileDifference]:
    """The files that differ between two gzip'd layer tars; diffoscope on differing contents."""
    a, b = _entries(published), _entries(rebuilt)
    out: list[FileDifference] = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None:
            out.append(FileDifference(what, name, "only in rebuilt"))
        elif y is None:
            out.append(FileDifference(what, name, "only in published"))
        elif x.sha256 != y.sha256 or x.link != y.link or x.kind != y.kind:
            out.append(FileDifference(what, name, "content",
                                      f"sha256 {x.sha256[:12]} vs {y.sha256[:12]}"
                                      if x.kind == "file" else f"{x.kind} {x.link!r} vs "
                                      f"{y.kind} {y.link!r}"))
        elif x != y:
            fields = [f for f in ("mode", "owner", "mtime")
                      if getattr(x, f) != getattr(y, f)]
            out.append(FileDifference(what, name, "metadata", ", ".join(
                f"{f} {getattr(x, f)!r} vs {getattr(y, f)!r}" for f in fields)))
    explain = [d.path for d in out if d.change == "content"
               and a[d.path].kind == b[d.path].kind == "file"][:DIFFOSCOPE_FILES]
    if not (diffoscope and explain and have_diffoscope()):
        return out
    # One more pass over each layer takes out every file diffoscope is to compare.
    for side, layer in (("published", published), ("rebuilt", rebuilt)):
        _extract(layer, set(explain), scratch / side)
    reports = {name: _diffoscope(name, scratch) for name in explain}
    return [replace(d, diffoscope=reports[d.path]) if d.path in reports else d for d in out]


def have_diffoscope() -> bool:
    return shutil.which("diffoscope") is not None


def _safe(name: str) -> str:
    return name.replace("/", "_")


def _extract(layer: Path, names: set[str], dest: Path) -> None:
    """Write the regular files ``names`` of a gzip'd layer tar into ``dest`` (flattened)."""
    dest.mkdir(parents=True, exist_ok=True)
    with gzip.open(layer, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for m in tar:
            if m.name in names and m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                (dest / _safe(m.name)).write_bytes(f.read())


def _diffoscope(name: str, scratch: Path) -> str:
    """The head of diffoscope's text report on one file extracted from both layers."""
    safe = _safe(name)
    pair = [scratch / "published" / safe, scratch / "rebuilt" / safe]
    report = scratch / f"{safe}.diffoscope.txt"
    try:
        # diffoscope exits 1 when the files differ, which is the expected case here.
        run(["diffoscope", "--no-progress", "--text", str(report), str(pair[0]), str(pair[1])],
            check=False, timeout=300, what=f"diffoscope {name}")
    except CommandError as exc:
        return f"(diffoscope failed: {exc})"
    if not report.is_file():
        return ""
    lines = report.read_text(errors="replace").splitlines()
    head = "\n".join(lines[:DIFFOSCOPE_LINES])
    more = len(lines) - DIFFOSCOPE_LINES
    return head + (f"\n... {more} more line(s) in {report}" if more > 0 else "")
