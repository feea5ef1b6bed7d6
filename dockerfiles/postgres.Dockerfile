# PostgreSQL from a source tarball, built with meson inside the pinned base image.
#
# No "# syntax=" line: the Dockerfile frontend built into BuildKit is used, nothing is pulled.
# Build with `docker buildx build --network host --target export --output type=local,dest=DIR`;
# DIR then holds:
#   install/usr/lib/postgresql/$PG_MAJOR/...  the install tree (meson install --destdir)
#   runtime/...  Debian packages the install tree links against and the base lacks (dpkg-deb -x,
#                no maintainer scripts), plus etc/passwd and etc/group with postgres = 26:26
#   meta/...     toolchain record: dpkg lists, compiler version, runtime package list
#
# Build args (required unless a default is shown):
#   BASE_IMAGE          digest-pinned base image reference
#   PG_MAJOR            e.g. 18
#   PG_TARBALL          file name of the source tarball in the build context
#   PG_PATCHES          space-separated patch files in the build context, applied in order with
#                       patch -p1 (build-system fixes for reproducibility; default: none)
#   MESON_OPTIONS       space-separated meson options (-Dicu=enabled ...), may include --buildtype
#   BUILD_PACKAGES      space-separated Debian packages that MESON_OPTIONS need
#   SOURCE_DATE_EPOCH   seconds; exported to the compiler and tools

ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS base

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
ARG PG_MAJOR
ARG PG_TARBALL
ARG PG_PATCHES=""
ARG MESON_OPTIONS=""
ARG SOURCE_DATE_EPOCH
# PYTHONHASHSEED: meson is Python; a fixed seed keeps its set orderings (and logs) stable.
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} LC_ALL=C.UTF-8 TZ=UTC PYTHONHASHSEED=0
COPY . /build/
# Fixed paths, and the compiler told to write them as "." so that no build path reaches the
# binaries (debug info, __FILE__): the same source gives the same bytes wherever it is built.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
mkdir -p /build/unpack /build/src
tar -xf "/build/${PG_TARBALL}" -C /build/unpack --no-same-owner
shopt -s nullglob dotglob
entries=(/build/unpack/*)
if [[ ${#entries[@]} -eq 1 && -d ${entries[0]} ]]; then top=${entries[0]}; else top=/build/unpack; fi
cp -a "$top"/. /build/src/
rm -rf /build/unpack "/build/${PG_TARBALL}"
for p in ${PG_PATCHES}; do
  echo "applying ${p}"
  patch -d /build/src -p1 --forward --batch < "/build/${p}"
  rm "/build/${p}"
done
SCRIPT

RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
# No -O here: the buildtype (release: -O3, debug: -O0 -g, ...) chooses the optimization level.
export CFLAGS="-ffile-prefix-map=/build/src=. -ffile-prefix-map=/build/obj=."
# --buildtype first: a --buildtype in MESON_OPTIONS (from the option set) comes later and wins.
# shellcheck disable=SC2086
meson setup /build/obj /build/src \
  --prefix="/usr/lib/postgresql/${PG_MAJOR}" -Dlibdir=lib --buildtype=release \
  ${MESON_OPTIONS} 2>&1 | tee /build/meson-setup.log
SCRIPT

RUN ninja -C /build/obj
RUN meson install -C /build/obj --destdir /out --no-rebuild --quiet

# The toolchain record and the runtime overlay.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
prefix="/usr/lib/postgresql/${PG_MAJOR}"
mkdir -p /out-meta /out-runtime/etc /tmp/overlay/debs
cd /tmp/overlay

dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > /out-meta/toolchain-packages.tsv
cp /var/lib/monogres/base-packages.tsv /out-meta/base-packages.tsv
{
  cc --version | sed -n 1p
  echo "meson $(meson --version)"
  echo "ninja $(ninja --version)"
} > /out-meta/compiler.txt
cp /build/meson-setup.log /out-meta/meson-setup.log

# Every shared library that an ELF file of the install tree loads (transitively, as ldd
# resolves it), other than the tree's own.
find /out -type f | sort > files.txt
: > libs.txt
while read -r f; do
  [[ $(head -c 4 "$f" | od -An -c | tr -d ' ') == '177ELF' ]] || continue
  # ldd refuses static or foreign files: they load nothing.
  { LD_LIBRARY_PATH="/out$prefix/lib" ldd "$f" || true; } \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3}' >> libs.txt
done < files.txt
{ grep -v '^/out/' libs.txt || true; } | sort -u > libs-outside.txt

# The Debian package owning each (usrmerge: try the path, its real path and the /usr twin).
: > lib-packages.txt
while read -r lib; do
  real=$(readlink -f "$lib")
  owner=""
  for p in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
    owner=$({ dpkg-query -S "$p" 2>/dev/null || true; } | sed -n '1{s/[:,].*//;p}')
    if [[ -n $owner ]]; then break; fi
  done
  [[ -n $owner ]] || { echo "no Debian package owns $lib" >&2; exit 1; }
  echo "$owner" >> lib-packages.txt
done < libs-outside.txt
sort -u lib-packages.txt > lib-packages.sorted
cut -f1 /var/lib/monogres/base-packages.tsv | sed 's/:.*//' | sort -u > base-names.txt

# What those packages depend on, transitively (Pre-Depends and Depends, the first installed
# alternative of each): a library alone may not work, libpython3.11 needs its standard library.
installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
: > closure.txt
todo=$(cat lib-packages.sorted)
while [[ -n $todo ]]; do
  next=""
  for pkg in $todo; do
    if grep -qx "$pkg" closure.txt; then continue; fi
    echo "$pkg" >> closure.txt
    while IFS= read -r item; do
      for alt in $(echo "$item" | tr '|' '\n' | sed 's/([^)]*)//g; s/:any//g; s/ //g'); do
        if installed "$alt"; then next+=" $alt"; break; fi
      done
    # (the list ends without a newline: sed adds it, or read would drop the last item)
    done < <(dpkg-query -W -f '${Pre-Depends},${Depends}' "$pkg" | tr ',' '\n' | sed '/^ *$/d; $a\\')
  done
  todo=$next
done
sort -u closure.txt | comm -23 - base-names.txt > runtime-names.txt

: > /out-meta/runtime-packages.txt
while read -r pkg; do
  dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' "$pkg" >> /out-meta/runtime-packages.txt
done < runtime-names.txt
# Exactly the versions the build linked against, unpacked without maintainer scripts.
cd debs
awk -F'\t' '{print $1 "=" $2}' /out-meta/runtime-packages.txt | xargs -r apt-get download -q
for deb in $(find . -name '*.deb' | sort); do dpkg-deb -x "$deb" /out-runtime; done
cd /
# Merged /usr: where the base has /lib (/bin, ...) as a symlink into /usr, a real lib/ directory
# in a layer above it would replace that symlink and break every program. Move such content
# under usr/ where the symlink points.
for d in bin sbin lib lib32 lib64 libx32; do
  if [[ -L /$d && -d /out-runtime/$d && ! -L /out-runtime/$d ]]; then
    target=$(readlink -f "/$d")
    mkdir -p "/out-runtime$target"
    cp -a "/out-runtime/$d/." "/out-runtime$target/"
    rm -rf "/out-runtime/$d"
  fi
done

# postgres is 26:26 as CloudNativePG expects. Debian's base-passwd gives GID 26 to "tape",
# which owns nothing in a container image: postgres takes that GID.
cp /etc/passwd /etc/group /out-runtime/etc/
if grep -q '^postgres:' /out-runtime/etc/passwd; then echo "base already has postgres" >&2; exit 1; fi
if awk -F: '$3 == 26 {found = 1} END {exit !found}' /out-runtime/etc/passwd; then echo "UID 26 is taken" >&2; exit 1; fi
sed -i '/^tape:x:26:$/d' /out-runtime/etc/group
if awk -F: '$3 == 26 {found = 1} END {exit !found}' /out-runtime/etc/group; then echo "GID 26 is taken" >&2; exit 1; fi
echo 'postgres:x:26:26:PostgreSQL administrator:/var/lib/postgresql:/bin/bash' >> /out-runtime/etc/passwd
echo 'postgres:x:26:' >> /out-runtime/etc/group
mkdir -p /out-runtime/var/lib/postgresql
rm -rf /tmp/overlay
SCRIPT

FROM scratch AS export
COPY --from=build /out /install
COPY --from=build /out-runtime /runtime
COPY --from=build /out-meta /meta
