# A Debian base image from a debootstrap rootfs tar (made by monogres_oci.base).
# No "# syntax=" line: the frontend built into BuildKit is used, nothing is pulled.
# The build context holds only rootfs.tar; ADD unpacks it, keeping owners and modes.
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["/bin/bash"]
