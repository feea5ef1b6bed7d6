"""The attest stage: build records, SBOMs and provenance for packaged images, signatures
(in-toto statements, Sigstore bundles), and their attachment to images by subject."""
