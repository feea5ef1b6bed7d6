"""The error hierarchy: every expected failure is a MonogresError with a message a person can act on.

The CLI catches MonogresError in one place and prints ``str(error)``; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class MonogresError(Exception):
    """Base of every expected failure."""

    exit_code = 1


class CatalogError(MonogresError):
    """The catalog (or another input file) is malformed or violates its schema."""

    def __init__(self, path: str, pointer: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.pointer = pointer
        self.problem = problem
        self.hint = hint
        where = f"{path}: {pointer or '/'}"
        text = f"{where}: {problem}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class UsageError(MonogresError):
    """The command line asks for something that does not exist or does not fit together."""

    exit_code = 2


class FetchError(MonogresError):
    """A source could not be obtained from any of its origins."""


class ChecksumError(FetchError):
    """A downloaded file does not have the sha256 the catalog pins."""

    def __init__(self, name: str, origin: str, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"checksum mismatch for {name} from {origin}:\n"
            f"  expected sha256:{expected}\n"
            f"  got      sha256:{got}\n"
            "  nothing was built or published; fix the sha256 in the catalog or the origin"
        )


class CommandError(MonogresError):
    """An external command failed; carries argv, exit code and the tail of its output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, what: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.rstrip().splitlines()[-30:])
        head = what or f"command failed: {' '.join(self.argv[:6])}{' ...' if len(argv) > 6 else ''}"
        super().__init__(f"{head} (exit {returncode})\n{tail}".rstrip())


class ImporterError(MonogresError):
    """A source package could not be turned into a catalog entry (or not without a person)."""


class BuildError(MonogresError):
    """A compile step failed; the message ends with the tail of the build log."""


class RegistryError(MonogresError):
    """A registry refused, could not be reached, or answered something unexpected."""


class TransientRegistryError(RegistryError):
    """A registry failure that repeating the operation may cure (a 503, a reset connection);
    the client retries these within its policy and raises the last one when it gives up."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AuthError(RegistryError):
    """The registry rejected the credentials (or asked for some and none were configured)."""


class VerifyError(MonogresError):
    """Pulled content does not match its digest or is not what was asked for."""


class GateError(MonogresError):
    """The gate could not run (the server did not start, the engine refused): not a test result."""
