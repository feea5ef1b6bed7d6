"""Time to sign and attest N images and push the signatures, natively and with the cosign CLI.

Usage (as root, after .ci/setup-host.sh):
    python bench/sign.py [--images 24] [--cosign-sample 4]

Makes N small single-layer images in an OCI layout, each with an SBOM and a provenance attached
(as `build` does), starts its own registry on a free loopback port, then measures:

* native: `sign_layout` (a signature per image and per index, SBOM and provenance attestations)
  and `publish` of everything (blobs, manifests, referrers through the fallback tag, tags);
* cosign: `cosign sign` + two `cosign attest` per image for a sample of the images (one
  subprocess each, key-based, offline flags), extrapolated per image.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.attest.sign import generate_key_pair, load_signing_key  # noqa: E402
from monogres_oci.attest.signatures import sign_layout  # noqa: E402
from monogres_oci.consume.pull import make_client  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402
from monogres_oci.publish.push import publish  # noqa: E402
from tests.support.oci_samples import many_images  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--cosign-sample", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monogres-bench-sign-") as tmp:
        work = Path(tmp)
        layout = Layout.create(work / "oci")
        many_images(layout, work, args.images)
        private, public = generate_key_pair(work / "bench.key", None)
        key = load_signing_key(private)
        registry = start_registry(work / "registry")
        try:
            client = make_client(registry.host)
            started = time.perf_counter()
            count = sign_layout(layout, key)
            signed = time.perf_counter() - started
            started = time.perf_counter()
            result = publish(layout, f"{registry.host}/bench", client)
            pushed = time.perf_counter() - started
            referrers = result.count("referrer", "pushed")
            n = args.images
            print(f"native: {count} bundles for {n} images (+ {n} indexes) signed in "
                  f"{signed:.2f} s ({signed / n * 1000:.1f} ms per image)")
            print(f"native: publish with {referrers} referrers in {pushed:.2f} s "
                  f"({pushed / n * 1000:.0f} ms per image, fallback tag updated once per subject)")
            print(f"native: sign + publish {signed + pushed:.2f} s "
                  f"({(signed + pushed) / n * 1000:.0f} ms per image)")
            # cosign: one subprocess per signature or attestation, on a sample
            env = {**os.environ, "COSIGN_PASSWORD": ""}
            cosign_key = work / "cosign.key"
            subprocess.run(["cosign", "generate-key-pair", "--output-key-prefix",
                            str(work / "cosign")], cwd=work, env=env, check=True,
                           capture_output=True)
            predicate = work / "pred.json"
            predicate.write_text('{"buildDefinition": {"buildType": "bench"}}')
            offline = ["--use-signing-config=false", "--tlog-upload=false", "--yes",
                       "--allow-insecure-registry"]
            sample = min(args.cosign_sample, n)
            started = time.perf_counter()
            for i in range(sample):
                index = layout.read_index(layout.refs()[f"ext{i}:1.0"].digest)
                ref = f"{registry.host}/bench/ext{i}@{index.manifests[0].digest}"
                subprocess.run(["cosign", "sign", "--key", str(cosign_key), *offline, ref],
                               env=env, check=True, capture_output=True)
                for kind in ("slsaprovenance1", "spdxjson"):
                    subprocess.run(["cosign", "attest", "--key", str(cosign_key), *offline,
                                    "--predicate", str(predicate), "--type", kind, ref],
                                   env=env, check=True, capture_output=True)
            elapsed = time.perf_counter() - started
            per = elapsed / sample
            print(f"cosign CLI: sign + 2 attest for {sample} images in {elapsed:.2f} s "
                  f"({per * 1000:.0f} ms per image; {n} images = {per * n:.1f} s, "
                  f"without signing the indexes)")
            print(f"public key used by the native run: {public}")
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
