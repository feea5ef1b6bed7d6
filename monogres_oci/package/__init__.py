"""The package stage: install trees made into OCI images in Python, deterministically (images),
with their labels and tags, the runtime contract, paths rewritten to the mount point (relocate),
and packaged images cached by input digest (cache)."""
