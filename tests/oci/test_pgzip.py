"""Block-parallel gzip: the same bytes for any number of threads, read back by gzip itself."""

from __future__ import annotations

import gzip
import io
import random
import subprocess

import pytest

from monogres_oci.oci.pgzip import ParallelGzipWriter


def _compress(data: bytes, threads: int, block_size: int, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    with ParallelGzipWriter(out, 6, threads=threads, block_size=block_size) as gz:
        step = max(1, len(data) // pieces)
        for start in range(0, len(data), step):  # written in pieces, as a tar stream is
            gz.write(data[start:start + step])
    return out.getvalue()


def _sample(size: int) -> bytes:
    rng = random.Random(size)
    words = [bytes(rng.choices(b"abcdefghij\n ", k=rng.randint(2, 12))) for _ in range(500)]
    text = b"".join(rng.choice(words) for _ in range(size // 6))[:size // 2]
    return text + rng.randbytes(size - len(text))  # compressible and incompressible parts


@pytest.mark.parametrize("size", [0, 1, 4096, 4096 * 3, 100_000])
def test_the_bytes_depend_on_the_input_only_and_gzip_reads_them(size: int) -> None:
    data = _sample(size)
    one = _compress(data, threads=1, block_size=4096)
    assert _compress(data, threads=2, block_size=4096) == one
    assert _compress(data, threads=5, block_size=4096, pieces=3) == one
    assert gzip.decompress(one) == data
    # the real gzip(1): integrity (CRC and length in the trailer) and the same bytes back
    inflated = subprocess.run(["gzip", "-dc"], input=one, capture_output=True, check=True)
    assert inflated.stdout == data
    assert subprocess.run(["gzip", "-t"], input=one).returncode == 0


def test_the_header_carries_no_time_no_name_and_an_unknown_os() -> None:
    header = _compress(b"x", threads=2, block_size=4096)[:10]
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_an_error_inside_the_block_leaves_the_stream_unfinished() -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), ParallelGzipWriter(out, 6, threads=2, block_size=16) as gz:
        gz.write(b"a" * 100)
        raise RuntimeError("the tar stream failed")
    with pytest.raises(EOFError):  # no trailer: no reader takes it for a whole stream
        gzip.decompress(out.getvalue())
