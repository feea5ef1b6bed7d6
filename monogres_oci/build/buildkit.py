"""One BuildKit build through ``docker buildx build``, its log streamed line by line.

This is the only place that drives buildx (through python-on-whales): base images and compile
steps both go through :func:`buildx_build`, so they fail the same way, with a ``BuildError`` that
names the target and ends with the tail of the build log.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

from monogres_oci.errors import BuildError

LOG_TAIL_LINES = 40
# BuildKit ends a failed log with an excerpt of the Dockerfile around the failing RUN
# ("extension.Dockerfile:268", a dashed rule, " 300 | >>> ..."); a long heredoc fills the tail
# with it and pushes the compiler's error out, so the tail leaves it out (the full log keeps it).
_EXCERPT_LINE = re.compile(r"^(\S*Dockerfile:\d+|-{20,}|\s*\d+ \|( .*)?)$")

# Where this repository keeps its Dockerfiles. They are not package data (yet), so this only
# works from a source checkout or an editable install.
DOCKERFILES = Path(__file__).resolve().parents[2] / "dockerfiles"

Progress = Callable[[str], None]


def dockerfile(name: str) -> Path:
    """The path of one of this repository's Dockerfiles, checked to exist."""
    path = DOCKERFILES / name
    if not path.is_file():
        raise BuildError(f"Dockerfile {name} not found at {path} (run from a source checkout)")
    return path


def platform_arch(platform: str) -> str:
    """The Debian architecture name for an OCI platform string such as ``linux/arm64``."""
    mapping = {"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64"}
    try:
        return mapping[platform]
    except KeyError:
        raise BuildError(
            f"unsupported platform {platform!r}; supported: {', '.join(sorted(mapping))}"
        ) from None


def log_tail(lines: Sequence[str]) -> list[str]:
    """The last lines of a build log that are build output, not BuildKit's Dockerfile excerpt."""
    return [line for line in lines if not _EXCERPT_LINE.match(line)][-LOG_TAIL_LINES:]


def buildx_build(
    *,
    what: str,
    context: Path,
    dockerfile_path: Path,
    platform: str,
    output: Mapping[str, str],
    build_args: Mapping[str, str] | None = None,
    build_contexts: Mapping[str, Path | str] | None = None,
    target: str | None = None,
    cache: bool = True,
    metadata_file: Path | None = None,
    progress: Progress | None = None,
    log_file: Path | None = None,
) -> list[str]:
    """Run one ``docker buildx build`` with host networking and return its log lines.

    Every line of the plain-progress log goes to ``progress`` as it arrives (and to
    ``log_file``). Provenance and SBOM attestations are switched off: they carry build times
    and would make the result irreproducible; this project attaches its own beside the image.
    """
    # Imported here so that modules which only plan builds do not need the Docker client.
    from python_on_whales import docker
    from python_on_whales.exceptions import DockerException

    tail: collections.deque[str] = collections.deque(maxlen=10 * LOG_TAIL_LINES)
    lines: list[str] = []
    log = log_file.open("w", encoding="utf-8") if log_file else None
    try:
        stream = docker.buildx.build(
            context,
            file=dockerfile_path,
            target=target,
            build_args=dict(build_args or {}),
            build_contexts={k: str(v) for k, v in (build_contexts or {}).items()},
            platforms=[platform],
            network="host",
            output=dict(output),
            cache=cache,
            metadata_file=metadata_file,
            provenance=False,
            sbom=False,
            progress="plain",
            stream_logs=True,
        )
        # stream_logs=True makes build() return the log as an iterator of text chunks.
        for chunk in cast(Iterator[str], stream):
            for line in chunk.splitlines():
                tail.append(line)
                lines.append(line)
                if log:
                    log.write(line + "\n")
                if progress:
                    progress(line)
    except DockerException as exc:
        where = f" (full log: {log_file})" if log_file else ""
        raise BuildError(
            f"build of {what} failed (exit {exc.return_code}){where}; "
            "last lines of the build log:\n" + "\n".join(log_tail(tail))
        ) from exc
    except UnicodeDecodeError as exc:
        # python-on-whales decodes a failed build's whole output as UTF-8 to classify the
        # error, and a compiler's non-UTF-8 byte (a quote in a localized message) breaks it:
        # the build failed all the same, and the log says how.
        where = f" (full log: {log_file})" if log_file else ""
        raise BuildError(
            f"build of {what} failed{where}; last lines of the build log:\n"
            + "\n".join(log_tail(tail))) from exc
    except FileNotFoundError as exc:  # no docker client on PATH
        raise BuildError(f"build of {what} failed: {exc}") from exc
    finally:
        if log:
            log.close()
    return lines


def shell_words(words: Sequence[str]) -> str:
    """Join words for a build arg that the Dockerfile splits on whitespace; reject what breaks."""
    for word in words:
        if not word or any(c.isspace() for c in word) or any(c in word for c in "'\"\\$`"):
            raise BuildError(f"build argument word {word!r} must be non-empty, without blanks or quotes")
    return " ".join(words)
