#!/usr/bin/env bash
# Builds everything the local cluster (hack/local-cluster) needs besides
# kube-apiserver and etcd: kube-controller-manager, kube-scheduler, kubelet and
# kubectl (pinned by kube-node/go.mod) and the Multus thin plugin (pinned by
# multus/go.mod). It first runs build.sh, puts the new binaries beside
# kube-apiserver and etcd, and prints that directory.
#
# Idempotent like build.sh: a warm call does nothing. A cold build takes about
# 10 minutes on 2 idle cores (much longer on a loaded machine).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

module_version() { # module_version DIR MODULE
	sed -n "s#^[[:space:]]*\(require[[:space:]]\+\)\?$2 \(v[^[:space:]]*\).*#\2#p" "$1/go.mod" | head -n1
}
kube_version=$(module_version "$here/kube-apiserver" k8s.io/kubernetes)
node_version=$(module_version "$here/kube-node" k8s.io/kubernetes)
multus_version=$(module_version "$here/multus" gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
if [ -z "$node_version" ] || [ -z "$multus_version" ] || [ "$kube_version" != "$node_version" ]; then
	echo "kube-node/go.mod pins k8s.io/kubernetes ${node_version:-?}, kube-apiserver/go.mod ${kube_version:-?}: they must agree" >&2
	exit 1
fi

out="$("$here/build.sh")"
tools=(kube-controller-manager kube-scheduler kubelet kubectl)
stamp="$(cat "$here/build-cluster.sh" "$here"/kube-node/go.{mod,sum} "$here"/multus/go.{mod,sum} | sha256sum | cut -d' ' -f1)"
complete=yes
for t in "${tools[@]}" multus; do [ -x "$out/$t" ] || complete=no; done
if [ "$complete" = yes ] && [ "$(cat "$out/.stamp-cluster" 2>/dev/null)" = "$stamp" ]; then
	echo "$out"
	exit 0
fi

tmp="$(mktemp -d "$out/.build-cluster.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

minor="${kube_version#v*.}"
minor="${minor%%.*}"
major="${kube_version#v}"
major="${major%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean"

echo "building ${tools[*]} $kube_version and multus $multus_version into $out (cold: about 10 minutes)" >&2
(cd "$here/multus" && go build -trimpath -ldflags "-s -w" -o "$tmp/multus" gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus)
pkgs=()
for t in "${tools[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
(cd "$here/kube-node" && go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" "${pkgs[@]}")

for t in "${tools[@]}" multus; do mv -f "$tmp/$t" "$out/"; done
echo "$stamp" >"$out/.stamp-cluster"
echo "$out"
