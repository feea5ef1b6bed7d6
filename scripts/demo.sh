#!/usr/bin/env bash
# The main job, end to end, on a Debian 12 machine as root (README.md's first command):
#   set the machine up -> make a base image from Debian packages -> build PostgreSQL 18 and the
#   pgaudit and rum extensions from pinned source -> publish to a registry -> pull them back ->
#   run the published Postgres image with the extensions mounted read-only at /extensions/<name>,
#   exactly as CloudNativePG mounts image volumes, and query them.
#
# Environment:
#   MONOGRES_REGISTRY   use this running registry (HOST:PORT) instead of starting one
#   MONOGRES_DEMO_DIR   work directory (default ./.demo): layout, registry storage, extensions
#   MONOGRES_DEMO_PORT  port for the registry this script starts (default 5000)
#   MONOGRES_CACHE_DIR  build cache (default: monogres-oci's, ~/.cache/monogres-oci)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${MONOGRES_DEMO_DIR:-$PWD/.demo}
PORT=${MONOGRES_DEMO_PORT:-5000}
mkdir -p "$WORK"
say() { printf '\n== %s\n' "$*" >&2; }

say "setting up the machine (.ci/setup-host.sh)"
bash .ci/setup-host.sh
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
M=(.venv/bin/monogres-oci)
CACHE=()
[[ -n ${MONOGRES_CACHE_DIR:-} ]] && CACHE=(--cache-dir "$MONOGRES_CACHE_DIR")

REG=${MONOGRES_REGISTRY:-}
if [[ -z $REG ]]; then
  REG=127.0.0.1:$PORT
  if ! curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
    say "starting a registry on $REG (storage in $WORK/registry)"
    mkdir -p "$WORK/registry"
    cat > "$WORK/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: $REG
YAML
    setsid nohup docker-registry serve "$WORK/registry/config.yml" \
      > "$WORK/registry/registry.log" 2>&1 < /dev/null &
    echo $! > "$WORK/registry/pid"
    for _ in $(seq 50); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
    echo "registry PID $(cat "$WORK/registry/pid"); stop it with: kill $(cat "$WORK/registry/pid")" >&2
  fi
fi

say "validating the catalog"
"${M[@]}" validate

say "making the bookworm base image from Debian packages"
BASE=$("${M[@]}" base create --distro bookworm --registry "$REG/base" "${CACHE[@]}")
echo "$BASE"

say "building PostgreSQL 18.6 (regular) + pgaudit + rum for linux/amd64"
"${M[@]}" build --postgres 18.6 --option-set regular --arch amd64 \
  --distro bookworm --extension pgaudit --extension rum --base "bookworm=$BASE" --out "$WORK/oci" "${CACHE[@]}"

KEY=$WORK/monogres.key
if [[ ! -f $KEY ]]; then
  say "making a signing key pair ($KEY, $WORK/monogres.pub)"
  "${M[@]}" keygen --out "$KEY"
fi

say "signing (images, indexes, SBOM and provenance attestations) and publishing to $REG/monogres"
"${M[@]}" publish --registry "$REG/monogres" --layout "$WORK/oci" --sign-key "$KEY"

say "verifying with monogres-oci and with cosign (offline, key-based)"
"${M[@]}" verify "$REG/monogres/pgaudit:18.6-18.0-bookworm" \
  "$REG/monogres/postgresql:18.6-regular-bookworm" --key "$WORK/monogres.pub"
cosign verify --key "$WORK/monogres.pub" --insecure-ignore-tlog --allow-insecure-registry \
  "$REG/monogres/pgaudit:18.6-18.0-bookworm" >/dev/null
PGAUDIT_AMD64=$(crane digest --insecure --platform linux/amd64 "$REG/monogres/pgaudit:18.6-18.0-bookworm")
for type in spdxjson slsaprovenance1; do
  cosign verify-attestation --key "$WORK/monogres.pub" --type "$type" --insecure-ignore-tlog \
    --allow-insecure-registry "$REG/monogres/pgaudit@$PGAUDIT_AMD64" >/dev/null
done
oras discover --plain-http "$REG/monogres/pgaudit@$PGAUDIT_AMD64"

say "pulling the extensions back, signatures and digests verified"
"${M[@]}" install "$REG/monogres/pgaudit:18.6-18.0-bookworm" \
  "$REG/monogres/rum:18.6-1.3.15-bookworm" --dest "$WORK/extensions" --key "$WORK/monogres.pub"

say "running the published Postgres image with the extensions as read-only image volumes"
IMAGE=$REG/monogres/postgresql:18.6-regular-bookworm
NAME=monogres-demo-$$
docker pull -q "$IMAGE" >/dev/null
docker run -d --name "$NAME" --network host \
  -v "$WORK/extensions/pgaudit:/extensions/pgaudit:ro" \
  -v "$WORK/extensions/rum:/extensions/rum:ro" \
  "$IMAGE" bash -c 'initdb -D /tmp/data -U postgres --no-sync >/dev/null &&
    exec postgres -D /tmp/data -c listen_addresses= -c unix_socket_directories=/tmp \
      -c extension_control_path=\$system:/extensions/pgaudit/share:/extensions/rum/share \
      -c dynamic_library_path=\$libdir:/extensions/pgaudit/lib:/extensions/rum/lib \
      -c shared_preload_libraries=pgaudit' >/dev/null
trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
PSQL=(docker exec -i "$NAME" psql -X -h /tmp -U postgres -v ON_ERROR_STOP=1)
for _ in $(seq 60); do "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
"${PSQL[@]}" <<'SQL'
SELECT version();
CREATE EXTENSION pgaudit;
CREATE EXTENSION rum;
SELECT extname, extversion FROM pg_extension ORDER BY extname;
CREATE TABLE docs (t tsvector);
INSERT INTO docs SELECT to_tsvector('english', 'postgres extension image ' || g) FROM generate_series(1, 1000) g;
CREATE INDEX ON docs USING rum (t rum_tsvector_ops);
SET enable_seqscan = off;
SELECT count(*) AS rum_matches FROM docs WHERE t @@ to_tsquery('english', 'extension');
SQL

say "CloudNativePG manifests for what was published, signed as a blob"
"${M[@]}" cnpg --registry "$REG/monogres" --postgres 18.6 --extension pgaudit --extension rum \
  --output "$WORK/cluster.yaml" --sign-key "$KEY"
cat "$WORK/cluster.yaml"
"${M[@]}" verify-blob "$WORK/cluster.yaml" --key "$WORK/monogres.pub"

say "done: PostgreSQL and its extensions were built from pinned source, published and loaded"
