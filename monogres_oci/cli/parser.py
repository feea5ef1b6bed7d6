"""The command line: every command, its options and its help."""


from __future__ import annotations

import argparse

from monogres_oci import __version__
from monogres_oci.cli.options import (
    add_build_inputs,
    add_catalog,
    add_published_in,
    add_registry_opts,
    add_selection,
    positive,
)

EPILOG = """\
typical session:
  monogres-oci validate                                   check extensions.yaml
  monogres-oci plan --postgres 18 --arch amd64            what would be built
  monogres-oci status                                     every target: built? tested? failed?
  monogres-oci build --postgres 18 --option-set regular --arch amd64 \\
      --extension pgaudit --base bookworm=127.0.0.1:5000/base/bookworm@sha256:...
  monogres-oci keygen --out monogres.key                  signing key pair (.key and .pub)
  monogres-oci publish --registry 127.0.0.1:5000/monogres --sign-key monogres.key
  monogres-oci verify 127.0.0.1:5000/monogres/pgaudit:18-18.0-bookworm --key monogres.pub
  monogres-oci rebuild --verify 127.0.0.1:5000/monogres/pgaudit:18-18.0-bookworm \\
      --base bookworm=127.0.0.1:5000/base/bookworm@sha256:...   same digests from scratch?
  monogres-oci install 127.0.0.1:5000/monogres/pgaudit:18-18.0-bookworm --dest /extensions \\
      --key monogres.pub
  monogres-oci cnpg --registry 127.0.0.1:5000/monogres --postgres 18.6 --extension pgaudit \\
      --output cluster.yaml --sign-key monogres.key
  monogres-oci site --layout oci --out site --registry 127.0.0.1:5000/monogres   catalog pages

Every command takes --help. Exit status: 0 ok, 1 failure, 2 usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monogres-oci",
        description="Build PostgreSQL and its extensions from pinned source, reproducibly, in one "
                    "shared base, and publish them as OCI images.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"monogres-oci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show build log lines")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("-q", "--quiet", action="store_true",
                       help="no progress on stderr (errors and results still print)")
    shown.add_argument("--events", action="store_true",
                       help="progress on stderr as JSON Lines, one event per line (t, event, "
                            "message, and fields such as done/total), for scripts")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check the catalog against its schema",
                       description="Validate the catalog: YAML syntax, JSON Schema (unknown keys "
                                   "are errors) and cross-references. Prints a summary.")
    add_catalog(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("plan", help="list the targets a build would produce, and their state",
                       description="Expand the catalog into build targets (Postgres builds and "
                                   "the extensions compiled against each) with their input "
                                   "digests and whether sources and builds are already cached.")
    add_catalog(p)
    add_selection(p)
    add_build_inputs(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one document: {\"targets\": [...]}")
    out.add_argument("--jsonl", action="store_true",
                     help="one target per line, written as it is planned (for large catalogs: "
                          "a million targets stream in seconds)")
    out.add_argument("--shards", type=positive, metavar="N",
                     help="print the plan cut into at most N shards per stage (Postgres builds, "
                          "then extensions) as GitHub Actions matrices, {postgres: {include: "
                          "[{shard: 1/N, ...}]}, extensions: ...}; each job runs `build --shard "
                          "K/N` with the same selection")
    add_published_in(p, "also say of each target whether REGISTRY holds it: published from "
                         "the same inputs (current), from other inputs (stale, and which "
                         "inputs changed), or not published")
    add_registry_opts(p)

    p = sub.add_parser("status", help="the whole catalog as one table: built, tested, published",
                       description="One row per target (extension version x Postgres release x "
                                   "option set x distro x architecture, and each Postgres build): "
                                   "disabled (the catalog says why), not built, failed (the stage "
                                   "and the error), built, tested (the upstream suite's passed/"
                                   "total) or, with --registry, published from the same inputs. "
                                   "Reads the build cache and the registry; builds nothing.",
                       epilog="examples:\n"
                              "  monogres-oci status --distro trixie --arch amd64\n"
                              "  monogres-oci status --registry 127.0.0.1:5000/monogres --json\n"
                              "  monogres-oci status --update README.md   "
                              "(the table between README's status markers)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_catalog(p)
    add_selection(p)
    add_build_inputs(p)
    p.add_argument("--registry", metavar="HOST[:PORT]/NAMESPACE",
                   help="also check what is published there (the rolling tag of each target and "
                        "the input digest its manifest records)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="counts and one object per target")
    out.add_argument("--markdown", action="store_true",
                     help="a matrix (artifact x release/distro/arch) with reasons as footnotes")
    out.add_argument("--update", metavar="FILE",
                     help="write the --markdown table between the status markers of FILE")
    add_registry_opts(p)

    p = sub.add_parser("build", help="fetch, compile and package into an OCI image layout",
                       description="Fetch every source (verified by sha256 before anything is "
                                   "built), compile Postgres once per target and each extension "
                                   "against it with BuildKit, then package deterministic OCI "
                                   "images into an OCI image layout on disk.")
    add_catalog(p)
    add_selection(p)
    add_build_inputs(p)
    p.add_argument("--out", default="oci", metavar="DIR", help="OCI image layout to write (default: ./oci)")
    p.add_argument("--distdir", metavar="DIR",
                   help="pre-downloaded source files, by file name (offline builds)")
    p.add_argument("--rebuild", action="store_true",
                   help="compile with BuildKit's cache off (use with a fresh --cache-dir to "
                        "rebuild everything from scratch, e.g. to check reproducibility)")
    p.add_argument("--no-gate", action="store_true",
                   help="package extension images without proving them (CREATE EXTENSION and "
                        "the upstream suite against the runnable image); publish then refuses "
                        "them unless --allow-untested")
    p.add_argument("--jobs", type=positive, default=1, metavar="N",
                   help="compile up to N extensions of one Postgres build at once, and gate "
                        "up to N (default 1; results are applied in plan order, so the layout "
                        "is the same for any N; a rerun resumes: finished compiles and passing "
                        "gates are cached)")
    p.add_argument("--engine-cache-limit", metavar="SIZE",
                   help="prune BuildKit's cache down to SIZE (e.g. 20GB) between targets, least "
                        "recently used first: a whole catalog otherwise grows it by tens of GB "
                        "(default: no limit, the builder's own garbage collection)")
    p.add_argument("--builder", metavar="NAME",
                   help="the buildx builder that compiles (a remote BuildKit: `docker buildx "
                        "create --name NAME --driver remote tcp://HOST:1234`, its entitlements "
                        "allowing network.host); default: docker's current builder")
    p.add_argument("--shard", metavar="K/N",
                   help="build shard K of N of the plan (from `plan --shards N`): with "
                        "--postgres-only, of the Postgres builds; otherwise of the extensions, "
                        "with the Postgres builds they need (taken from --registry with "
                        "--registry-key, or compiled)")
    p.add_argument("--json", action="store_true")
    add_published_in(p, "build only what REGISTRY does not hold from the same inputs (a target "
                         "published there from other inputs is built)")
    p.add_argument("--registry-key", metavar="PUB",
                   help="with --registry: a Postgres build this machine's cache lacks is taken "
                        "from REGISTRY (its install tree, runtime overlay and build record) when "
                        "it is published there from the same inputs and signed with this public "
                        "key, instead of compiled; the images packaged from it are the same")
    add_registry_opts(p)

    p = sub.add_parser("publish", help="push an OCI layout to a registry",
                       description="Push every image of the layout: blobs first (skipping those the "
                                   "registry has), then manifests, then indexes, then tags, so a "
                                   "tag never points at something incomplete. Credentials come "
                                   "from the Docker config ($DOCKER_CONFIG or ~/.docker/config.json) "
                                   "and its credential helpers.")
    p.add_argument("--registry", required=True, metavar="HOST[:PORT]/NAMESPACE")
    p.add_argument("--layout", default="oci", metavar="DIR",
                   help="the layout written by build (default: ./oci)")
    p.add_argument("--dry-run", action="store_true", help="print what would be pushed")
    p.add_argument("--sign-key", metavar="KEY",
                   help="sign every manifest and index, and the SBOM and provenance as "
                        "attestations, with this key (from `monogres-oci keygen`; password in "
                        "$MONOGRES_SIGNING_PASSWORD) before pushing; cosign verifies them with "
                        "the .pub file")
    p.add_argument("--by-digest", action="store_true",
                   help="push content and attachments but write no tag: one architecture's job "
                        "of a fan-out build; save --json's output for `monogres-oci merge`")
    p.add_argument("--jobs", type=int, default=4, metavar="N",
                   help="requests in flight at once: existence checks, uploads, manifests "
                        "(default 4; 1: one at a time)")
    p.add_argument("--allow-untested", action="store_true",
                   help="publish extension images that carry no passing gate result (built "
                        "with --no-gate); without it, publish refuses them and pushes nothing")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("merge", help="join per-architecture publishes into multi-arch indexes",
                       description="The last job of a fan-out build: read the --json outputs of "
                                   "`publish --by-digest` (one per architecture, built on any "
                                   "machines), fetch their indexes and platform manifests, and "
                                   "push one index per artifact over all platforms, then its tags. "
                                   "The index is byte for byte the one a single invocation "
                                   "building every architecture would publish.",
                       epilog="example:\n"
                              "  monogres-oci publish --by-digest --json --registry R/ns "
                              "--layout oci-amd64 > amd64.json\n"
                              "  monogres-oci publish --by-digest --json --registry R/ns "
                              "--layout oci-arm64 > arm64.json   # elsewhere\n"
                              "  monogres-oci merge --registry R/ns --sign-key k amd64.json "
                              "arm64.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="+", metavar="PUBLISH.json",
                   help="output of `publish --by-digest --json`, one per architecture")
    p.add_argument("--registry", required=True, metavar="HOST[:PORT]/NAMESPACE",
                   help="where the parts were published (tags are written there)")
    p.add_argument("--sign-key", metavar="KEY", help="sign the new indexes with this key")
    p.add_argument("--out", metavar="DIR",
                   help="keep the merged layout (indexes, platform manifests, signatures) here")
    p.add_argument("--dry-run", action="store_true",
                   help="assemble and print the indexes, push nothing")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("keygen", help="make an ECDSA P-256 signing key pair",
                       description="Write a private key (PKCS#8 PEM, mode 0600, encrypted when "
                                   "$MONOGRES_SIGNING_PASSWORD is set) and the public key beside "
                                   "it with the suffix .pub. `cosign verify --key KEY.pub` accepts "
                                   "the public key.")
    p.add_argument("--out", default="monogres.key", metavar="FILE",
                   help="the private key to write (default: ./monogres.key)")

    p = sub.add_parser("verify", help="check signatures, SBOM, provenance and digests",
                       description="Verify published artifacts: the index and every platform "
                                   "manifest must carry a signature that verifies with --key, "
                                   "each platform manifest signed SPDX SBOM and SLSA provenance "
                                   "attestations (and the SBOM artifact must be the signed one), "
                                   "and every config and layer must match its digest. Exit 1 with "
                                   "the reason when anything fails.")
    p.add_argument("references", nargs="+", metavar="REF", help="HOST/REPO:TAG or HOST/REPO@sha256:...")
    p.add_argument("--key", required=True, metavar="PUB", help="public key (PEM)")
    p.add_argument("--platform", default=None, help="check only this platform, e.g. linux/amd64")
    p.add_argument("--no-blobs", action="store_true", help="skip downloading layers to check digests")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("rebuild", help="rebuild published artifacts from scratch and compare digests",
                       description="Rebuild each published artifact from the catalog, from scratch "
                                   "(a fresh build directory, BuildKit's cache off, a different "
                                   "build-container host name) and compare index, manifest, config "
                                   "and layer digests with the published ones. The target is read "
                                   "from the artifact's annotations; the base image is the one it "
                                   "names (override with --base). Where a layer differs, the "
                                   "differing files are listed, and diffoscope explains them when "
                                   "it is installed. An extension's rebuild rebuilds its Postgres "
                                   "too. With --verify, exit 1 unless every digest is identical.")
    p.add_argument("references", nargs="+", metavar="REF", help="HOST/REPO:TAG or HOST/REPO@sha256:...")
    p.add_argument("--verify", action="store_true",
                   help="exit 1 unless every rebuilt digest equals the published one")
    add_catalog(p)
    p.add_argument("--base", action="append", default=[], metavar="DISTRO=REF@sha256:...",
                   help="build in this base image instead of the one the artifact names")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where sources are cached (default: $XDG_CACHE_HOME/monogres-oci); "
                        "builds never come from it")
    p.add_argument("--distdir", metavar="DIR", help="pre-downloaded source files, by file name")
    p.add_argument("--work-dir", metavar="DIR",
                   help="an empty or new directory for the rebuild, its OCI layout and the "
                        "diffoscope reports (default: a new temporary directory, kept)")
    p.add_argument("--no-diffoscope", action="store_true", help="list differing files only")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("test", help="run the gate on extension images of a layout or a registry",
                       description="Prove extension images work: mount each in the runnable "
                                   "Postgres image of its own build the CloudNativePG way, CREATE "
                                   "EXTENSION (CASCADE) each of its extensions and run its own "
                                   "upstream regression suite against that server (what `build` "
                                   "does before it tags an image). The target is read from the "
                                   "image's annotations and built again from the catalog (cached "
                                   "compiles are reused; the digests must come out identical). "
                                   "With --layout the results are attached to the images in that "
                                   "layout; otherwise they go to a new layout (--out) that "
                                   "`publish` can push. Exit 1 when an image fails.",
                       epilog="examples:\n"
                              "  monogres-oci test --layout oci --extension postgis\n"
                              "  monogres-oci test 127.0.0.1:5000/monogres/unit:18-7.10-bookworm "
                              "--out tested",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("references", nargs="*", metavar="REF",
                   help="published extension images (HOST/REPO:TAG); or use --layout")
    p.add_argument("--layout", metavar="DIR", help="test the extension images of this OCI layout")
    p.add_argument("--extension", action="append", default=[], metavar="NAME",
                   help="with --layout: only these extensions (default: all)")
    p.add_argument("--out", metavar="DIR",
                   help="for references: the layout that receives the images and their results "
                        "(default: a new temporary directory, kept)")
    add_catalog(p)
    add_build_inputs(p)
    p.add_argument("--distdir", metavar="DIR", help="pre-downloaded source files, by file name")
    p.add_argument("--jobs", type=positive, default=1, metavar="N",
                   help="run up to N gates at once (default 1)")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("verify-blob", help="check a file signed by `cnpg --sign-key`",
                       description="Verify FILE against FILE.sigstore.json (or --bundle) with "
                                   "--key. `cosign verify-blob --key PUB --bundle BUNDLE "
                                   "--insecure-ignore-tlog FILE` checks the same bundle.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--key", required=True, metavar="PUB")
    p.add_argument("--bundle", metavar="BUNDLE", help="default: FILE.sigstore.json")

    p = sub.add_parser("install", help="pull artifacts and extract them for bare-metal use",
                       description="Pull images for this machine's platform, verify signatures, "
                                   "attestations and every digest, extract them, and print the "
                                   "postgresql.conf lines that load the extensions. An extension "
                                   "goes to DEST/<name>; the Postgres artifact to DEST (its tree is "
                                   "usr/lib/postgresql/<major>). Unsigned artifacts are refused "
                                   "unless --allow-unsigned is given.")
    p.add_argument("references", nargs="+", metavar="REF", help="HOST/REPO:TAG or HOST/REPO@sha256:...")
    p.add_argument("--dest", required=True, metavar="DIR")
    p.add_argument("--platform", default=None, help="default: this machine's, e.g. linux/amd64")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument("--key", metavar="PUB",
                       help="install only what is signed with this key and carries signed "
                            "SBOM and provenance")
    trust.add_argument("--allow-unsigned", action="store_true",
                       help="install without checking signatures (digests are still checked)")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)

    p = sub.add_parser("cnpg", help="print CloudNativePG manifests for published artifacts",
                       description="Resolve the published images to digests and print a Cluster "
                                   "(spec.postgresql.extensions with image volumes) and an "
                                   "ImageCatalog, as YAML.")
    add_catalog(p)
    p.add_argument("--registry", required=True, metavar="HOST[:PORT]/NAMESPACE")
    p.add_argument("--postgres", required=True, metavar="VERSION", help="a Postgres release, e.g. 18.6")
    p.add_argument("--option-set", default=None, metavar="NAME", help="default: the release's first")
    p.add_argument("--distro", default=None, metavar="NAME", help="default: the release's first")
    p.add_argument("--extension", action="append", default=[], metavar="NAME[=VERSION]")
    p.add_argument("--name", default="monogres", help="metadata.name of the Cluster and ImageCatalog")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--sign-key", metavar="KEY",
                   help="with --output: sign FILE as a blob into FILE.sigstore.json")
    add_registry_opts(p)

    p = sub.add_parser("site", help="write the catalog as a static website",
                       description="Write a static website from an OCI layout: one page for the "
                                   "whole catalog, with search and filters (Postgres major, "
                                   "distro, architecture, licence, preload) that run in the "
                                   "browser, and one page per extension with its versions, "
                                   "tags and digests, licences, bundled libraries, upstream test "
                                   "results, SBOM and provenance summaries, and snippets to copy "
                                   "(CloudNativePG extensions stanza and ImageCatalog, oras pull, "
                                   "monogres-oci install, cosign verify). No external asset: it "
                                   "works from the directory (file://) or any web server.",
                       epilog="examples:\n  monogres-oci site --layout oci --out site "
                              "--registry registry.example.com/monogres --key monogres.pub\n"
                              "  monogres-oci site --out site --registry registry.example.com/"
                              "monogres \\\n      $(jq -r '.refs[].reference' merged.json)"
                              "   (from the registry)\n  then open site/index.html",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("published", nargs="*", metavar="REF",
                   help="published images (HOST/NAMESPACE/NAME:TAG, as `publish` or `merge "
                        "--json` print them) to read from their registry instead of a layout: "
                        "their indexes, manifests and attached documents, no layers")
    p.add_argument("--layout", default="oci", metavar="DIR",
                   help="the OCI image layout `build` wrote (default: ./oci)")
    p.add_argument("--out", default="site", metavar="DIR",
                   help="where to write the site (default: ./site; replaced whole)")
    p.add_argument("--registry", metavar="HOST[:PORT]/NAMESPACE",
                   help="where the images are published, for the snippets (default: a "
                        "placeholder to replace)")
    p.add_argument("--key", default="monogres.pub", metavar="PUB",
                   help="the public key the snippets verify with (default: monogres.pub)")
    p.add_argument("--insecure", action="store_true",
                   help="the registry speaks plain HTTP (a loopback one is taken to): it is "
                        "read so, and the snippets tell oras and cosign so")
    p.add_argument("--ca-file", metavar="PEM", help="trust this CA for the registry's TLS "
                                                    "certificate (with REF...)")
    p.add_argument("--json", action="store_true", help="print the files written, as JSON")

    p = sub.add_parser("import", help="write catalog entries from Debian source packages",
                       description="Add (or update) catalog entries from Debian source packages. "
                                   "The version and the upstream tarball's sha256 are pinned from "
                                   "the archive's signed Sources index; the tarball is read for "
                                   "the build system, the SQL names (control files) and whether "
                                   "_PG_init needs shared_preload_libraries; the licence comes from "
                                   "a machine-readable debian/copyright (never guessed), the "
                                   "supported releases from debian/pgversions. Comments and order "
                                   "of the catalog are kept; the result is validated before it is "
                                   "written. Prints every decision and its evidence, and what it "
                                   "could not decide; exits 1 when a package was not imported.",
                       epilog="examples:\n  monogres-oci import debian pgsphere postgresql-q3c=2.0.1-4\n"
                              "  monogres-oci import debian pgsphere --dry-run --json\n"
                              "  monogres-oci import debian --check --json   (for a scheduled job)\n"
                              "  monogres-oci import debian --all --dry-run\n"
                              "  monogres-oci import debian pgfincore --license BSD-3-Clause"
                              "   (read in its copyright file)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("origin", choices=["debian"], help="where the packages come from")
    p.add_argument("packages", nargs="*", metavar="SOURCE[=VERSION]",
                   help="source package names (the newest version whose tarball downloads here, "
                        "unless =VERSION)")
    add_catalog(p)
    p.add_argument("--license", metavar="SPDX-EXPRESSION",
                   help="the licence a person read in the package's copyright file, for one "
                        "whose debian/copyright is not machine-readable or names a licence "
                        "without an SPDX identifier (the importer refuses to guess); with one "
                        "SOURCE. Once in the catalog, later imports of it keep it")
    p.add_argument("--all", action="store_true",
                   help="every source package of the archive's suites that build-depends on "
                        "postgresql-server-dev-all or postgresql-all; prints what it could not take")
    p.add_argument("--check", action="store_true",
                   help="write nothing: list entries whose Debian package has a newer upstream "
                        "release in the archive, with the import command that takes it")
    p.add_argument("--dry-run", action="store_true", help="print the entries, do not write")
    p.add_argument("--cache-dir", metavar="DIR")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("base", help="make a base image from Debian packages",
                       description="Create a base image with debootstrap from this machine's Debian "
                                   "archive and push it to a registry, for places where the "
                                   "catalog's public base image cannot be pulled. Prints the "
                                   "digest-pinned reference to pass as --base DISTRO=REF: an OCI "
                                   "index with one image per architecture (cross-compiling stages "
                                   "use the build machine's, the artifacts the target's). A "
                                   "foreign architecture's root file system is made through "
                                   "debootstrap's second stage under QEMU (binfmt_misc).")
    p.add_argument("action", choices=["create"])
    add_catalog(p)
    p.add_argument("--distro", required=True, metavar="NAME")
    p.add_argument("--registry", required=True, metavar="HOST[:PORT]/NAMESPACE")
    p.add_argument("--arch", action="append", choices=["amd64", "arm64"],
                   help="architecture to include (repeatable; default: every one the distro lists)")
    p.add_argument("--cache-dir", metavar="DIR")
    p.add_argument("--json", action="store_true")
    add_registry_opts(p)
    return parser
