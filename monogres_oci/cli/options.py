"""Options several commands share, and their parsing."""


from __future__ import annotations

import argparse
import os
from pathlib import Path


def cache_dir_of(value: str | None) -> Path:
    """--cache-dir, or the XDG cache directory's monogres-oci."""
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "monogres-oci"


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def add_catalog(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", default="extensions.yaml", metavar="FILE",
                   help="the catalog to read (default: ./extensions.yaml)")


def add_selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection (repeatable; default: everything in the catalog)")
    g.add_argument("--postgres", action="append", default=[], metavar="VERSION",
                   help="a Postgres release (18.6) or major (18)")
    g.add_argument("--option-set", action="append", default=[], metavar="NAME")
    g.add_argument("--distro", action="append", default=[], metavar="NAME")
    g.add_argument("--arch", action="append", default=[], choices=["amd64", "arm64"])
    g.add_argument("--extension", action="append", default=[], metavar="NAME[=VERSION]")
    g.add_argument("--postgres-only", action="store_true", help="build no extensions")
    g.add_argument("--emulate", action="store_true",
                   help="compile a foreign architecture under QEMU emulation even where the "
                        "catalog allows cross-compiling (about 15x slower; for comparisons)")


def add_build_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", action="append", default=[], metavar="DISTRO=REF@sha256:...",
                   help="use this base image for DISTRO instead of the catalog's (e.g. one made "
                        "by `monogres-oci base create`); must be pinned by digest")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="sources and build outputs (default: $XDG_CACHE_HOME/monogres-oci)")


def add_registry_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true",
                   help="talk plain HTTP to the registry (loopback registries are plain HTTP anyway)")
    p.add_argument("--ca-file", metavar="PEM", help="trust this CA for the registry's TLS certificate")
    p.add_argument("--retries", type=int, metavar="N",
                   help="repeat a request that failed transiently (connection error, timeout, "
                        "408, 429, 5xx) up to N times, with backoff (default: "
                        "$MONOGRES_RETRIES, else 5; 0: never)")


def add_published_in(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--registry", metavar="HOST[:PORT]/NAMESPACE", help=what + " (rolling tags "
                   "read in parallel; each image records its input digest)")
