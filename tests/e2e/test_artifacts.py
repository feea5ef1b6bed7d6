"""What was built and pushed conforms: OCI schemas, crane, oras, docker pull, layout contents."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from monogres_oci.attest.attach import INTOTO_TYPE, PREDICATE_ANNOTATION, SPDX_TYPE, attachments
from monogres_oci.attest.image import SPDX_PREDICATE
from monogres_oci.attest.provenance import PREDICATE_TYPE as SLSA_PREDICATE
from monogres_oci.gate.results import TEST_RESULT_PREDICATE
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES
from tests.e2e.conftest import EXTENSIONS, Built, Published, rolling
from tests.support import oci_schemas

pytestmark = pytest.mark.e2e


def test_build_reports_every_target_ok(built: Built) -> None:
    names = {r["name"].split("-")[0] for r in built.report["targets"] if r["ok"]}
    assert names == {"postgres", *EXTENSIONS}
    assert all(r["ok"] for r in built.report["targets"])


def test_every_layout_document_validates_against_the_oci_schemas(built: Built) -> None:
    layout = Layout.open(built.layout)
    oci_schemas.validate("layout", (built.layout / "oci-layout").read_bytes())
    oci_schemas.validate("index", (built.layout / "index.json").read_bytes())
    checked = 0
    for desc in layout.refs().values():
        for node in layout.walk(desc):
            data = layout.read_blob(node.digest)
            if node.media_type in INDEX_TYPES:
                oci_schemas.validate("index", data)
            elif node.media_type.endswith("manifest.v1+json"):
                oci_schemas.validate("manifest", data)
            elif node.media_type.endswith("config.v1+json"):
                oci_schemas.validate("config", data)
            checked += 1
    assert checked > 10


def _layer_members(layout: Layout, ref: str) -> list[tarfile.TarInfo]:
    index = layout.read_index(layout.resolve(ref).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    assert len(manifest.layers) == 1
    data = gzip.decompress(layout.read_blob(manifest.layers[0].digest))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_extension_layer_has_only_the_image_volume_layout(built: Built, ext: str) -> None:
    members = _layer_members(Layout.open(built.layout), rolling(ext))
    names = [m.name for m in members]
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"lib", "share", "licenses", "system"}, tops
    assert f"share/extension/{ext}.control" in names
    assert any(n.startswith("lib/") and n.endswith(".so") for n in names)
    assert any(n.startswith(f"licenses/{ext}/") for n in names)
    # directory entries present (oras creates no parents), deterministic owners and times
    assert {"lib", "share", "share/extension"} <= {m.name for m in members if m.isdir()}
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    assert len({m.mtime for m in members}) == 1
    assert names == sorted(names, key=lambda n: n.split("/"))


def _members(layout: Layout, digest: str) -> list[tarfile.TarInfo]:
    data = gzip.decompress(layout.read_blob(digest))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_runnable_image_layers_do_not_shadow_the_base(built: Built) -> None:
    """A directory entry where the base has a symlink (/var/run, /lib on merged /usr) would
    replace the symlink and break the image."""
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.resolve(rolling("postgresql")).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    *base_layers, runtime, pg = manifest.layers
    base_links = {m.name.rstrip("/") for layer in base_layers
                  for m in _members(layout, layer.digest) if m.issym()}
    assert "var/run" in base_links  # the check below means something
    ours = _members(layout, runtime.digest) + _members(layout, pg.digest)
    clashes = [m.name for m in ours if m.name.rstrip("/") in base_links and not m.issym()]
    assert clashes == []
    owners = {m.name: (m.uid, m.gid) for m in ours}
    assert owners["var/lib/postgresql"] == (26, 26)
    passwd = next(m for m in ours if m.name == "etc/passwd")
    assert passwd.isfile()


def test_labels_are_the_same_on_config_manifest_and_index(built: Built) -> None:
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.resolve(rolling("pgaudit")).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    config = json.loads(layout.read_blob(manifest.config.digest))
    labels = config["config"]["Labels"]
    assert labels["org.monogres.extension.preload"] == "pgaudit"
    assert labels["io.cloudnativepg.image.base.pgmajor"] == "18"
    assert labels["org.monogres.postgres.version_num"] == "180006"
    assert dict(manifest.annotations) == labels
    assert set(index.annotations) == set(labels)


def test_crane_validates_what_was_pushed(published: Published) -> None:
    crane = shutil.which("crane")
    assert crane, "crane is installed by .ci/setup-host.sh"
    for ref in published.refs.values():
        proc = subprocess.run([crane, "validate", "--remote", ref, "--insecure"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{ref}: {proc.stdout}{proc.stderr}"


def test_oras_pull_unpacks_the_extension_tree(published: Published, tmp_path: Path) -> None:
    oras = shutil.which("oras")
    assert oras, "oras is installed by .ci/setup-host.sh"
    ref = published.tag_ref(rolling("pgaudit"))
    proc = subprocess.run([oras, "pull", "--plain-http", "--platform", "linux/amd64", ref,
                           "-o", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "lib" / "pgaudit.so").is_file()
    assert (tmp_path / "share" / "extension" / "pgaudit.control").is_file()


def test_docker_pull_gets_the_extension_image(published: Published) -> None:
    ref = published.tag_ref(rolling("rum"))
    proc = subprocess.run(["docker", "pull", ref], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inspect = subprocess.run(["docker", "image", "inspect", ref, "--format",
                              "{{json .Config.Labels}}"], capture_output=True, text=True, check=True)
    labels = json.loads(inspect.stdout)
    assert labels["org.monogres.extension.name"] == "rum"
    subprocess.run(["docker", "image", "rm", ref], capture_output=True)


def test_tags_are_multi_arch_indexes_and_rebuilds_give_the_same_digests(
        built: Built, tmp_path: Path) -> None:
    """Packaging the same compile outputs again gives byte-identical images and the same tags."""
    from tests.e2e.conftest import build_args, cli

    again = tmp_path / "oci"
    cli(*build_args(built.catalog, built.base_image, again, *EXTENSIONS))
    first, second = Layout.open(built.layout).refs(), Layout.open(again).refs()
    assert first.keys() == second.keys()
    for name, desc in first.items():
        assert desc.media_type in INDEX_TYPES, name
        assert second[name].digest == desc.digest, name
    # SBOM, provenance and the gate's test result too: same build outputs, same bytes (the first
    # layout may also hold signatures by now; those are compared in test_supply_chain).
    def documents(layout: Layout) -> set[tuple[str, str, str]]:
        return {(a.subject_digest, a.descriptor.annotations.get(PREDICATE_ANNOTATION, ""),
                 a.descriptor.digest)
                for a in attachments(layout)
                if a.descriptor.artifact_type in (SPDX_TYPE, INTOTO_TYPE)}

    docs = documents(Layout.open(again))
    assert docs == documents(Layout.open(built.layout))
    platform_manifests = {d.digest: name for name, desc in second.items()
                          for d in Layout.open(again).read_index(desc.digest).manifests}
    for digest, name in platform_manifests.items():
        kinds = sorted(kind for subject, kind, _ in docs if subject == digest)
        gated = [TEST_RESULT_PREDICATE] if not name.startswith("postgresql") else []
        assert kinds == sorted([SPDX_PREDICATE, SLSA_PREDICATE, *gated]), name
