"""The publish stage: a layout pushed to a registry, blobs before manifests before tags (push),
and per-architecture publishes joined into multi-arch indexes (merge)."""
