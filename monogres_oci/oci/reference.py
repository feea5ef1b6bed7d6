"""Image references (``host[:port]/repository[:tag][@sha256:...]``) and their grammar checks.

The grammar is the distribution-spec's: repository components are lower-case alphanumerics
joined by ``.``, ``_``, ``__`` or dashes; tags are up to 128 word characters, dots and dashes.
The registry host is always explicit: this project never guesses Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monogres_oci.errors import UsageError
from monogres_oci.oci.digest import is_digest

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]+)?$"
)


def check_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise UsageError saying why."""
    if not REPOSITORY_RE.match(name) or len(name) > 255:
        raise UsageError(
            f"invalid repository name {name!r}: use lower-case letters, digits and '.', '_', "
            "'-' separators, components joined by '/'"
        )
    return name


def check_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise UsageError saying why."""
    if not TAG_RE.match(tag):
        raise UsageError(
            f"invalid tag {tag!r}: up to 128 letters, digits, '_', '.' and '-', not starting "
            "with '.' or '-'"
        )
    return tag


def check_host(host: str) -> str:
    """Return ``host`` if it looks like ``HOST[:PORT]``, else raise UsageError."""
    if not HOST_RE.match(host):
        raise UsageError(f"invalid registry host {host!r}: expected HOST or HOST:PORT")
    return host


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference: registry host, repository, and a tag and/or digest."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        check_host(self.host)
        check_repository(self.repository)
        if self.tag is not None:
            check_tag(self.tag)
        if self.digest is not None and not is_digest(self.digest):
            raise UsageError(f"invalid digest {self.digest!r} in an image reference")
        if self.tag is None and self.digest is None:
            raise UsageError(f"reference {self.host}/{self.repository} needs a tag or a digest")

    @property
    def name(self) -> str:
        """``host/repository``, without tag or digest."""
        return f"{self.host}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/`` in a registry URL: the digest if known, else the tag."""
        return self.digest or str(self.tag)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse ``host[:port]/repo[:tag][@digest]``; the host part is required."""
    rest, _, digest = text.partition("@")
    host, slash, path = rest.partition("/")
    if not slash:
        raise UsageError(f"image reference {text!r} has no registry host (HOST[:PORT]/REPO:TAG)")
    repository, tag = path, None
    if ":" in path.rsplit("/", 1)[-1]:
        repository, tag = path.rsplit(":", 1)
    return Reference(host, repository, tag, digest or None)


def parse_target(text: str) -> tuple[str, str]:
    """Split a push target ``HOST[:PORT][/NAMESPACE]`` into (host, namespace)."""
    host, _, namespace = text.strip("/").partition("/")
    check_host(host)
    if namespace:
        check_repository(namespace)
    return host, namespace


def split_ref_name(name: str) -> tuple[str, str]:
    """Split a layout reference name ``REPO:TAG`` into (repository, tag), checking both."""
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        raise UsageError(f"layout reference {name!r} is not REPO:TAG")
    return check_repository(repository), check_tag(tag)
