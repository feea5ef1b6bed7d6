"""monogres-oci: PostgreSQL and its extensions, built from pinned source, shipped as OCI images."""

__version__ = "0.1.0"
