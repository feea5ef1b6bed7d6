# One PostgreSQL extension from a source tarball, built with PGXS against a Postgres install tree
# made by postgres.Dockerfile, in the same base image with the same toolchain.
#
# No "# syntax=" line: the Dockerfile frontend built into BuildKit is used, nothing is pulled.
# Build with `docker buildx build --network host --build-context postgres=PGDIR/install
#   --target export --output type=local,dest=DIR`; DIR then holds:
#   install/usr/lib/postgresql/$PG_MAJOR/{lib,share/extension,...}  what `make install` added
#   licenses/...  LICENSE*, LICENCE*, COPYING* from the source root
#   meta/...      toolchain record: dpkg list, compiler version
#
# Build args (required unless a default is shown):
#   BASE_IMAGE          digest-pinned base image reference (the one Postgres was built in)
#   PG_MAJOR            e.g. 18
#   EXT_TARBALL         file name of the source tarball in the build context
#   BUILD_PACKAGES      the Postgres build's packages, so that its headers see the same libraries
#   EXTRA_PACKAGES      the extension's own build packages
#   MAKE_FLAGS          extra make arguments (VAR=value ...)
#   SOURCE_DATE_EPOCH   seconds; exported to the compiler and tools

ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS base

# Word for word the toolchain stage of postgres.Dockerfile (same ARGs, same RUN), so that
# BuildKit reuses the layer it cached for the Postgres build.
FROM base AS toolchain
ARG BUILD_PACKAGES=""
ARG TOOLCHAIN_PACKAGES="build-essential meson ninja-build pkg-config bison flex"
# Record the base's packages before anything is installed: the runtime overlay leaves those out.
RUN mkdir -p /var/lib/monogres \
 && dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | LC_ALL=C sort \
      > /var/lib/monogres/base-packages.tsv \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ${TOOLCHAIN_PACKAGES} ${BUILD_PACKAGES}

FROM toolchain AS build
ARG EXTRA_PACKAGES=""
RUN if [ -n "${EXTRA_PACKAGES}" ]; then \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${EXTRA_PACKAGES}; \
    fi
ARG PG_MAJOR
ARG EXT_TARBALL
ARG MAKE_FLAGS=""
ARG SOURCE_DATE_EPOCH
# PYTHONHASHSEED: meson is Python; a fixed seed keeps its set orderings (and logs) stable.
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} LC_ALL=C.UTF-8 TZ=UTC PYTHONHASHSEED=0
# The Postgres install tree at its own prefix, as pg_config describes it.
COPY --from=postgres / /
COPY ${EXT_TARBALL} /build/
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
mkdir -p /build/unpack /build/src
tar -xf "/build/${EXT_TARBALL}" -C /build/unpack --no-same-owner
shopt -s nullglob dotglob
entries=(/build/unpack/*)
if [[ ${#entries[@]} -eq 1 && -d ${entries[0]} ]]; then top=${entries[0]}; else top=/build/unpack; fi
cp -a "$top"/. /build/src/
rm -rf /build/unpack "/build/${EXT_TARBALL}"
SCRIPT

# OPTFLAGS="" overrides Makefiles that default to -march=native (pgvector); the prefix map keeps
# /build/src out of the objects.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
# shellcheck disable=SC2086
make -C /build/src -j"$(nproc)" USE_PGXS=1 \
  PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" OPTFLAGS="" \
  COPT="-ffile-prefix-map=/build/src=." ${MAKE_FLAGS}
# shellcheck disable=SC2086
make -C /build/src USE_PGXS=1 \
  PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" OPTFLAGS="" \
  COPT="-ffile-prefix-map=/build/src=." ${MAKE_FLAGS} install DESTDIR=/out
SCRIPT

RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
mkdir -p /out-meta /out-licenses
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > /out-meta/toolchain-packages.tsv
{
  cc --version | sed -n 1p
  echo "pg_config $("/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" --version)"
} > /out-meta/compiler.txt
shopt -s nullglob nocaseglob
for f in /build/src/licen[cs]e* /build/src/copying*; do
  if [[ -f $f ]]; then cp "$f" /out-licenses/; fi
done
SCRIPT

FROM scratch AS export
COPY --from=build /out /install
COPY --from=build /out-licenses /licenses
COPY --from=build /out-meta /meta
