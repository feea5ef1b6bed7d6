"""The attest stage: build records, SBOMs and provenance for packaged images."""
