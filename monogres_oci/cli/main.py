"""The entry point: parse, run the command, and turn expected failures into messages and exit statuses."""


from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from monogres_oci.cli.parser import build_parser
from monogres_oci.errors import MonogresError, UsageError
from monogres_oci.progress import Progress


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like the KeyboardInterrupt of Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _handler(command: str) -> Callable[[argparse.Namespace, Progress], int]:
    """The function that runs ``command``: ``cmd_<name>`` of the module of its stage (imported
    only when run, so that `plan` does not load what `build` needs)."""
    name = f"cmd_{command.replace('-', '_')}"
    for stage in ("catalog", "build", "publish", "consume"):
        module = importlib.import_module(f"monogres_oci.cli.{stage}_commands")
        if hasattr(module, name):
            handler: Callable[[argparse.Namespace, Progress], int] = getattr(module, name)
            return handler
    raise UsageError(f"no command {command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = Progress(verbose=args.verbose,
                        mode="quiet" if args.quiet else "json" if args.events else "auto")
    handler = _handler(args.command)
    # SIGTERM (kill, a CI job cancelled, systemd) ends the command as Ctrl-C does: by an
    # exception, so that what is under way cleans up after itself (a gate's containers, scratch
    # directories) instead of the process vanishing mid-step.
    if threading.current_thread() is threading.main_thread():  # where Python delivers signals
        signal.signal(signal.SIGTERM, _terminate)
    try:
        result: int = handler(args, progress)
        return result
    except MonogresError as error:
        print(f"monogres-oci {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except _Terminated:
        print("monogres-oci: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("monogres-oci: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`plan --json | head`): stop quietly, as cat would. Python would
        # complain again when it flushes stdout at exit, so point stdout at nothing first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE, as the shell reports it


