"""Test sources: fixture extensions as tarballs, served over a real local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_tarball(name: str, version: str, dest_dir: Path) -> tuple[Path, str]:
    """Pack tests/fixtures/NAME as NAME-VERSION.tar.gz (deterministic); return path and sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        top = f"{name}-{version}"
        entries = [(top, None)] + [
            (f"{top}/{p.relative_to(FIXTURES / name)}", p)
            for p in sorted((FIXTURES / name).rglob("*"))
        ]
        for arcname, path in entries:
            info = tarfile.TarInfo(arcname)
            info.mtime = 1_700_000_000
            if path is None or path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{name}-{version}.tar.gz"
    out.write_bytes(packed)
    return out, hashlib.sha256(packed).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """Serve a directory on a free loopback port; yields the base URL."""
    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
