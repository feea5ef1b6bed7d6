"""The compile stage: PostgreSQL and its extensions from source tarballs into install trees, with
BuildKit; the build context holds only the pinned sources (and the patches the catalog names)."""

from monogres_oci.build.compile.engine import BUILD_LOG, DONE_MARKER, content_name, elf_machine
from monogres_oci.build.compile.extension import (
    ExtensionBuildOutput,
    ExtensionInvocation,
    compile_extension,
    export_build_image,
    extension_build_args,
    extension_invocation,
    merged_trees,
    provided_sonames,
)
from monogres_oci.build.compile.postgres import PostgresBuildOutput, compile_postgres, postgres_build_args

__all__ = [
    "BUILD_LOG",
    "DONE_MARKER",
    "ExtensionBuildOutput",
    "ExtensionInvocation",
    "PostgresBuildOutput",
    "compile_extension",
    "compile_postgres",
    "content_name",
    "elf_machine",
    "extension_build_args",
    "export_build_image",
    "extension_invocation",
    "merged_trees",
    "postgres_build_args",
    "provided_sonames",
]
