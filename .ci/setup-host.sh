#!/usr/bin/env bash
# Prepares a Debian 12 host for monogres-oci: Docker engine 26 with BuildKit, buildx, oras, crane,
# cosign, debootstrap and a registry, all from Debian's archive, then starts the engine.
#
# Idempotent: every phase checks whether its work is already done, so a second run takes seconds.
# Runs as root without stdin. Packages newer than bookworm come from trixie/sid through a private
# apt configuration (under $MONOGRES_APT_DIR) that never touches the machine's own apt setup; its
# mirror URIs are read at run time from /etc/apt/sources.list.d/debian.sources.
#
# Environment:
#   MONOGRES_APT_DIR   private apt state (default /var/cache/monogres-apt)
#   MONOGRES_ARM64=0   skip binfmt_misc + qemu-user-static (needed for the arm64 base image,
#                      emulated builds and running arm64 images; cross builds need neither)
#   DOCKERD_TIMEOUT    seconds to wait for the engine to answer (default 90)
set -euo pipefail

APT_DIR=${MONOGRES_APT_DIR:-/var/cache/monogres-apt}
DOCKERD_LOG=/var/log/monogres-dockerd.log
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-90}
SYSTEM_SOURCES=/etc/apt/sources.list.d/debian.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
export DEBIAN_FRONTEND=noninteractive

# package=expected-version-prefix, and the suite each one is taken from.
BOOKWORM_PACKAGES=(
  debootstrap docker-registry apache2-utils ca-certificates binutils xz-utils bzip2 curl python3-venv
  diffoscope-minimal chromium chromium-driver
)
declare -A FOREIGN_SUITE=(
  [docker.io]=trixie [docker-cli]=trixie
  [docker-buildx]=sid [oras]=sid [crane]=sid [cosign]=sid
)
declare -A FOREIGN_VERSION=(
  [docker.io]=26. [docker-cli]=26.
  [docker-buildx]=0.29. [oras]=1.3. [crane]=0.20. [cosign]=3.
)

SCRIPT_START=$(date +%s.%N)
PHASE_NAME=""
PHASE_START=""

log() { printf '[setup-host] %s\n' "$*" >&2; }
die() { printf '[setup-host] ERROR: %s\n' "$*" >&2; exit 1; }

phase() {
  phase_end
  PHASE_NAME=$1
  PHASE_START=$(date +%s.%N)
  log "== $PHASE_NAME"
}

phase_end() {
  if [[ -n $PHASE_NAME ]]; then
    local now
    now=$(date +%s.%N)
    log "   $PHASE_NAME took $(awk -v a="$PHASE_START" -v b="$now" 'BEGIN{printf "%.1f", b-a}') s"
    PHASE_NAME=""
  fi
}

installed_version() {
  dpkg-query -W -f '${Status}\t${Version}\n' "$1" 2>/dev/null \
    | awk -F'\t' '$1 == "install ok installed" {print $2}'
}

# Strip an epoch ("1:") so "26." matches "26.1.5+dfsg1-9".
version_matches() {
  local have=${1#*:} want=$2
  [[ -n $1 && $have == "$want"* ]]
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

# ---------------------------------------------------------------------------------------------
phase "bookworm packages"
missing=()
for pkg in "${BOOKWORM_PACKAGES[@]}"; do
  [[ -n $(installed_version "$pkg") ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "already installed"
fi

# ---------------------------------------------------------------------------------------------
phase "private apt configuration (trixie, sid)"
[[ -r $SYSTEM_SOURCES ]] || die "$SYSTEM_SOURCES not found: cannot learn the mirror URIs"
# Every URI of the machine's main archive entries (security entries serve other suite names).
mapfile -t uris < <(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$SYSTEM_SOURCES" \
  | grep -v -- '-security' | sort -u)
((${#uris[@]})) || die "no URIs: line in $SYSTEM_SOURCES"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs"
sources_new=$(
  for uri in "${uris[@]}"; do
    for suite in trixie sid; do
      printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$uri" "$suite"
      printf 'deb-src [signed-by=%s] %s %s main\n' "$KEYRING" "$uri" "$suite"
    done
  done
)
if [[ ! -f $APT_DIR/sources.list || $(cat "$APT_DIR/sources.list") != "$sources_new" ]]; then
  printf '%s\n' "$sources_new" >"$APT_DIR/sources.list"
  rm -f "$APT_DIR/lists/"*_Packages* "$APT_DIR/lists/"*_Sources* "$APT_DIR/lists/"*Release*
fi
# Usable as APT_CONFIG=$APT_DIR/apt.conf apt-get source|download ... by later tools.
cat >"$APT_DIR/apt.conf.new" <<EOF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$APT_DIR/lists";
Dir::Cache "$APT_DIR/cache";
Acquire::Check-Valid-Until "false";
APT::Sandbox::User "root";
EOF
mv "$APT_DIR/apt.conf.new" "$APT_DIR/apt.conf"
PRIVATE_APT=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
  -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root
)

need_foreign=()
for pkg in "${!FOREIGN_SUITE[@]}"; do
  version_matches "$(installed_version "$pkg")" "${FOREIGN_VERSION[$pkg]}" || need_foreign+=("$pkg")
done
have_lists=$(find "$APT_DIR/lists" -maxdepth 1 -name '*_Packages*' | head -n 1)
if ((${#need_foreign[@]})) || [[ -z $have_lists ]]; then
  log "apt-get update (private)"
  apt-get "${PRIVATE_APT[@]}" update -q
else
  log "lists present and packages installed: no update"
fi

# ---------------------------------------------------------------------------------------------
phase "docker.io 26, docker-cli, buildx, oras, crane, cosign (trixie/sid)"
if ((${#need_foreign[@]})); then
  rm -f "$APT_DIR/debs/"*.deb
  specs=()
  for pkg in "${!FOREIGN_SUITE[@]}"; do specs+=("$pkg/${FOREIGN_SUITE[$pkg]}"); done
  log "downloading: ${specs[*]}"
  (cd "$APT_DIR/debs" && apt-get "${PRIVATE_APT[@]}" download "${specs[@]}")
  # No init system runs here: keep maintainer scripts from trying to start services.
  created_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  # Dependencies (containerd, runc, iptables, tini, ...) resolve from bookworm; the system lists
  # may never have been fetched on a fresh machine.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' | head -n 1) ]]; then
    apt-get update -q
  fi
  set +e
  apt-get install -y -q --no-install-recommends "$APT_DIR/debs/"*.deb
  rc=$?
  set -e
  [[ -n $created_policy ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get install of the trixie/sid packages failed (exit $rc)"
else
  log "already installed"
fi
for pkg in "${!FOREIGN_SUITE[@]}"; do
  have=$(installed_version "$pkg")
  version_matches "$have" "${FOREIGN_VERSION[$pkg]}" \
    || die "$pkg is '${have:-not installed}', expected ${FOREIGN_VERSION[$pkg]}x"
done
# The binaries themselves, as a second opinion on the package database.
check_tool() {
  local want=$1
  shift
  local out
  out=$("$@" 2>&1) || die "'$*' failed: $out"
  grep -q -- "$want" <<<"$out" || die "'$*' says '$(head -n 1 <<<"$out")', expected $want"
  log "$(grep -m 1 -- "$want" <<<"$out" | cut -c1-100)"
}
check_tool 'version 26\.' /usr/sbin/dockerd --version
check_tool 'Version:[[:space:]]*1\.3\.' oras version
# Debian's crane and cosign are built without VCS stamps (crane: "could not determine build
# information", cosign: "GitVersion: devel"): the package versions above are the check.
check_tool 'Crane is a tool' crane --help
check_tool 'GitVersion' cosign version

# ---------------------------------------------------------------------------------------------
phase "OCI image-spec 1.1.1 JSON schemas (for the conformance tests)"
# Debian packages the spec's schemas with its Go module; only the schema files are needed, so the
# package is unpacked, not installed (its Go dependencies are not in bookworm).
SCHEMA_DIR=$APT_DIR/oci-image-spec-v1.1.1
if [[ ! -f $SCHEMA_DIR/image-manifest-schema.json ]]; then
  work=$(mktemp -d)
  (cd "$work" && apt-get "${PRIVATE_APT[@]}" download golang-github-opencontainers-image-spec-dev/sid)
  deb=$(echo "$work"/*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  [[ $version == 1.1.1* ]] || die "golang-github-opencontainers-image-spec-dev is $version, expected 1.1.1"
  dpkg-deb -x "$deb" "$work/x"
  mkdir -p "$SCHEMA_DIR.new"
  cp "$work/x/usr/share/gocode/src/github.com/opencontainers/image-spec/schema/"*.json "$SCHEMA_DIR.new/"
  cp "$work/x/usr/share/doc/golang-github-opencontainers-image-spec-dev/copyright" "$SCHEMA_DIR.new/"
  echo "$version" >"$SCHEMA_DIR.new/VERSION"
  rm -rf "$SCHEMA_DIR" "$work"
  mv "$SCHEMA_DIR.new" "$SCHEMA_DIR"
fi
log "$(ls "$SCHEMA_DIR"/*.json | wc -l) schemas in $SCHEMA_DIR (package $(cat "$SCHEMA_DIR/VERSION"))"

# ---------------------------------------------------------------------------------------------
phase "buildx plugin for the docker client first on PATH"
# docker-buildx installs to /usr/libexec/docker/cli-plugins. A client elsewhere on PATH (e.g. a
# newer /usr/local/bin/docker) may not search that directory: link it where every client looks.
if ! docker buildx version >/dev/null 2>&1; then
  mkdir -p /usr/local/lib/docker/cli-plugins
  ln -sf /usr/libexec/docker/cli-plugins/docker-buildx /usr/local/lib/docker/cli-plugins/docker-buildx
fi
check_tool ' v\?0\.29\.' docker buildx version

# ---------------------------------------------------------------------------------------------
if [[ ${MONOGRES_ARM64:-1} == 1 ]]; then
  phase "arm64 emulation (binfmt_misc, qemu-user-static)"
  if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [[ -z $(installed_version qemu-user-static) || -z $(installed_version binfmt-support) ]]; then
    apt-get install -y -q --no-install-recommends qemu-user-static binfmt-support \
      || { apt-get update -q && apt-get install -y -q --no-install-recommends qemu-user-static binfmt-support; }
  fi
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    update-binfmts --enable qemu-aarch64 || true
  fi
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "qemu-aarch64 binfmt handler not registered"
  log "qemu-aarch64 registered"
fi

# ---------------------------------------------------------------------------------------------
phase "docker engine (containerd image store)"
mkdir -p /etc/docker
# Merge the one key we need into whatever daemon.json already holds.
daemon_json_changed=$(
  /usr/bin/python3 - <<'EOF'
import json, os
path = "/etc/docker/daemon.json"
conf = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    conf = json.loads(text) if text else {}
features = conf.setdefault("features", {})
if features.get("containerd-snapshotter") is True:
    print("no")
else:
    features["containerd-snapshotter"] = True
    tmp = path + ".new"
    with open(tmp, "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    print("yes")
EOF
)
if docker info >/dev/null 2>&1; then
  log "engine already answering"
  if [[ $daemon_json_changed == yes ]]; then
    log "WARNING: daemon.json changed while dockerd runs: restart dockerd to use the containerd store"
  fi
else
  # dockerd 26 runs its own managed containerd when no system containerd socket exists, so no
  # separate containerd start is needed. setsid + nohup: the engine outlives this script.
  log "starting dockerd (log: $DOCKERD_LOG)"
  setsid nohup /usr/sbin/dockerd --iptables=false --ip-masq=false --bridge=none \
    >>"$DOCKERD_LOG" 2>&1 </dev/null &
  waited=0
  until docker info >/dev/null 2>&1; do
    if ((waited >= DOCKERD_TIMEOUT)); then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer 'docker info' within ${DOCKERD_TIMEOUT}s (log: $DOCKERD_LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "engine up after ${waited}s"
fi
server=$(docker version -f '{{.Server.Version}}')
[[ $server == 26.* ]] || die "engine answering is version $server, expected 26.x"
if docker info -f '{{json .DriverStatus}}' | grep -q 'io.containerd.snapshotter'; then
  log "engine $server, containerd image store"
else
  log "WARNING: engine $server runs without the containerd image store"
fi
phase_end

log "total $(awk -v a="$SCRIPT_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
