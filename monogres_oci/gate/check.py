"""Before publishing: every extension image of the layout must carry a passing gate result."""

from __future__ import annotations

import json

from monogres_oci.attest.attach import PREDICATE_ANNOTATION, attachments_by_subject
from monogres_oci.errors import UsageError
from monogres_oci.gate.results import TEST_RESULT_PREDICATE
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import MANIFEST_TYPES
from monogres_oci.oci.parse import parse_image_config

PASSING = ("PASSED", "WARNED")


def gate_verdicts(layout: Layout) -> dict[str, str]:
    """Each extension platform image that a tag names -> its gate verdict ("" when it has none)."""
    by_subject = attachments_by_subject(layout)
    verdicts: dict[str, str] = {}
    for name, desc in sorted(layout.refs().items()):
        for node in layout.walk(desc):
            if node.media_type not in MANIFEST_TYPES or node.digest in verdicts:
                continue
            manifest = layout.read_manifest(node.digest)
            if manifest.subject is not None:
                continue
            labels = parse_image_config(layout.read_blob(manifest.config.digest)).labels
            if labels.get("org.monogres.artifact") != "extension":
                continue
            verdict = ""
            for item in by_subject.get(node.digest, []):
                if item.descriptor.annotations.get(PREDICATE_ANNOTATION) == TEST_RESULT_PREDICATE:
                    stmt = json.loads(layout.read_blob(item.payload.digest))
                    verdict = str(stmt.get("predicate", {}).get("result", ""))
            verdicts[f"{name}@{node.digest}"] = verdict
    return verdicts


def check_gated(layout: Layout) -> None:
    """Raise UsageError naming every tagged extension image without a passing gate result."""
    bad = {ref: verdict for ref, verdict in gate_verdicts(layout).items()
           if verdict not in PASSING}
    if bad:
        lines = "\n".join(f"  {ref}: {verdict or 'no gate result (built with --no-gate?)'}"
                          for ref, verdict in sorted(bad.items())[:20])
        raise UsageError(f"{len(bad)} extension image(s) of {layout.root} are not proven to work; "
                         f"nothing was pushed:\n{lines}\n  run `monogres-oci test --layout "
                         f"{layout.root}` (or rebuild without --no-gate), or pass "
                         "--allow-untested to publish them anyway")
