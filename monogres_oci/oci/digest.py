"""Content digests: the ``sha256:<hex>`` names of OCI blobs, and streams that compute them.

Only sha256 is produced or accepted: other registered algorithms (sha512) are refused with an
error naming what was found, because one algorithm keeps digests comparable.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from monogres_oci.errors import VerifyError

SHA256 = "sha256"

# The image-spec grammar for a digest, narrowed to what we can verify.
_DIGEST_RE = re.compile(r"^(?P<algorithm>sha256):(?P<encoded>[a-f0-9]{64})$")

CHUNK_SIZE = 1024 * 1024


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of ``data``."""
    return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"


def is_digest(value: str) -> bool:
    """Tell whether ``value`` is a well-formed sha256 digest (the only kind we verify)."""
    return _DIGEST_RE.match(value) is not None


def check_digest(value: str) -> str:
    """Return ``value`` unchanged if it is a well-formed sha256 digest, else raise VerifyError."""
    if not is_digest(value):
        raise VerifyError(f"not a sha256 digest: {value!r} (expected 'sha256:' and 64 hex digits)")
    return value


def encoded(digest: str) -> str:
    """Return the hex part of a sha256 digest (the blob's file name in an image layout)."""
    return check_digest(digest).split(":", 1)[1]


class DigestWriter:
    """A write-only stream that hashes and counts what passes through it, optionally forwarding it.

    ``target`` may be None when only the digest is wanted (the uncompressed tar of a layer, whose
    sha256 is the diff_id, is never stored).
    """

    def __init__(self, target: BinaryIO | None = None) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        """Hash ``data``, forward it, and return its length."""
        self._hash.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self) -> None:
        """Flush the target, if any."""
        if self._target is not None:
            self._target.flush()

    @property
    def digest(self) -> str:
        """The sha256 digest of everything written so far."""
        return f"{SHA256}:{self._hash.hexdigest()}"


class DigestReader:
    """A read-only stream that hashes and counts what is read through it.

    Reading to the end and then calling :meth:`verify` proves the bytes were the ones named by
    the expected digest; nothing read before that point should be trusted for good.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all when negative), hashing them on the way."""
        data = self._source.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        """Say that this stream can be read (for io wrappers)."""
        return True

    def drain(self, up_to: int | None = None) -> None:
        """Read and hash whatever is left, so the digest covers the whole stream; with
        ``up_to``, stop once that many bytes in all have been read (a stream that never ends
        must not keep us reading)."""
        while up_to is None or self.size < up_to:
            want = CHUNK_SIZE if up_to is None else min(CHUNK_SIZE, up_to - self.size)
            if not self.read(want):
                break

    @property
    def digest(self) -> str:
        """The sha256 digest of everything read so far."""
        return f"{SHA256}:{self._hash.hexdigest()}"

    def verify(self, expected: str, expected_size: int | None = None, what: str = "blob") -> None:
        """Drain the stream and raise VerifyError unless it had the expected digest (and size);
        with a size, one byte past it is enough to know the stream is too long."""
        self.drain(None if expected_size is None else expected_size + 1)
        if expected_size is not None and self.size != expected_size:
            raise VerifyError(
                f"{what} {expected}: expected {expected_size} bytes, got {self.size}; "
                "the content is truncated or not the one asked for"
            )
        if self.digest != expected:
            raise VerifyError(
                f"{what} digest mismatch:\n  expected {expected}\n  got      {self.digest}"
            )
