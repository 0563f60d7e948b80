#!/usr/bin/env bash
# Builds the images the real node runs, without Docker and without a registry, and imports them into
# the node's containerd.
#
#   hack/images.sh          build what is missing (base, pause, serving, operator), print what was built
#                           or taken from the cache, with timings
#   hack/images.sh import   the same, then import the pause, serving and operator images into the
#                           containerd at $MODELSHIP_CONTAINERD_ADDRESS (namespace k8s.io)
#
# The Python base is made from Debian packages with debootstrap and shaped like python:3.11-slim
# (pip, setuptools and wheel in /usr/local, no EXTERNALLY-MANAGED marker), so both Dockerfiles build
# unchanged on either base. Each image is cached as an OCI archive named by the sha256 of its inputs
# (the Dockerfile, the files of its build context that .dockerignore lets in, the base's key, the
# pins and the code below that builds it): unchanged inputs rebuild nothing, any change rebuilds that
# image and the ones built on it. buildah keeps its storage under the cache, not in the system
# default, so no other tool on the machine sees or touches it.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
images="$cache_root/images"
storage="$images/storage"
# buildah's run-time state belongs to one storage root: two caches must not share it.
runroot="/run/modelship/buildah-$(printf '%s' "$storage" | sha256sum | cut -c1-12)"
containerd_address="${MODELSHIP_CONTAINERD_ADDRESS:-/run/modelship/containerd/containerd.sock}"
debian_mirror="${MODELSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${MODELSHIP_PYTHON:-$repo/.venv/bin/python}"

BASE_NAME=localhost/modelship/python-base:3.11-bookworm
PAUSE_NAME=registry.k8s.io/pause:3.10
SUITE=bookworm
# python:3.11-slim's packages that matter here: Python, venv, `python`, TLS roots, /etc/services,
# time zones. groupadd/useradd come with minbase (passwd is a required package).
BASE_PACKAGES=(python3 python3-venv python-is-python3 ca-certificates netbase tzdata)
# pip >= 24.2 verifies TLS against the system's trust store, which the build bind-mounts (see
# build_dockerfile).
BASE_WHEELS=(pip==25.3 setuptools==80.9.0 wheel==0.45.1)
HOST_PACKAGES=(buildah debootstrap gcc libc6-dev containerd)

buildah_cmd=(buildah --root "$storage" --runroot "$runroot" --storage-driver vfs)

log() { printf '[images] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
trap 'log "error: line $LINENO failed: $BASH_COMMAND"' ERR

# Removes work directories. An interrupted debootstrap leaves /proc, /sys or the host's /dev mounted
# inside its target: unmount first (deepest first), and never let rm cross into another filesystem.
clear_work() {  # dir...
  local dir mount
  for dir in "$@"; do
    [[ -d "$dir" ]] || continue
    while read -r mount; do
      umount -l "$mount" 2>/dev/null || true
    done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$dir"
  done
}

ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

sha256() { sha256sum | cut -c1-64; }

# The values that name and key the images, read from where the operator and the chart define them,
# so a version bump there renames the image here.
serving_tag() {
  sed -n 's/^DEFAULT_SERVING_IMAGE = "\(.*\)"$/\1/p' "$repo/operator/src/modelship/children.py"
}
operator_tag() {
  local repository version
  repository="$(sed -n 's/^  repository: \(.*\)$/\1/p' "$repo/charts/modelship/values.yaml" | sed -n 1p)"
  version="$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' "$repo/charts/modelship/Chart.yaml")"
  echo "$repository:$version"
}

# Prints the build context's files that .dockerignore lets in, one "sha256  path" line each, sorted:
# the same files `docker build` would send. Patterns follow Docker's rules (`*` stops at `/`, `**`
# crosses it, a pattern also excludes what is under a matching directory, `!` re-includes, last
# match wins).
context_digest() {  # context-dir
  "$python" - "$1" <<'EOF'
import hashlib, os, re, sys
from pathlib import Path

root = Path(sys.argv[1])
rules = []
ignore = root / ".dockerignore"
for line in ignore.read_text().splitlines() if ignore.exists() else []:
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    negate = line.startswith("!")
    pattern = line.lstrip("!").strip().strip("/")
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    rules.append((negate, re.compile(regex + "(?:/.*)?")))

def ignored(rel):
    result = False
    for negate, regex in rules:
        if regex.fullmatch(rel):
            result = not negate
    return result

lines = []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
        path = Path(dirpath) / name
        rel = path.relative_to(root).as_posix()
        if ignored(rel):
            continue
        mode = "x" if os.access(path, os.X_OK) else "-"
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()} {mode} {rel}")
print("\n".join(sorted(lines, key=lambda l: l.split(" ", 2)[2])))
EOF
}

# -- keys: every input of an image, hashed -----------------------------------------------------------
base_key() {
  {
    echo "suite=$SUITE packages=${BASE_PACKAGES[*]} wheels=${BASE_WHEELS[*]} name=$BASE_NAME"
    declare -f build_base import_rootfs
  } | sha256
}

pause_source() {
  local dir
  dir="$(GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  [[ -f "$dir/build/pause/linux/pause.c" ]] || die "no build/pause/linux/pause.c in $dir"
  echo "$dir/build/pause/linux/pause.c"
}

pause_key() {  # pause.c
  {
    cat "$1"
    echo "name=$PAUSE_NAME gcc=$(gcc -dumpfullversion) libc=$(ldd --version 2>&1 | sed -n 1p)"
    declare -f build_pause pause_dockerfile build_dockerfile
    pause_dockerfile
  } | sha256
}

dockerfile_key() {  # context-dir tag base-key
  {
    echo "tag=$2 base=$3"
    cat "$1/Dockerfile"
    context_digest "$1"
    declare -f build_dockerfile
  } | sha256
}

# -- building ------------------------------------------------------------------------------------
build_base() {  # work-dir key
  local work="$1" rootfs="$1/rootfs"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" \
    "$SUITE" "$rootfs" "$debian_mirror" >"$work/debootstrap.log" 2>&1 ||
    die "debootstrap failed; last lines of $work/debootstrap.log: $(tail -n 5 "$work/debootstrap.log")"
  # pip, setuptools and wheel where python:3.11-slim has them (pip's default for root outside a
  # venv on Debian: /usr/local), fetched on the host, which has network and trust roots set up.
  "$python" -m pip download -q --no-deps --only-binary=:all: --dest "$rootfs/tmp/wheels" "${BASE_WHEELS[@]}"
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  local pip_wheel
  pip_wheel="$(cd "$rootfs" && echo tmp/wheels/pip-*.whl)"
  chroot "$rootfs" /usr/bin/python3 "/$pip_wheel/pip" install -q --no-index --find-links /tmp/wheels \
    --no-cache-dir --disable-pip-version-check --root-user-action=ignore "${BASE_WHEELS[@]}"
  # Small: no package lists, caches, docs, man pages, locales or logs.
  rm -rf "$rootfs"/tmp/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/root/.cache
  # The runtime supplies these per container.
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"
  import_rootfs "$rootfs" "$2"
}

import_rootfs() {  # rootfs key
  local ctr mnt python_version
  python_version="$(chroot "$1" /usr/bin/python3 -c 'import platform; print(platform.python_version())')"
  ctr="$("${buildah_cmd[@]}" from scratch)"
  mnt="$("${buildah_cmd[@]}" mount "$ctr")"
  cp -a "$1/." "$mnt/"
  "${buildah_cmd[@]}" umount "$ctr" >/dev/null
  # The same environment and command as python:3.11-slim.
  "${buildah_cmd[@]}" config --os linux --arch amd64 \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --env PYTHON_VERSION="$python_version" --cmd python3 \
    --label org.opencontainers.image.description="Python $python_version from Debian $SUITE packages" \
    "$ctr"
  # The key travels with the image (an annotation: images built FROM it do not inherit it), so
  # base_in_storage can tell a stale base from the right one.
  "${buildah_cmd[@]}" config --annotation "dev.modelship.key=$2" "$ctr"
  "${buildah_cmd[@]}" commit -q --rm "$ctr" "$BASE_NAME" >/dev/null
}

pause_dockerfile() {
  printf '%s\n' 'FROM scratch' 'COPY pause /pause' 'USER 65535:65535' 'ENTRYPOINT ["/pause"]'
}

build_pause() {  # work-dir pause.c
  # As upstream's build/pause/Makefile builds it: static, small, the version compiled in.
  gcc -Os -Wall -Werror -static -DVERSION="v${PAUSE_NAME##*:}-modelship" -o "$1/pause" "$2"
  strip "$1/pause"
  pause_dockerfile >"$1/Dockerfile"
  build_dockerfile "$1" "$PAUSE_NAME"
}

build_dockerfile() {  # context-dir tag
  local volumes=()
  # Where TLS to PyPI is intercepted, the host's trust roots hold the interceptor's CA: pip in the
  # build sees them through a bind mount that never lands in a layer.
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    volumes+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  fi
  "${buildah_cmd[@]}" bud --quiet --isolation chroot --pull=never --layers=false \
    --build-arg PYTHON_IMAGE="$BASE_NAME" "${volumes[@]}" \
    -f "$1/Dockerfile" -t "$2" "$1" >/dev/null
}

# archive NAME KEY: where the image with these inputs is cached.
archive() { echo "$images/$1-$2.tar"; }

save_archive() {  # tag archive name
  local tmp="$2.tmp"
  rm -f "$tmp"
  # The reference inside the archive is the full tag, so `ctr images import` names it exactly that.
  "${buildah_cmd[@]}" push -q "$1" "oci-archive:$tmp:$1" >/dev/null
  mv "$tmp" "$2"
  # Archives of older inputs are never used again.
  local old
  for old in "$images/$3"-*.tar; do
    [[ "$old" == "$2" ]] || rm -f "$old"
  done
}

# Makes sure buildah's storage holds the base image built from these inputs: Dockerfile builds
# start FROM it. A fresh storage (or one holding an older base) gets it back from the archive.
base_in_storage() {  # key archive
  local have
  have="$("${buildah_cmd[@]}" inspect --type image --format '{{index .ImageAnnotations "dev.modelship.key"}}' \
    "$BASE_NAME" 2>/dev/null || true)"
  [[ "$have" == "$1" ]] && return 0
  local id
  id="$("${buildah_cmd[@]}" pull -q "oci-archive:$2" | tail -n1)"
  "${buildah_cmd[@]}" tag "$id" "$BASE_NAME"
}

declare -A built_archive

# step NAME KEY TAG FUNCTION ARGS...: unless the archive for KEY exists, run FUNCTION WORK-DIR ARGS...
# (it leaves TAG in buildah's storage) and archive TAG; print what happened.
step() {
  local name="$1" key="$2" tag="$3" fn="$4"
  shift 4
  local out
  out="$(archive "$name" "$key")"
  built_archive[$name]="$out"
  if [[ -f "$out" ]]; then
    log "$(printf '%-19s cached     %s' "$name" "$out")"
    return 0
  fi
  local start=$SECONDS work
  work="$(mktemp -d "$images/tmp.$name.XXXXXX")"
  "$fn" "$work" "$@"
  save_archive "$tag" "$out" "$name"
  clear_work "$work"
  log "$(printf '%-19s built in %4ss %s' "$name" "$((SECONDS - start))" "$out")"
}

build_all() {
  mkdir -p "$images" "$runroot"
  # One build at a time per cache: a second `make images` waits rather than racing the first.
  exec 9>"$images/.lock"
  flock 9
  clear_work "$images"/tmp.*
  ensure_host_packages
  [[ -x "$python" ]] || die "no Python at $python: run \`make venv\` first (or set MODELSHIP_PYTHON)"
  local start=$SECONDS serving operator key_base key_serving key_operator pause_c
  serving="$(serving_tag)"
  operator="$(operator_tag)"
  [[ -n "$serving" && -n "$operator" ]] || die "could not read the image names from children.py and the chart"
  # Every key is taken once, before anything is built.
  key_base="$(base_key)"
  key_serving="$(dockerfile_key "$repo/serving_image" "$serving" "$key_base")"
  key_operator="$(dockerfile_key "$repo/operator" "$operator" "$key_base")"
  pause_c="$(pause_source)"
  step python-base "$key_base" "$BASE_NAME" build_base "$key_base"
  step pause "$(pause_key "$pause_c")" "$PAUSE_NAME" build_pause "$pause_c"
  if [[ ! -f "$(archive modelship-server "$key_serving")" || ! -f "$(archive modelship-operator "$key_operator")" ]]; then
    base_in_storage "$key_base" "${built_archive[python-base]}"
  fi
  step modelship-server "$key_serving" "$serving" build_dockerfile_in "$repo/serving_image" "$serving"
  step modelship-operator "$key_operator" "$operator" build_dockerfile_in "$repo/operator" "$operator"
  # vfs keeps a full copy of every layer: images a rebuild untagged would fill the disk.
  "${buildah_cmd[@]}" rmi --prune >/dev/null 2>&1 || true
  log "all images ready in $((SECONDS - start))s"
  flock -u 9
}

build_dockerfile_in() {  # work-dir context-dir tag
  build_dockerfile "$2" "$3"
}

# -- import into containerd ----------------------------------------------------------------------
import_all() {
  local ctr_cmd=(ctr --address "$containerd_address" --namespace k8s.io)
  "${ctr_cmd[@]}" version >/dev/null 2>&1 || die "no containerd answers at $containerd_address"
  local name tag tar want have start
  for name in pause modelship-server modelship-operator; do
    tar="${built_archive[$name]}"
    case "$name" in
      pause) tag="$PAUSE_NAME" ;;
      modelship-server) tag="$(serving_tag)" ;;
      modelship-operator) tag="$(operator_tag)" ;;
    esac
    want="$(tar -xOf "$tar" index.json | "$python" -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')"
    have="$("${ctr_cmd[@]}" images ls "name==$tag" | awk 'NR > 1 {print $3}')"
    if [[ "$have" == "$want" ]]; then
      log "$(printf '%-19s already in containerd (%s)' "$name" "${want:0:19}")"
      continue
    fi
    start=$SECONDS
    "${ctr_cmd[@]}" images import "$tar" >/dev/null
    have="$("${ctr_cmd[@]}" images ls "name==$tag" | awk 'NR > 1 {print $3}')"
    [[ "$have" == "$want" ]] || die "imported $tar but containerd has '$tag' at '${have:-nothing}', not $want"
    log "$(printf '%-19s imported in %ss as %s' "$name" "$((SECONDS - start))" "$tag")"
  done
}

case "${1:-build}" in
  build) build_all ;;
  import)
    build_all
    import_all
    ;;
  *) die "unknown command '$1' (use: hack/images.sh [build|import])" ;;
esac
