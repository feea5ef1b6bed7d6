"""Publishing against a failing registry, and in parallel: success rates, times, bytes.

Usage (as root, after .ci/setup-host.sh):
    python bench/faults.py [--images 50] [--size 1048576] [--runs 5] [--latency 0.02]

Makes N single-layer images (random bytes, each with an SBOM and a provenance, as `build`
attaches them), signs them, starts Debian's docker-registry on a free loopback port and, in
front of it, the fault-injecting proxy of tests/support/faults.py. Then prints:

1. success rate and mean wall time of `publish` at fault rates 0, 5, 15 and 30 % (a random mix
   of 503/502/500/504/408, 429 with Retry-After: 1, resets, truncated answers, slow answers,
   answers lost after the registry committed, expired upload sessions), with the default retry
   policy and with none;
2. publish time of the N images with 1, 2, 4 and 8 requests in flight, on loopback and with
   ``--latency`` seconds added to every answer (a registry across a network);
3. the bytes a no-op republish sends (request bodies counted at the proxy): must be 0.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.attest.sign import generate_key_pair, load_signing_key  # noqa: E402
from monogres_oci.attest.signatures import sign_layout  # noqa: E402
from monogres_oci.errors import RegistryError  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402
from monogres_oci.oci.registry import RegistryClient  # noqa: E402
from monogres_oci.oci.retry import NO_RETRIES, RetryPolicy  # noqa: E402
from monogres_oci.publish.push import publish  # noqa: E402
from tests.support.faults import Fault, Plan, fault_proxy, random_mix  # noqa: E402
from tests.support.oci_samples import many_images  # noqa: E402
from tests.support.registry import RunningRegistry, start_registry  # noqa: E402

RATES = (0.0, 0.05, 0.15, 0.30)
JOBS = (1, 2, 4, 8)


def quiet_client(host: str, policy: RetryPolicy) -> RegistryClient:
    return RegistryClient(host, insecure=True, retry=policy, on_retry=lambda _: None)


def timed_publish(layout: Layout, registry: RunningRegistry, plan: Plan, namespace: str,
                  policy: RetryPolicy, jobs: int) -> tuple[bool, float, int, int, str]:
    """(succeeded, seconds, requests, retries, error) of one publish through the proxy."""
    with fault_proxy(registry.host, plan) as proxy:
        client = quiet_client(proxy.host, policy)
        started = time.perf_counter()
        try:
            publish(layout, f"{proxy.host}/{namespace}", client, jobs=jobs)
            ok, error = True, ""
        except RegistryError as exc:
            ok, error = False, str(exc).splitlines()[0][:100]
        return ok, time.perf_counter() - started, len(proxy.log), client.retries_made, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes of each image's layer")
    parser.add_argument("--runs", type=int, default=5, help="publishes per fault rate")
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monogres-bench-faults-") as tmp:
        work = Path(tmp)
        layout = Layout.create(work / "oci")
        many_images(layout, work, args.images, args.size)
        private, _ = generate_key_pair(work / "bench.key", None)
        sign_layout(layout, load_signing_key(private))
        registry = start_registry(work / "registry")
        try:
            print(f"{args.images} images of {args.size} bytes, signed, each with an SBOM and a "
                  "provenance; registry: docker-registry on loopback\n")
            print("fault rate  retries  succeeded  mean wall  requests  retried  first failure")
            for rate in RATES:
                for name, policy in (("default", RetryPolicy()), ("none", NO_RETRIES)):
                    runs = [timed_publish(layout, registry, random_mix(rate, seed),
                                          f"r{int(rate * 100)}{name}{seed}", policy, 4)
                            for seed in range(args.runs)]
                    good = [r for r in runs if r[0]]
                    mean = sum(r[1] for r in runs) / len(runs)
                    failure = next((r[4] for r in runs if not r[0]), "")
                    print(f"{rate * 100:8.0f} %  {name:7}  {len(good):4}/{len(runs):<4}  "
                          f"{mean:7.2f} s  {sum(r[2] for r in runs) // len(runs):8}  "
                          f"{sum(r[3] for r in runs) // len(runs):7}  {failure}")
            print(f"\njobs  loopback  +{args.latency * 1000:.0f} ms per answer")
            delay = Fault("slow", delay=args.latency)
            for jobs in JOBS:
                loop = timed_publish(layout, registry, lambda n, m, p: None, f"loop{jobs}",
                                     RetryPolicy(), jobs)
                slow = timed_publish(layout, registry, lambda n, m, p: delay, f"slow{jobs}",
                                     RetryPolicy(), jobs)
                print(f"{jobs:4}  {loop[1]:7.2f} s  {slow[1]:7.2f} s")
            with fault_proxy(registry.host, lambda n, m, p: None) as proxy:
                publish(layout, f"{proxy.host}/noop", quiet_client(proxy.host, RetryPolicy()))
                first = sum(e.sent for e in proxy.log)
                del proxy.log[:]
                started = time.perf_counter()
                publish(layout, f"{proxy.host}/noop", quiet_client(proxy.host, RetryPolicy()))
                again = time.perf_counter() - started
                sent = sum(e.sent for e in proxy.log if e.method in ("PUT", "PATCH", "POST")
                           and "/blobs/" in e.path)
                print(f"\nno-op republish: {sent} bytes of blobs sent (first publish: {first} "
                      f"bytes), {len(proxy.log)} requests, {again:.2f} s")
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
