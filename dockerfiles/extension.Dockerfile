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
#   COMPILE_ON          build (default) or target, as for postgres.Dockerfile (and the same value)

# Word for word the stages up to the toolchain of postgres.Dockerfile (same ARGs, same RUN), so
# that BuildKit reuses the layers it cached for the Postgres build.
ARG BASE_IMAGE
# Where the compiler runs: "build" = the build machine's platform (a native build, or a cross
# build when the target is another architecture); "target" = the target's platform (a native
# build, or one emulated by QEMU through binfmt_misc when the target is another architecture).
ARG COMPILE_ON=build

FROM --platform=${BUILDPLATFORM} ${BASE_IMAGE} AS compile-on-build
FROM ${BASE_IMAGE} AS compile-on-target
# The target's own base image: its package list (what the runtime overlay leaves out) and its
# users. Only files are copied out of it, so a cross build runs nothing of the target's.
FROM ${BASE_IMAGE} AS target-base

FROM compile-on-${COMPILE_ON} AS toolchain
ARG TARGETARCH
ARG BUILD_PACKAGES=""
ARG TOOLCHAIN_PACKAGES="build-essential meson ninja-build pkg-config bison flex"
COPY --from=target-base /var/lib/dpkg/status /var/lib/monogres/target-dpkg/status
COPY --from=target-base /etc/passwd /etc/group /var/lib/monogres/target-etc/
# What every later step asks about the target, answered in one place: each script sources it.
COPY <<'TARGET' /usr/local/lib/monogres/target.sh
# Is this a cross build (the compiler runs on another architecture than the target's)?
cross_build() { [[ $(dpkg --print-architecture) != "${TARGETARCH}" ]]; }
# The target's multiarch triplet (aarch64-linux-gnu), which names its cross tools and lib dirs.
target_triplet() { dpkg-architecture -a "${TARGETARCH}" -qDEB_HOST_MULTIARCH 2>/dev/null; }
# The C compiler that makes the target's code.
target_cc() { if cross_build; then echo "$(target_triplet)-gcc"; else echo cc; fi; }
# Each package as apt should install it, one per line: a cross build needs a library
# (Multi-Arch: same) for the target's architecture, and a tool for the build machine's.
build_package_names() {
  local p
  for p in "$@"; do
    if cross_build && apt-cache show --no-all-versions "${p}:${TARGETARCH}" 2>/dev/null \
         | grep -x 'Multi-Arch: same' >/dev/null; then
      echo "${p}:${TARGETARCH}"
    else
      echo "${p}"
    fi
  done
}
TARGET
# A cross build adds the Debian cross toolchain.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
# shellcheck disable=SC2206
packages=(${TOOLCHAIN_PACKAGES})
if cross_build; then
  dpkg --add-architecture "${TARGETARCH}"
  packages+=("crossbuild-essential-${TARGETARCH}")
fi
apt-get update
# shellcheck disable=SC2086
mapfile -t -O "${#packages[@]}" packages < <(build_package_names ${BUILD_PACKAGES})
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
SCRIPT

FROM toolchain AS build
ARG TARGETARCH
ARG EXTRA_PACKAGES=""
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
# shellcheck disable=SC2086
mapfile -t packages < <(build_package_names ${EXTRA_PACKAGES})
if (( ${#packages[@]} )); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi
SCRIPT
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

# The target's pg_config cannot run in a cross build, so PGXS gets a stand-in that answers what
# PGXS asks (directories, PGXS, version) from the install tree, which pg_config's own answers
# follow from (it is relocatable). A native build checks the stand-in against the real one.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
prefix="/usr/lib/postgresql/${PG_MAJOR}"
version=$(sed -n 's/^VERSION = //p' "${prefix}/lib/pgxs/src/Makefile.global")
cat > /build/pg_config.txt <<TABLE
BINDIR = ${prefix}/bin
DOCDIR = ${prefix}/share/doc
HTMLDIR = ${prefix}/share/doc/html
INCLUDEDIR = ${prefix}/include
PKGINCLUDEDIR = ${prefix}/include
INCLUDEDIR-SERVER = ${prefix}/include/server
LIBDIR = ${prefix}/lib
PKGLIBDIR = ${prefix}/lib
LOCALEDIR = ${prefix}/share/locale
MANDIR = ${prefix}/share/man
SHAREDIR = ${prefix}/share
SYSCONFDIR = ${prefix}/etc
PGXS = ${prefix}/lib/pgxs/src/makefiles/pgxs.mk
VERSION = PostgreSQL ${version}
TABLE
cat > /build/pg_config <<'STANDIN'
#!/bin/bash
# pg_config stand-in for a cross build: NAME = value lines of pg_config.txt.
table="$(dirname "$0")/pg_config.txt"
if (( $# == 0 )); then cat "$table"; exit 0; fi
for opt in "$@"; do
  key=$(echo "${opt#--}" | tr '[:lower:]' '[:upper:]')
  line=$(grep -m1 "^${key} = " "$table") \
    || { echo "pg_config stand-in: ${opt} is not known in a cross build" >&2; exit 1; }
  echo "${line#* = }"
done
STANDIN
chmod +x /build/pg_config
for key in BINDIR INCLUDEDIR INCLUDEDIR-SERVER PKGLIBDIR SHAREDIR PGXS; do
  [[ -e $(/build/pg_config "--${key,,}") ]] \
    || { echo "pg_config stand-in: $key $(/build/pg_config "--${key,,}") does not exist" >&2; exit 1; }
done
if ! cross_build; then
  real="${prefix}/bin/pg_config"
  while read -r key _ value; do
    actual=$("$real" "--${key,,}")
    [[ $actual == "$value" ]] \
      || { echo "pg_config stand-in says $key = $value, pg_config says $actual" >&2; exit 1; }
  done < /build/pg_config.txt
fi
SCRIPT

# OPTFLAGS="" overrides Makefiles that default to -march=native (pgvector); the prefix map keeps
# /build/src out of the objects. A cross build names the cross compiler and the stand-in.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
pg_config="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
cross=()
if cross_build; then
  triplet=$(target_triplet)
  pg_config=/build/pg_config
  cross=(CC="${triplet}-gcc" CXX="${triplet}-g++")
fi
# shellcheck disable=SC2086
make -C /build/src -j"$(nproc)" USE_PGXS=1 PG_CONFIG="$pg_config" "${cross[@]}" OPTFLAGS="" \
  COPT="-ffile-prefix-map=/build/src=." ${MAKE_FLAGS}
# shellcheck disable=SC2086
make -C /build/src USE_PGXS=1 PG_CONFIG="$pg_config" "${cross[@]}" OPTFLAGS="" \
  COPT="-ffile-prefix-map=/build/src=." ${MAKE_FLAGS} install DESTDIR=/out
SCRIPT

RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
mkdir -p /out-meta /out-licenses
source /usr/local/lib/monogres/target.sh
cc=$(target_cc)
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > /out-meta/toolchain-packages.tsv
{
  "$cc" --version | sed -n 1p
  echo "pg_config $(sed -n 's/^VERSION = //p' /build/pg_config.txt)"
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
