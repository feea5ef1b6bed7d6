"""Passing gate results are reused only for the very same images, configuration and gate code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monogres_oci.catalog import load_catalog
from monogres_oci.gate.cache import GateCache, gate_key
from monogres_oci.gate.results import Created, GateResult, SuiteCase, result_statement

REPO = Path(__file__).resolve().parents[3]
A, B, R = ("sha256:" + c * 64 for c in "abc")


def _result(ok: bool = True) -> GateResult:
    return GateResult(
        extension="pg_repack", version="1.5.3", platform="linux/arm64", image_digest=A,
        postgres_image=R, created=(Created("pg_repack", True), Created("mod", True, module=True)),
        cases=(SuiteCase("repack-setup", "ok", True),
               SuiteCase("tablespace", "ok" if ok else "not ok", ok)),
        command=("make", "installcheck"), exit_code=0 if ok else 1, output_tail="not kept")


def test_a_passing_result_comes_back_as_it_was_attested(tmp_path: Path) -> None:
    gates = GateCache(tmp_path)
    gates.put("k", _result())
    again = gates.get("k")
    assert again == _result()
    assert again is not None and again.summary() == _result().summary()
    assert result_statement(again, []) == result_statement(_result(), [])


def test_failures_are_not_kept_and_a_torn_file_is_a_miss(tmp_path: Path) -> None:
    gates = GateCache(tmp_path)
    gates.put("bad", _result(ok=False))
    assert gates.get("bad") is None
    (tmp_path / "gates").mkdir(exist_ok=True)
    (tmp_path / "gates" / "torn.json").write_text('{"extension": "pg_re')
    assert gates.get("torn") is None


def test_the_key_follows_every_input() -> None:
    ext = load_catalog(REPO / "extensions.yaml").extension("pg_repack")
    base = gate_key(ext, A, [], R, "linux/amd64")
    assert gate_key(ext, A, [], R, "linux/amd64") == base
    other_suite = dataclasses.replace(ext, test=dataclasses.replace(ext.test, setup=("SELECT 1",)))
    changed = {gate_key(ext, B, [], R, "linux/amd64"), gate_key(ext, A, [B], R, "linux/amd64"),
               gate_key(ext, A, [], B, "linux/amd64"), gate_key(ext, A, [], R, "linux/arm64"),
               gate_key(other_suite, A, [], R, "linux/amd64")}
    assert base not in changed and len(changed) == 5
