"""The command line: a thin layer that parses options and wires the stages; each command is
a function of the module of its stage (catalog, build, publish, consume)."""

from monogres_oci.cli.main import main
from monogres_oci.cli.parser import build_parser

__all__ = ["build_parser", "main"]
