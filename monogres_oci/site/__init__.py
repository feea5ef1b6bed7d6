"""The catalog as a static website: collected from an OCI layout, rendered to files."""

from monogres_oci.site.collect import Artifact, collect
from monogres_oci.site.render import SiteOptions, render, site_json

__all__ = ["Artifact", "SiteOptions", "collect", "render", "site_json"]
