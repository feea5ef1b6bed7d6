"""What flows through a registry connection: a file range sent as one upload chunk, and a blob
download that checks its digest and never reads past its size.

Kept apart from the client, which decides what to send and when to repeat it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

import requests
import urllib3.exceptions

from monogres_oci.errors import TransientRegistryError
from monogres_oci.oci.digest import DigestReader

# What a body cut short or a dropped connection raises while a response is being read.
BROKEN_BODY = (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError)


def short_reason(exc: Exception) -> str:
    """Return the useful end of a requests exception (they nest three deep)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*|\[SSL[^\]]*\][^'\")]*|timed out", text)
    return found.group(0).strip() if found else text[:300]


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes of the file ``path`` from ``offset``: one chunk of a chunked upload."""

    path: Path
    offset: int
    length: int


class RangeReader:
    """A read-only stream over one FileRange (what requests sends as a streamed body)."""

    def __init__(self, part: FileRange) -> None:
        self._file = open(part.path, "rb")  # noqa: SIM115  # closed by close()
        self._file.seek(part.offset)
        self._left = part.length

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._file.read(n) if n else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


class BlobReader:
    """A readable stream over a blob download that raises VerifyError at the end on a mismatch."""

    def __init__(self, response: requests.Response, digest: str, size: int | None) -> None:
        self._response = response
        response.raw.decode_content = True
        self._reader = DigestReader(cast(BinaryIO, response.raw))
        self._digest = digest
        self._size = size
        self._done = False

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all when negative); at the end of the blob, check its digest
        and size. Never more than one byte past the size is read: a body that does not end is
        refused, not buffered."""
        whole = n is None or n < 0
        want = -1 if whole else n
        if self._size is not None:
            room = self._size + 1 - self._reader.size
            want = room if whole else min(n, room)
        try:
            data = self._reader.read(want) if want != 0 else b""
        except BROKEN_BODY as exc:
            raise TransientRegistryError(
                f"the connection broke while downloading blob {self._digest} "
                f"({short_reason(exc)})") from None
        if not self._done and (whole or not data and n != 0):
            self._done = True
            self._reader.verify(self._digest, self._size, what="downloaded blob")
        return data

    def readable(self) -> bool:
        """Say that this stream can be read (for io wrappers)."""
        return True

    def close(self) -> None:
        """Release the connection."""
        self._response.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
