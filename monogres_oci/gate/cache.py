"""Passing gate results kept by what was tested, so that the same bytes are not tested twice.

A gate result depends only on the images it ran (the extension's platform manifest, those it
requires, the runnable Postgres image: all by digest, and the extension's input digest covers
its build tree and suite script), on the catalog's test configuration and on the gate's own
code. The key hashes all of them; a result is reused only when every one is the same. Only
passing results are kept: a failure is tried again, since it may not be the image's fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from monogres_oci.atomic import write_atomically
from monogres_oci.catalog.model import Extension
from monogres_oci.gate.results import Created, GateResult, SuiteCase


@cache
def _gate_code_digest() -> str:
    """The gate's own code: a change to how it runs or reads a suite invalidates every result."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def gate_key(ext: Extension, image: str, required: Sequence[str], runnable: str,
             platform: str) -> str:
    """The digest of everything a gate result depends on."""
    inputs = {"image": image, "required": list(required), "runnable": runnable,
              "platform": platform, "sql_names": list(ext.sql_names),
              "modules": list(ext.runtime.modules), "test": asdict(ext.test),
              "gate": _gate_code_digest()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _result_from_json(doc: Any) -> GateResult:
    """The inverse of ``GateResult.to_json``."""
    suite = doc["suite"]
    created = [Created(c["sql_name"], c["ok"], c["error"]) for c in doc["create_extension"]]
    created += [Created(c["module"], c["ok"], c["error"], module=True) for c in doc["load"]]
    return GateResult(
        extension=doc["extension"], version=doc["version"], platform=doc["platform"],
        image_digest=doc["image"], postgres_image=doc["postgres_image"], created=tuple(created),
        cases=tuple(SuiteCase(t["name"], t["status"], t["passed"], t.get("known_failure", ""))
                    for t in suite["tests"]),
        command=tuple(suite["command"]), exit_code=int(suite["exit_code"]),
        skipped=suite["skipped"])


class GateCache:
    """Passing results under ``<cache>/gates/<key>.json``."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "gates"

    def get(self, key: str) -> GateResult | None:
        try:
            doc = json.loads((self.root / f"{key}.json").read_text())
            return _result_from_json(doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, torn or from another version: gate again

    def put(self, key: str, result: GateResult) -> None:
        if not result.ok:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomically(self.root / f"{key}.json",
                         json.dumps(result.to_json(), indent=2, sort_keys=True).encode())
