#!/usr/bin/env bash
# Builds the real Kubernetes API server that FerroLB's suites use as kube-sim's judge:
# kube-apiserver v1.32 from the k8s.io/kubernetes Go module and etcd 3.5 from the go.etcd.io
# modules, both fetched through the Go module proxy only (go.mod/go.sum beside this script pin
# every module and its checksum). Nothing is committed as a binary and nothing else is
# downloaded.
#
# Idempotent and cached outside the repository, under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/real-api/<version>/
# where <version> names both releases and a hash of everything the binaries depend on (the
# go.mod/go.sum files and the build flags below), so a changed recipe builds afresh and an
# unchanged one returns at once. Concurrent runs wait for each other (flock).
#
# The last line printed is the directory holding `kube-apiserver` and `etcd` (tests read it
# through FERROLB_REAL_API_DIR). Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=v1.32.13
etcd_version=v3.5.16

# Without these, /version reports v0.0.0-master and kubectl's version dispatcher cannot pick a
# client (kube-sim reports the same major/minor). This is what upstream's hack/lib/version.sh
# stamps into both packages.
minor=${kube_version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
etcd_ldflags="-s -w"
# Static, reproducible binaries from the pinned modules; never switch toolchains or touch go.mod.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
build_flags="-trimpath"

recipe_hash=$( (echo "$CGO_ENABLED $GOTOOLCHAIN $GOFLAGS $build_flags $ldflags $etcd_ldflags"
  cat "$here"/apiserver/go.mod "$here"/apiserver/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum) |
  sha256sum | cut -c1-12)
base="${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/real-api"
out="$base/kube-${kube_version}-etcd-${etcd_version}-${recipe_hash}"
stamp="$out/.complete"

log() { echo "real-api: $*" >&2; }

mkdir -p "$base"
exec 9>"$base/.lock"
flock 9

if [ -f "$stamp" ] && [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  log "cached in $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { log "go is not on PATH (needs Go >= 1.24)"; exit 1; }
mkdir -p "$out"
rm -f "$stamp"

start=$(date +%s)
log "building kube-apiserver $kube_version into $out (cold builds take many minutes)"
(cd "$here/apiserver" && go build $build_flags -ldflags "$ldflags" \
  -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"

log "building etcd $etcd_version"
(cd "$here/etcd" && go build $build_flags -ldflags "$etcd_ldflags" \
  -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$out/etcd.tmp" "$out/etcd"

"$out/kube-apiserver" --version >&2
"$out/etcd" --version >&2
touch "$stamp"
log "built in $(($(date +%s) - start)) s"
echo "$out"
