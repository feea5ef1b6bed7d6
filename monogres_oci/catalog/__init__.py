"""The catalog: what to build, pinned by sha256 (model, schema, loader)."""

from monogres_oci.catalog.load import load_catalog
from monogres_oci.catalog.model import (
    Catalog,
    Distro,
    Extension,
    ExtensionVersion,
    OptionSet,
    Origin,
    PostgresRelease,
    Publisher,
    Source,
)

__all__ = [
    "Catalog",
    "Distro",
    "Extension",
    "ExtensionVersion",
    "OptionSet",
    "Origin",
    "PostgresRelease",
    "Publisher",
    "Source",
    "load_catalog",
]
