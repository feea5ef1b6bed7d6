#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian 12 machine, as root: this is README.md's test command,
# and .ci/run runs exactly this. It sets up the host (Docker engine + BuildKit, buildx, registry,
# oras, crane, cosign), installs the package in ./.venv, then runs the static checks and pytest.
# Extra arguments go to pytest (e.g. `-k catalog`, or `-m "not e2e"` for the fast tests only).
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup-host.sh
# BuildKit keeps every layer of every build, clean rebuilds included: cap it, or runs on the same
# machine fill the disk (the test cache under /var/cache keeps what is worth keeping).
docker buildx prune --force --reserved-space 20gb >/dev/null

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff" >&2
.venv/bin/ruff check monogres_oci tests
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== pytest" >&2
exec .venv/bin/python -m pytest "$@"
