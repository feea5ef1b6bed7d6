"""The blob half of the distribution API: existence checks, uploads (monolithic, chunked and
resumed, or mounted from another repository) and downloads checked against their digests.

:class:`monogres_oci.oci.registry.RegistryClient` adds manifests, tags and referrers on top.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from monogres_oci.errors import RegistryError, TransientRegistryError
from monogres_oci.oci.digest import CHUNK_SIZE, check_digest
from monogres_oci.oci.reference import check_repository
from monogres_oci.oci.streams import BlobReader, FileRange
from monogres_oci.oci.transport import Body, Transport, pull_scope, push_scope

BlobStatus = Literal["pushed", "exists", "mounted"]
# Chunked uploads: Docker Hub, GHCR and distribution accept chunks; 64 MiB and more as chunks of
# 32 MiB keeps a lost connection's cost small and the request count low.
CHUNKED_UPLOAD_THRESHOLD = 64 << 20
CHUNK_LENGTH = 32 << 20


def _range_end(header: str | None, default: int) -> int:
    """The offset after what a ``Range: 0-<last>`` answer says the registry holds. Distribution
    answers "0-0" for an empty session too; taken as nothing (a byte sent again is refused
    with 416, which restarts the upload)."""
    found = re.fullmatch(r"(?:bytes=)?0-(\d+)", (header or "").strip())
    if not found:
        return default
    last = int(found.group(1))
    return last + 1 if last > 0 else 0


class BlobsAPI(Transport):
    """The blob endpoints of one registry host (its HTTP plumbing: :class:`Transport`)."""

    # Blobs past the threshold go up in chunks, so a broken connection costs one chunk.
    chunk_threshold: int = CHUNKED_UPLOAD_THRESHOLD
    chunk_size: int = CHUNK_LENGTH

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Tell whether ``repo`` has the blob ``digest``."""
        check_repository(repo)
        response = self._send(
            "HEAD",
            f"/v2/{repo}/blobs/{check_digest(digest)}",
            pull_scope(repo),
            ok=(200, 404),
            what=f"checking blob {digest} in {repo}",
        )
        response.close()
        return response.status_code == 200

    def push_blob(
        self,
        repo: str,
        source: bytes | Path,
        digest: str,
        size: int,
        *,
        mount_from: str | None = None,
    ) -> BlobStatus:
        """Upload a blob (monolithic POST then PUT) unless present; say what happened.

        ``mount_from`` names another repository of the same registry that has the blob; the
        registry is asked to link it instead of receiving the bytes again. A transient failure
        of the upload's PUT repeats the whole sequence from the existence check: a PUT whose
        answer was lost may have been committed, and its upload session is gone either way.
        """
        check_repository(repo)
        check_digest(digest)
        return self._retrying(
            f"uploading blob {digest} to {repo}",
            lambda: self._push_blob_once(repo, source, digest, size, mount_from),
        )

    def _push_blob_once(self, repo: str, source: bytes | Path, digest: str, size: int,
                        mount_from: str | None) -> BlobStatus:
        # The check and the start of a session are safe to repeat on their own; only a failed
        # PUT makes the whole sequence start over (its session may be gone, its blob stored).
        exists = self._send("HEAD", f"/v2/{repo}/blobs/{digest}", pull_scope(repo), ok=(200, 404),
                            what=f"checking blob {digest} in {repo}")
        exists.close()
        if exists.status_code == 200:
            return "exists"
        query = ""
        scope = push_scope(repo)
        if mount_from:
            query = "?" + urlencode({"mount": digest, "from": check_repository(mount_from)})
            scope = f"{scope} {pull_scope(mount_from)}"
        started = self._send(
            "POST",
            f"/v2/{repo}/blobs/uploads/{query}",
            scope,
            ok=(201, 202),
            what=f"starting the upload of {digest} to {repo}",
            headers={"Content-Length": "0"},
        )
        started.close()
        if started.status_code == 201:
            return "mounted"
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} started an upload but gave no Location")
        url = urljoin(self.base_url + "/", location)
        body: Body = source
        if isinstance(source, Path) and size > self.chunk_threshold:
            minimum = int(started.headers.get("OCI-Chunk-Min-Length") or 0)
            url = self._upload_chunks(url, scope, source, size, digest,
                                      max(self.chunk_size, minimum))
            body = None  # everything is there: the PUT only closes the session
        parts = urlsplit(url)
        joined = "&".join(p for p in (parts.query, urlencode({"digest": digest})) if p)
        self._send(
            "PUT",
            urlunsplit(parts._replace(query=joined)),
            scope,
            ok=(201,),
            what=f"uploading blob {digest} ({size} bytes) to {repo}",
            headers={"Content-Type": "application/octet-stream",
                     **({} if body is not None else {"Content-Length": "0"})},
            body=body,
            retry=False,
        ).close()
        return "pushed"

    def _upload_chunks(self, url: str, scope: str, source: Path, size: int, digest: str,
                       chunk: int) -> str:
        """PATCH ``source`` in chunks; after a transient failure, ask the registry how much it
        has (GET on the session answers ``Range: 0-<last byte>``) and go on from there. A
        session the registry no longer knows, or will not resume, is a transient failure of
        the whole upload, which starts over from its HEAD. (distribution 2.8 resumes a session
        only with the state its last answer gave: after a chunk whose answer was lost, it
        refuses with BLOB_UPLOAD_INVALID.) Returns the session URL to close with the PUT."""
        offset, resumed, started = 0, 0, self._clock()
        while offset < size:
            length = min(chunk, size - offset)
            try:
                response = self._send(
                    "PATCH", url, scope, ok=(202,),
                    what=f"uploading bytes {offset}-{offset + length - 1} of blob {digest}",
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{offset + length - 1}"},
                    body=FileRange(source, offset, length), retry=False)
                url = urljoin(url, response.headers.get("Location") or url)
                offset = _range_end(response.headers.get("Range"), offset + length)
            except TransientRegistryError as exc:
                resumed += 1
                wait = self._wait_allowed(resumed, started, exc)
                if wait is None:
                    raise
                self._sleep(wait)
                status = self._send("GET", url, scope, ok=(204,), retry=False,
                                    what=f"asking how much of blob {digest} arrived")
                url = urljoin(url, status.headers.get("Location") or url)
                offset = _range_end(status.headers.get("Range"), 0)
                self._announce(f"resuming the upload of {digest} at byte {offset} of {size} "
                               f"after: {exc}")
        return url

    def open_blob(self, repo: str, digest: str, size: int | None = None, *,
                  retry: bool = True) -> BlobReader:
        """Start downloading a blob; the returned stream checks the digest when read to the end.

        Starting is repeated on transient failures; a break while the caller reads raises
        TransientRegistryError, since only the caller can start its reading again."""
        check_repository(repo)
        response = self._send(
            "GET",
            f"/v2/{repo}/blobs/{check_digest(digest)}",
            pull_scope(repo),
            ok=(200,),
            what=f"fetching blob {digest} from {repo}",
            stream=True,
            retry=retry,
        )
        return BlobReader(response, digest, size)

    def get_blob(self, repo: str, digest: str, size: int | None = None) -> bytes:
        """Download a (small) blob into memory, checked against its digest."""
        def once() -> bytes:
            with self.open_blob(repo, digest, size, retry=False) as reader:
                return reader.read()
        return self._retrying(f"fetching blob {digest} from {repo}", once)

    def download_blob(self, repo: str, digest: str, dest: Path, size: int | None = None) -> None:
        """Download a blob to the file ``dest``; it only appears there once verified."""
        self._retrying(f"fetching blob {digest} from {repo}",
                       lambda: self._download_blob_once(repo, digest, dest, size))

    def _download_blob_once(self, repo: str, digest: str, dest: Path, size: int | None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, \
                    self.open_blob(repo, digest, size, retry=False) as reader:
                while chunk := reader.read(CHUNK_SIZE):
                    out.write(chunk)
                reader.read()  # make sure the end (and so the check) was reached
            os.replace(temp, dest)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
