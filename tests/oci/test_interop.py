"""What we publish is accepted by other tools: crane (go-containerregistry) and the ORAS CLI.

Skipped only when a binary is missing; CI installs both (.ci/setup-host.sh).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.publish.push import PublishResult, publish
from monogres_oci.runner import run
from tests.support.oci_samples import SampleImage
from tests.support.registry import RunningRegistry

Sample = tuple[Layout, list[SampleImage]]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def push(registry: RunningRegistry, layout: Layout, namespace: str) -> PublishResult:
    client = RegistryClient(registry.host, insecure=registry.insecure, ca_file=registry.ca_file)
    return publish(layout, f"{registry.host}/{namespace}", client)


def tree_snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), content)
    return out


def test_crane_validates_and_reads_what_we_push(registry: RunningRegistry, sample: Sample) -> None:
    crane = need("crane")
    layout, _ = sample
    result = push(registry, layout, "crane")
    for ref in result.refs:
        run([crane, "validate", "--insecure", "--remote", str(ref)], what="crane validate")
        manifest = run([crane, "manifest", "--insecure", str(ref)]).stdout
        assert manifest.encode() == layout.read_blob(ref.digest)
        assert (
            run([crane, "digest", "--insecure", f"{ref.repository}:{ref.tag}"]).stdout.strip()
            == ref.digest
        )


def test_crane_exports_the_filesystem(registry: RunningRegistry, sample: Sample) -> None:
    crane = need("crane")
    layout, images = sample
    result = push(registry, layout, "crane-export")
    ref = next(r for r in result.refs if r.tag == "1.0-bookworm")
    out = Path(images[0].tree).parent / "export.tar"
    run([crane, "export", "--insecure", "--platform", "linux/amd64", str(ref), str(out)])
    with tarfile.open(out) as tar:
        names = {m.name.rstrip("/") for m in tar.getmembers()}
        so = tar.extractfile("lib/hello.so")
        assert so is not None and so.read() == (images[0].tree / "lib" / "hello.so").read_bytes()
    assert {"lib", "lib/bitcode", "share/extension/hello.control"} <= names


def test_crane_with_tls_and_auth(
    tls_registry: RunningRegistry,
    auth_registry: RunningRegistry,
    sample: Sample,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crane = need("crane")
    layout, _ = sample
    assert tls_registry.ca_file is not None
    ref = push(tls_registry, layout, "crane-tls").refs[0]
    run([crane, "validate", "--remote", str(ref)], env={"SSL_CERT_FILE": str(tls_registry.ca_file)})
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.docker_config(tmp_path / "docker")))
    ref = push(auth_registry, layout, "crane-auth").refs[0]
    run([crane, "validate", "--insecure", "--remote", str(ref)])


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64/v8"])
def test_oras_pull_unpacks_the_layer_at_the_root(
    registry: RunningRegistry, sample: Sample, tmp_path: Path, platform: str
) -> None:
    oras = need("oras")
    layout, images = sample
    result = push(registry, layout, "oras")
    ref = next(r for r in result.refs if r.tag == "1.0-bookworm")
    out = tmp_path / "pulled"
    run(
        [
            oras,
            "pull",
            "--plain-http",
            "--platform",
            platform,
            f"{ref.repository}:{ref.tag}",
            "-o",
            str(out),
        ],
        what="oras pull",
    )
    image = next(i for i in images if str(i.platform) == platform)
    expected = tree_snapshot(image.tree)
    expected = {
        name: (0o755 if content is None or mode & 0o100 else 0o644, content)
        for name, (mode, content) in expected.items()
    }
    assert tree_snapshot(out) == expected


def test_oras_with_ca_file_and_docker_config(
    tls_registry: RunningRegistry,
    auth_registry: RunningRegistry,
    sample: Sample,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oras = need("oras")
    layout, images = sample
    assert tls_registry.ca_file is not None
    ref = push(tls_registry, layout, "oras-tls").refs[1]  # hello:1.0-bookworm
    out = tmp_path / "tls"
    run([oras, "pull", "--ca-file", str(tls_registry.ca_file), "--platform", "linux/amd64",
         f"{ref.repository}:{ref.tag}", "-o", str(out)])  # fmt: skip
    assert (out / "lib" / "hello.so").read_bytes() == (
        images[0].tree / "lib" / "hello.so"
    ).read_bytes()
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.docker_config(tmp_path / "docker")))
    ref = push(auth_registry, layout, "oras-auth").refs[1]
    out = tmp_path / "auth"
    run(
        [
            oras,
            "pull",
            "--plain-http",
            "--platform",
            "linux/amd64",
            f"{ref.repository}:{ref.tag}",
            "-o",
            str(out),
        ]
    )
    assert (out / "share" / "extension" / "hello.control").is_file()


def test_oras_manifest_fetch_matches(registry: RunningRegistry, sample: Sample) -> None:
    oras = need("oras")
    layout, _ = sample
    ref = push(registry, layout, "oras-fetch").refs[2]  # world:2.0, a single manifest
    fetched = run([oras, "manifest", "fetch", "--plain-http", str(ref)]).stdout
    assert fetched.encode() == layout.read_blob(ref.digest)
