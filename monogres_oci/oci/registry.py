"""A client for the OCI distribution-spec API (``/v2/``) of one registry, on ``requests``.

It speaks to ``https://HOST[:PORT]`` (or plain ``http://`` with ``insecure=True``), trusts the
system CAs or ``ca_file``, and authenticates as the registry asks (anonymous, Basic, Bearer
token) with credentials from the Docker config (see :mod:`monogres_oci.oci.auth`).

Every request has a timeout (10 s to connect, ``read_timeout`` between bytes). What may succeed
when repeated (a connection error or timeout, 408, 429, 500, 502, 503, 504, a body cut short, an
upload session the registry forgot) is repeated under a :class:`RetryPolicy`, each retry
announced through ``on_retry``; an operation is the unit that is repeated, so a blob upload
starts again from its existence check rather than reusing a session that may be gone. Anything
else is reported at once as a RegistryError (TLS, unexpected status with the registry's own
error codes) or an AuthError (401/403, saying whether credentials from the Docker config were
used). Nothing downloaded is trusted before its digest has been checked.

A client keeps one ``requests.Session`` per thread that uses it (requests does not promise that
a session is thread-safe), so the publisher's workers share one client and its tokens.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from monogres_oci.errors import RegistryError, VerifyError
from monogres_oci.oci.blobs import BlobsAPI
from monogres_oci.oci.digest import check_digest, is_digest, sha256_digest
from monogres_oci.oci.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
)
from monogres_oci.oci.parse import parse_index
from monogres_oci.oci.reference import check_repository
from monogres_oci.oci.transport import MAX_MANIFEST_SIZE, pull_scope, push_scope

DEFAULT_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)

# Referrers tag updates: read back after 0.25-0.5 s, made again up to 8 times in all.
REFERRERS_SETTLE = 0.25
REFERRERS_ROUNDS = 8
_JITTER = random.Random()


@dataclass(frozen=True)
class Referrers:
    """The referrers of a manifest, and whether the registry's referrers API supplied them."""

    index: Index
    from_api: bool


class RegistryClient(BlobsAPI):
    """The distribution API of one registry host: manifests, tags and referrers here, blobs in
    :class:`BlobsAPI`, HTTP plumbing in :class:`Transport`."""

    # Seconds to wait before reading back a referrers tag update (None: no read-back).
    referrers_settle: float | None = REFERRERS_SETTLE

    # --- API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers ``/v2/`` and accepts our credentials."""
        self._send("GET", "/v2/", "", ok=(200,), what="the API version check").close()

    def push_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or its digest; return its digest."""
        digest, _ = self._put_manifest(repo, reference, data, media_type)
        return digest

    def push_referrers(self, repo: str, subject_digest: str,
                       items: Sequence[tuple[bytes, Descriptor]]) -> bool:
        """PUT manifests that have ``subject_digest`` as ``subject``; make them discoverable.

        ``items`` are (manifest bytes, descriptor as a referrers list shows it). A registry with
        the referrers API says so with an ``OCI-Subject`` header and indexes them itself;
        otherwise (distribution 2.8) they are merged, in one update, into the index under the
        ``sha256-<hex>`` fallback tag, as distribution-spec 1.1 asks of clients. Returns True
        when the fallback tag was used.

        That read-modify-write is not atomic (the distribution API has no compare-and-swap),
        so another publisher attaching to the same subject at the same moment can overwrite
        the update with its own. Each update is therefore read back after a short, jittered
        settling time, and made again while any of our entries is missing; a writer that read
        the index before our update and writes it only after our read-back can still drop it,
        so the settling time is chosen well above a request's round trip.
        """
        missing = []
        for data, entry in items:
            _, headers = self._put_manifest(repo, entry.digest, data, entry.media_type)
            if not headers.get("OCI-Subject"):
                missing.append(entry)
        if not missing:
            return False
        tag, existing = self._fallback_index(repo, subject_digest)
        for _ in range(REFERRERS_ROUNDS):
            known = {d.digest for d in existing.manifests}
            added = tuple(d for d in missing if d.digest not in known)
            if not added:
                return True
            merged = Index((*existing.manifests, *added), existing.annotations)
            self._put_manifest(repo, tag, merged.to_json(), OCI_INDEX)
            if self.referrers_settle is None:
                return True  # trust the write (for showing what the read-back prevents)
            self._sleep(self.referrers_settle * (1 + _JITTER.random()))
            tag, existing = self._fallback_index(repo, subject_digest)
        raise RegistryError(
            f"registry {self.host}: the referrers of {repo}@{subject_digest} (tag {tag}) kept "
            f"being overwritten by another publisher ({REFERRERS_ROUNDS} rounds); run again "
            "when the other publish has finished")

    def _fallback_index(self, repo: str, digest: str) -> tuple[str, Index]:
        """The ``sha256-<hex>`` referrers tag of ``digest`` and its index (empty when absent)."""
        tag = digest.replace(":", "-")
        if self.head_manifest(repo, tag, (OCI_INDEX,)) is None:
            return tag, Index(())
        data, _, _ = self.get_manifest(repo, tag, (OCI_INDEX,))
        return tag, parse_index(data)

    def _put_manifest(self, repo: str, reference: str, data: bytes,
                      media_type: str) -> tuple[str, Mapping[str, str]]:
        check_repository(repo)
        digest = sha256_digest(data)
        if is_digest(reference) and reference != digest:
            raise VerifyError(f"manifest bytes have digest {digest}, not {reference}")
        response = self._send(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            push_scope(repo),
            ok=(201,),
            what=f"pushing manifest {repo}:{reference}",
            headers={"Content-Type": media_type},
            body=data,
        )
        response.close()
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise VerifyError(
                f"registry {self.host} stored {repo} manifest as {stored}, not {digest}"
            )
        return digest, response.headers

    def head_manifest(
        self, repo: str, reference: str, accept: tuple[str, ...] = DEFAULT_ACCEPT
    ) -> Descriptor | None:
        """Return the descriptor ``repo:reference`` resolves to, or None if there is none."""
        check_repository(repo)
        response = self._send(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            pull_scope(repo),
            ok=(200, 404),
            what=f"checking manifest {repo}:{reference}",
            headers={"Accept": ", ".join(accept)},
        )
        response.close()
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest") or (
            reference if is_digest(reference) else None
        )
        size = response.headers.get("Content-Length")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if digest is None or size is None or not media_type:
            data, media_type, digest = self.get_manifest(repo, reference, accept)
            return Descriptor(media_type, digest, len(data))
        return Descriptor(media_type, digest, int(size))

    def get_manifest(
        self, repo: str, reference: str, accept: tuple[str, ...] = DEFAULT_ACCEPT
    ) -> tuple[bytes, str, str]:
        """Fetch a manifest or index; return (bytes, media type, digest), checked by digest."""
        check_repository(repo)
        return self._retrying(f"fetching manifest {repo}:{reference}",
                              lambda: self._get_manifest_once(repo, reference, accept))

    def _get_manifest_once(self, repo: str, reference: str,
                           accept: tuple[str, ...]) -> tuple[bytes, str, str]:
        response = self._send(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            pull_scope(repo),
            ok=(200,),
            what=f"fetching manifest {repo}:{reference}",
            headers={"Accept": ", ".join(accept)},
            stream=True,
            retry=False,
        )
        with response:
            data = self._read_body(response, MAX_MANIFEST_SIZE + 1, f"manifest {repo}:{reference}")
        if len(data) > MAX_MANIFEST_SIZE:
            raise VerifyError(f"manifest {repo}:{reference} is larger than 4 MiB; refused")
        digest = sha256_digest(data)
        if is_digest(reference) and digest != reference:
            raise VerifyError(
                f"manifest {repo}@{reference} from {self.host} has digest {digest}; refused"
            )
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored.startswith("sha256:") and stored != digest:
            raise VerifyError(
                f"registry {self.host} says {repo}:{reference} is {stored}, not {digest}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media_type, digest


    def list_tags(self, repo: str) -> list[str]:
        """Return every tag of ``repo`` (following pagination); none if the repository is new."""
        check_repository(repo)
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            response = self._send(
                "GET", path, pull_scope(repo), ok=(200, 404), what=f"listing the tags of {repo}"
            )
            with response:
                if response.status_code == 404:
                    return []
                tags.extend(response.json().get("tags") or [])
                path = response.links.get("next", {}).get("url")
        return sorted(set(tags))

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> Referrers:
        """Return what refers to ``digest`` (OCI 1.1 referrers), via the API or the tag scheme.

        Registries without the referrers API (distribution 2.8 among them) answer 404; then the
        ``sha256-<hex>`` fallback tag's index is read, and an empty index means "none".
        """
        check_repository(repo)
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        response = self._send(
            "GET",
            f"/v2/{repo}/referrers/{check_digest(digest)}{query}",
            pull_scope(repo),
            ok=(200, 404),
            what=f"listing the referrers of {digest} in {repo}",
            headers={"Accept": OCI_INDEX},
        )
        with response:
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if response.status_code == 200 and media_type == OCI_INDEX:
                return Referrers(parse_index(response.content), from_api=True)
        _, found = self._fallback_index(repo, digest)
        if artifact_type:
            kept = tuple(d for d in found.manifests if d.artifact_type == artifact_type)
            found = Index(kept, found.annotations)
        return Referrers(found, from_api=False)
