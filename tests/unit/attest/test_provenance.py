"""Provenance byproducts: the files a Postgres build's provenance carries, and their check."""

from __future__ import annotations

import base64

import pytest

from monogres_oci.attest.provenance import byproduct, byproduct_files
from monogres_oci.errors import VerifyError


def test_byproducts_come_back_as_written() -> None:
    files = [("meta/toolchain-packages.tsv", b"gcc-12\t12.2.0-14\tamd64\n"),
             ("meta/compiler.txt", b"cc (Debian 12.2.0-14) 12.2.0\n")]
    predicate = {"runDetails": {"byproducts": [byproduct(n, c) for n, c in files]}}
    assert byproduct_files(predicate) == dict(files)
    assert byproduct_files({"runDetails": {}}) == {}


def test_a_byproduct_whose_content_is_not_its_digest_is_refused() -> None:
    item = byproduct("meta/compiler.txt", b"cc 12\n")
    item["content"] = base64.b64encode(b"cc 99\n").decode()
    with pytest.raises(VerifyError, match="content and digest differ"):
        byproduct_files({"runDetails": {"byproducts": [item]}})
    item["content"] = "not base64!"
    with pytest.raises(VerifyError, match="compiler.txt"):
        byproduct_files({"runDetails": {"byproducts": [item]}})
