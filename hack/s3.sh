#!/usr/bin/env bash
# Builds the S3 server the model server's S3 tests run against: Versity Gateway (Apache-2.0), an
# S3 API over a POSIX directory, from its Go module at the version pinned in hack/versions.env,
# into the same cache as hack/build-tools.sh, with a version stamp (bin/.versitygw.version).
# MinIO is not used: it is AGPL.
#
#   hack/s3.sh            build it if missing or built from another version, print the binary's path
#   hack/s3.sh --print    print the binary's path only (no build)
#
# The tests start and stop the server themselves (tests/serving/s3_server.py: its users, a read-only
# one for the model server and one without rights, and its buckets, through `versitygw admin`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
bin="$cache_root/tools/bin"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin/versitygw"
  exit 0
fi

mkdir -p "$bin"
if [[ -x "$bin/versitygw" && "$(cat "$bin/.versitygw.version" 2>/dev/null)" == "$VERSITYGW_VERSION" ]]; then
  echo "$bin/versitygw"
  exit 0
fi
printf '[s3] building versitygw %s\n' "$VERSITYGW_VERSION" >&2
CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOBIN="$bin" \
  go install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
echo "$VERSITYGW_VERSION" >"$bin/.versitygw.version"
echo "$bin/versitygw"
