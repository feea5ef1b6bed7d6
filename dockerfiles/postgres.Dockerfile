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
#   COMPILE_ON          build (default) or target: where the compiler runs (see below)
#
# BASE_IMAGE is an index holding the build machine's and the target's architecture: a cross
# build compiles in the former, the runtime overlay takes its package list and users from the
# latter. `--platform` of the build is the target.

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
# (Multi-Arch: same) for the target's architecture, and a tool for the build machine's. One
# apt-cache call for all: each loads both architectures' lists (half a second).
build_package_names() {
  local p
  local -A same=()
  if cross_build && (( $# )); then
    while read -r p; do same[$p]=1; done < <(
      apt-cache show --no-all-versions "${@/%/:${TARGETARCH}}" 2>/dev/null \
        | awk '/^Package: /{name=$2} /^Multi-Arch: same$/{print name}')
  fi
  for p in "$@"; do
    if [[ -n ${same[$p]:-} ]]; then echo "${p}:${TARGETARCH}"; else echo "${p}"; fi
  done
}
# What the build container has installed, and what was laid over it (the target's LLVM in a
# cross build), as the build record lists them: NAME, VERSION, ARCHITECTURE, tab-separated.
toolchain_packages() {
  {
    dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'
    cat /var/lib/monogres/laid-over-packages.tsv 2>/dev/null || true
  } | LC_ALL=C sort
}
TARGET
# The target's shared libraries as its dynamic loader finds them, read with readelf (any
# architecture), so that no program of the target's runs: the runtime overlay and the libraries an
# extension bundles are both found this way.
COPY <<'ELF' /usr/local/lib/monogres/elf.sh
# Is the file an ELF object?
is_elf() { [[ $(head -c 4 "$1" | od -An -c | tr -d ' ') == '177ELF' ]]; }
# The DT_NEEDED names of an ELF object.
elf_needed() { readelf -dW "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]$/\1/p'; }
# Every shared library the ELF files named on stdin load, transitively, found in the target's
# library directories in the loader's order; names listed in the file $1 are provided by
# something else and neither looked up nor followed. One path per line, sorted.
elf_closure() {
  local f name d found
  local dirs=("/lib/$(target_triplet)" "/usr/lib/$(target_triplet)" /lib /usr/lib)
  local -A skip=() seen=()
  while read -r name; do skip[$name]=1; done < "$1"
  local queue=()
  while read -r f; do queue+=("$f"); done
  while (( ${#queue[@]} )); do
    f=${queue[0]}
    queue=("${queue[@]:1}")
    for name in $(elf_needed "$f"); do
      if [[ -n ${seen[$name]:-} || -n ${skip[$name]:-} ]]; then continue; fi
      seen[$name]=1
      found=""
      for d in "${dirs[@]}"; do
        if [[ -e "$d/$name" ]]; then found="$d/$name"; break; fi
      done
      [[ -n $found ]] || { echo "$f needs $name, which is in none of ${dirs[*]}" >&2; return 1; }
      echo "$found"
      queue+=("$(readlink -f "$found")")
    done
  done | sort -u
}
# The sonames a base image's packages put in the library directories (from a dpkg info dir).
base_sonames() {
  cat "$1"/*.list | grep -E "^(/usr)?/lib(/$(target_triplet))?/[^/]+$" | sed 's|.*/||' | sort -u || true
}
# The Debian package (NAME) owning a file; usrmerge: the path, its real path or its /usr twin.
# (dpkg -S also lists diversions, "diversion by PKG from: PATH": not owners.)
owner_package() {
  local p real owner
  real=$(readlink -f "$1")
  for p in "$1" "$real" "/usr$1" "${1#/usr}" "/usr$real" "${real#/usr}"; do
    owner=$({ dpkg-query -S "$p" 2>/dev/null || true; } | { grep -v '^diversion by ' || true; } \
      | sed -n '1{s/[:,].*//;p}')
    if [[ -n $owner ]]; then echo "$owner"; return 0; fi
  done
  echo "no Debian package owns $1" >&2
  return 1
}
ELF
# A cross build adds the Debian cross toolchain, and the target's libc6 with its dynamic loader:
# what runs the target's programs (by QEMU, binfmt_misc) at build and test time. Not the cross
# toolchain's copy: its ld.so, a different build, would load the libc6 that the target's
# libraries depend on and corrupt its private state (a fork then loops forever in reclaim_stacks).
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
# shellcheck disable=SC2206
packages=(${TOOLCHAIN_PACKAGES})
if cross_build; then
  dpkg --add-architecture "${TARGETARCH}"
  packages+=("crossbuild-essential-${TARGETARCH}" "libc6:${TARGETARCH}")
fi
apt-get update
# shellcheck disable=SC2086
mapfile -t -O "${#packages[@]}" packages < <(build_package_names ${BUILD_PACKAGES})
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
SCRIPT

# A cross build of a set with LLVM (the JIT): Debian's llvm-NN-dev is not Multi-Arch, so the
# target's cannot be installed beside the build machine's that the set's packages brought. The
# target's libLLVM is installed (Multi-Arch: same; the runtime overlay finds it like any library),
# the target's headers, libLLVM link and llvm-config (run by QEMU, a fraction of a second) are laid
# over the build machine's, and the build machine's clang is made to compile for the target: the
# JIT takes its target from the bitcode clang writes. What is laid over is recorded with the
# toolchain's packages.
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
source /usr/local/lib/monogres/target.sh
if ! cross_build || ! command -v llvm-config >/dev/null; then exit 0; fi
major=$(llvm-config --version | cut -d. -f1)
version=$(dpkg-query -W -f '${Version}' "llvm-${major}-dev")
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  "libllvm${major}:${TARGETARCH}=${version}"
mkdir /tmp/target-llvm
cd /tmp/target-llvm
apt-get download -q "llvm-${major}-dev:${TARGETARCH}=${version}" "llvm-${major}:${TARGETARCH}=${version}"
dpkg-deb --fsys-tarfile "llvm-${major}-dev_"*.deb | tar -x -C /
dpkg-deb --fsys-tarfile "llvm-${major}_"*.deb | tar -x -C / "./usr/lib/llvm-${major}/bin/llvm-config"
mkdir -p /var/lib/monogres
for deb in *.deb; do
  dpkg-deb --show --showformat '${Package}\t${Version}\t${Architecture}\n' "$deb"
done >> /var/lib/monogres/laid-over-packages.tsv
bin="/usr/lib/llvm-${major}/bin"
dpkg-divert --quiet --add --rename --divert "${bin}/clang.build" "${bin}/clang"
printf '#!/bin/sh\nexec %s --target=%s "$@"\n' "${bin}/clang.build" "$(target_triplet)" > "${bin}/clang"
chmod +x "${bin}/clang"
cd /
rm -rf /tmp/target-llvm
SCRIPT

FROM toolchain AS build
ARG TARGETARCH
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
source /usr/local/lib/monogres/target.sh
cross=()
if cross_build; then
  # A meson cross file for the Debian cross toolchain. pkg-config reads only the target's .pc
  # files: otherwise it finds the build machine's libraries, or features silently turn off.
  triplet=$(target_triplet)
  cpu=$(dpkg-architecture -a "${TARGETARCH}" -qDEB_HOST_GNU_CPU 2>/dev/null)
  endian=$(dpkg-architecture -a "${TARGETARCH}" -qDEB_HOST_ARCH_ENDIAN 2>/dev/null)
  # llvm-config: meson asks the cross file for it, and it is the target's (the toolchain stage).
  llvm_config=""
  if command -v llvm-config >/dev/null; then
    llvm_config="llvm-config = '$(readlink -f "$(command -v llvm-config)")'"
  fi
  cat > /build/cross.ini <<CROSS
[binaries]
c = '${triplet}-gcc'
cpp = '${triplet}-g++'
ar = '${triplet}-ar'
strip = '${triplet}-strip'
pkgconfig = 'pkg-config'
${llvm_config}

[properties]
pkg_config_libdir = ['/usr/lib/${triplet}/pkgconfig', '/usr/share/pkgconfig']

[host_machine]
system = 'linux'
cpu_family = '${cpu}'
cpu = '${cpu}'
endian = '${endian}'
CROSS
  cross=(--cross-file /build/cross.ini)
  # The time zone files are written at build time by PostgreSQL's own zic. A cross build cannot
  # run the target's, and the build machine's /usr/sbin/zic (glibc's, older) writes other bytes:
  # build PostgreSQL's zic for the build machine from the same source, nothing else enabled.
  if [[ " ${MESON_OPTIONS} " != *" -Dsystem_tzdata="* ]]; then
    meson setup /build/native /build/src --buildtype=release -Dauto_features=disabled
    ninja -C /build/native src/timezone/zic
    cross+=("-DZIC=/build/native/src/timezone/zic")
  fi
  # PL/Perl takes its headers and link flags from Perl's %Config, which the build machine's perl
  # answers for itself. Debian's libperl for the target ships the target's Config as a
  # "cross-config" directory: put first, the same perl answers for the target. Only for this
  # setup, which asks (the build then runs perl scripts that do not).
  cross_config="/usr/lib/${triplet}/perl/cross-config-$(perl -e 'print substr($^V, 1)')"
  if [[ -d $cross_config ]]; then export PERL5LIB="${cross_config}"; fi
fi
# --buildtype first: a --buildtype in MESON_OPTIONS (from the option set) comes later and wins.
# -Dlibdir=lib on every architecture (a native build would default to lib/<multiarch triplet>).
# shellcheck disable=SC2086
meson setup /build/obj /build/src "${cross[@]}" \
  --prefix="/usr/lib/postgresql/${PG_MAJOR}" -Dlibdir=lib --buildtype=release \
  ${MESON_OPTIONS} 2>&1 | tee /build/meson-setup.log
SCRIPT

# CC: the dtrace script (full) compiles DTrace's probe object with $CC, else the build machine's
# gcc: in a cross build, the target's compiler.
RUN bash -c 'source /usr/local/lib/monogres/target.sh && CC=$(target_cc) exec ninja -C /build/obj'
RUN meson install -C /build/obj --destdir /out --no-rebuild --quiet

# The toolchain record and the runtime overlay. Nothing here runs a program of the target's, so
# the same steps serve native, cross and emulated builds. The target base's file lists tell which
# libraries it has already.
COPY --from=target-base /var/lib/dpkg/info/ /var/lib/monogres/target-dpkg/info/
RUN <<'SCRIPT'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
prefix="/usr/lib/postgresql/${PG_MAJOR}"
mkdir -p /out-meta /out-runtime/etc /tmp/overlay/debs
cd /tmp/overlay
source /usr/local/lib/monogres/target.sh
cc=$(target_cc)

toolchain_packages > /out-meta/toolchain-packages.tsv
dpkg-query --admindir=/var/lib/monogres/target-dpkg -W \
  -f '${Package}\t${Version}\t${Architecture}\n' | sort > /out-meta/base-packages.tsv
{
  "$cc" --version | sed -n 1p
  echo "meson $(meson --version)"
  echo "ninja $(ninja --version)"
} > /out-meta/compiler.txt
cp /build/meson-setup.log /out-meta/meson-setup.log

# Every shared library that an ELF file of the install tree loads, transitively, other than the
# tree's own and the base's.
source /usr/local/lib/monogres/elf.sh
{ base_sonames /var/lib/monogres/target-dpkg/info; ls "/out${prefix}/lib"; } > provided.txt
find /out -type f | sort | while read -r f; do if is_elf "$f"; then echo "$f"; fi; done \
  | elf_closure provided.txt > libs-outside.txt

# The Debian package owning each.
: > lib-packages.txt
while read -r lib; do owner_package "$lib" >> lib-packages.txt; done < libs-outside.txt
sort -u lib-packages.txt > lib-packages.sorted
cut -f1 /out-meta/base-packages.tsv | sed 's/:.*//' | sort -u > base-names.txt

# What those packages depend on, transitively (Pre-Depends and Depends, the first alternative
# installed for the target): a library alone may not work, libpython3.11 needs its standard
# library. Installed for the target = as NAME:TARGETARCH, or as an Architecture: all package.
for_target() {
  dpkg-query -W -f '${db:Status-Abbrev}\t${Package}:${Architecture}\n' "$1" 2>/dev/null \
    | awk -F'\t' -v t=":${TARGETARCH}\$" '$1 ~ /^ii/ && ($2 ~ t || $2 ~ /:all$/) {print $2; exit}'
}
: > closure.txt
todo=$(cat lib-packages.sorted)
while [[ -n $todo ]]; do
  next=""
  for pkg in $todo; do
    if grep -qx "$pkg" closure.txt; then continue; fi
    echo "$pkg" >> closure.txt
    while IFS= read -r item; do
      for alt in $(echo "$item" | tr '|' '\n' | sed 's/([^)]*)//g; s/:any//g; s/ //g'); do
        if [[ -n $(for_target "$alt") ]]; then next+=" $alt"; break; fi
      done
    # (the list ends without a newline: sed adds it, or read would drop the last item)
    done < <(dpkg-query -W -f '${Pre-Depends},${Depends}' "$(for_target "$pkg")" | tr ',' '\n' | sed '/^ *$/d; $a\\')
  done
  todo=$next
done
sort -u closure.txt | comm -23 - base-names.txt > runtime-names.txt

: > /out-meta/runtime-packages.txt
while read -r pkg; do
  dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' "$(for_target "$pkg")" \
    >> /out-meta/runtime-packages.txt
done < runtime-names.txt
# Exactly the versions the build linked against, unpacked without maintainer scripts.
cd debs
awk -F'\t' '{print ($3 == "all" ? $1 : $1 ":" $3) "=" $2}' /out-meta/runtime-packages.txt \
  | xargs -r apt-get download -q
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
# which owns nothing in a container image: postgres takes that GID. The users are the target
# base's: packages installed for the build may have added their own to the build container.
cp /var/lib/monogres/target-etc/passwd /var/lib/monogres/target-etc/group /out-runtime/etc/
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
