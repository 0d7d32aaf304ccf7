#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy, pinned by the scratch
# modules beside this script (kube-apiserver/go.mod, etcd/go.mod: the only place
# their versions live), and caches them outside the repository. Prints the
# directory that holds them, which is what KUBEBUILDER_ASSETS should name.
#
# Idempotent: when the cache already holds binaries built from the same go.mod and
# go.sum, it does nothing (well under a second). A cold build takes about 8 minutes
# on 2 cores. The envtest tests of pkg/k8s and deploy/ find the default cache
# directory by themselves; set NSINT_KUBE_BINS to use another one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

module_version() { # module_version DIR MODULE
	sed -n "s#^[[:space:]]*\(require[[:space:]]\+\)\?$2 \(v[^[:space:]]*\).*#\2#p" "$1/go.mod" | head -n1
}
kube_version=$(module_version "$here/kube-apiserver" k8s.io/kubernetes)
etcd_version=$(module_version "$here/etcd" go.etcd.io/etcd/server/v3)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] || { echo "cannot read the pinned versions from $here/*/go.mod" >&2; exit 1; }

out="${NSINT_KUBE_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/nsint/kube-bins/$kube_version}"
stamp="$(cat "$here/build.sh" "$here"/kube-apiserver/go.{mod,sum} "$here"/etcd/go.{mod,sum} | sha256sum | cut -d' ' -f1)"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Version information the binaries report (/version), as Kubernetes' own build sets it.
minor="${kube_version#v*.}"
minor="${minor%%.*}"
major="${kube_version#v}"
major="${major%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean"

echo "building kube-apiserver $kube_version and etcd $etcd_version into $out (cold: about 8 minutes)" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
(cd "$here/kube-apiserver" && go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)

mv -f "$tmp/etcd" "$tmp/kube-apiserver" "$out/"
echo "$stamp" >"$out/.stamp"
echo "$out"
