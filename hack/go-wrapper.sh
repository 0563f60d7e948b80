# shellcheck shell=bash
# Sourced by the scripts that build a Go program from a module that is not meant to be a dependency
# (hack/build-argocd.sh, hack/build-argo-rollouts.sh). Such a module's go.mod replaces the k8s.io
# staging modules (and others) with published versions; replace directives only count in the main
# module, so a wrapper module that requires it and copies those replaces builds the dependency graph
# the project's own release does.

# go_module_dir MODULE VERSION: where the Go module cache holds the module's source.
go_module_dir() {
  go mod download -json "$1@$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

# write_wrapper_module DIR NAME MODULE VERSION [GO_VERSION]: the wrapper module modelship.dev/tools/NAME
# in DIR, its go.sum resolved. GO_VERSION defaults to the one the module's own go.mod states.
write_wrapper_module() {
  local dir="$1" name="$2" module="$3" version="$4" go_version="${5:-}" upstream_mod
  mkdir -p "$dir"
  go mod download -json "${module}@${version}" >"$dir/download.json"
  upstream_mod="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$dir/download.json")"
  [[ -n "$go_version" ]] || go_version="$(sed -n 's/^go //p' "$upstream_mod")"
  {
    echo "module modelship.dev/tools/${name}"
    echo
    echo "go ${go_version}"
    echo
    echo "require ${module} ${version}"
    echo
    echo "replace ("
    # Every replace that points at a published version (module => module version); a local path
    # replace (=> ./dir) has nothing to point at outside the project's repository.
    sed -n '/^replace (/,/^)/p' "$upstream_mod" |
      grep -E '^\s*[^ /]+\.[^ ]+ => [^ .][^ ]* v[0-9][^ ]*\s*$' |
      sed -E 's/^\s*/\t/'
    echo ")"
  } >"$dir/go.mod"
  printf 'package tools\n' >"$dir/tools.go"
  rm -f "$dir/go.sum"
  # `go get` fills go.sum; what it cannot resolve shows up in the build that follows, with its error.
  (cd "$dir" && { go get "${module}@${version}" >/dev/null 2>&1 || true; })
}

# release_ldflags PKG VERSION: the -X flags a release build stamps into PKG's version variables.
release_ldflags() {
  local pkg="$1" version="$2"
  echo "-s -w -X ${pkg}.version=${version#v} -X ${pkg}.gitTag=${version}" \
    "-X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
}
