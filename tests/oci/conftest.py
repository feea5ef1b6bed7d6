"""Fixtures for the OCI tests: sample layouts and real docker-registry instances."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from tests.support.oci_samples import SampleImage, sample_layout
from tests.support.registry import RunningRegistry, have_registry, start_registry

USER, PASSWORD = "monogres", "s3cret-Hunter2-do-not-print"


def _require_registry() -> None:
    if not have_registry():
        pytest.fail(
            "docker-registry is not installed: apt-get install docker-registry apache2-utils"
        )


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Layout, list[SampleImage]]:
    """A fresh copy of the sample layout (see tests.support.oci_samples)."""
    return sample_layout(tmp_path / "layout", tmp_path / "trees")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A plain-HTTP registry without auth, shared by the tests of one module."""
    _require_registry()
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A plain-HTTP registry with htpasswd Basic auth (USER / PASSWORD)."""
    _require_registry()
    if shutil.which("htpasswd") is None:
        pytest.fail("htpasswd is not installed: apt-get install apache2-utils")
    server = start_registry(tmp_path_factory.mktemp("auth-registry"), auth=(USER, PASSWORD))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """An HTTPS registry with a self-signed certificate (its ca_file is the certificate)."""
    _require_registry()
    server = start_registry(tmp_path_factory.mktemp("tls-registry"), tls=True)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DOCKER_CONFIG at an empty directory so the developer's own logins never leak in."""
    empty = tmp_path / "empty-docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    return empty
