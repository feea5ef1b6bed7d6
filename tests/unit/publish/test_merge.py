"""The index of an artifact is the same bytes however its platform images come together."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from monogres_oci.build.compile import elf_machine
from monogres_oci.errors import UsageError
from monogres_oci.oci.model import OCI_MANIFEST, Descriptor, Platform
from monogres_oci.package.images import INPUT_DIGEST, assemble_index
from monogres_oci.publish.merge import read_parts


def _image(arch: str, key: str) -> tuple[Descriptor, dict[str, str]]:
    desc = Descriptor(OCI_MANIFEST, "sha256:" + key * 64, 100).with_platform(
        Platform(architecture=arch, os="linux"))
    return desc, {"org.opencontainers.image.title": "rum", INPUT_DIGEST: "sha256:" + key * 64}


def test_assemble_index_ignores_arrival_order() -> None:
    amd64, arm64 = _image("amd64", "a"), _image("arm64", "b")
    one = assemble_index([amd64, arm64])
    other = assemble_index([arm64, amd64])
    assert one.to_json() == other.to_json()
    assert [d.platform.architecture for d in one.manifests if d.platform] == ["amd64", "arm64"]
    # the index's input digest stands for both platforms, not for the first one
    assert one.annotations[INPUT_DIGEST] not in (amd64[1][INPUT_DIGEST], arm64[1][INPUT_DIGEST])
    assert assemble_index([amd64]).annotations[INPUT_DIGEST] != one.annotations[INPUT_DIGEST]


def test_read_parts_explains_bad_input(tmp_path: Path) -> None:
    target = "127.0.0.1:5000/ns"
    tagged = tmp_path / "tagged.json"
    tagged.write_text(json.dumps({"by_digest": False, "refs": []}))
    with pytest.raises(UsageError, match="wrote tags"):
        read_parts([tagged], target)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"by_digest": True, "refs": [
        {"repository": "127.0.0.1:5000/elsewhere/rum", "tag": "t", "digest": "sha256:" + "0" * 64}]}))
    with pytest.raises(UsageError, match="not under 127.0.0.1:5000/ns"):
        read_parts([other], target)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(UsageError, match="broken.json is not the JSON of"):
        read_parts([broken], target)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"by_digest": True, "refs": [
        {"repository": "127.0.0.1:5000/ns/a/rum", "tag": "t", "digest": "sha256:" + "0" * 64}]}))
    [part] = read_parts([good], target)
    assert (part.repository, part.tag) == ("a/rum", "t")


def test_elf_machine_reads_the_header(tmp_path: Path) -> None:
    python = Path(sys.executable).resolve()
    assert elf_machine(python) in (62, 183)  # this machine's own interpreter
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert elf_machine(text) is None
