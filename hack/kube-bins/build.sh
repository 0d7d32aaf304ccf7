#!/usr/bin/env bash
# Builds the Kubernetes components nsint's tests run, from the Go module proxy,
# pinned by the scratch modules beside this script (their go.mod files are the
# only place the versions live), and caches them outside the repository. Prints
# the directory that holds them, which is what KUBEBUILDER_ASSETS should name.
#
#   build.sh          kube-apiserver and etcd (kube-apiserver/, etcd/): the
#                     envtest tests of pkg/k8s and deploy/
#   build.sh --node   also what the local cluster (hack/local-cluster) runs:
#                     kube-controller-manager, kube-scheduler, kubelet and kubectl
#                     (kube-node/, at the Kubernetes version kube-apiserver/
#                     pins) and the Multus thin plugin (multus/)
#
# Idempotent: each module's binaries are rebuilt only when what they are built
# from changes (its go.mod, go.sum and build flags), so a warm call does nothing
# (well under a second). Cold, on 2 idle cores: about 8 minutes, and 10 more for
# --node. The envtest tests find the default cache directory by themselves; set
# NSINT_KUBE_BINS to use another one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

node=no
case "${1:-}" in
"") ;;
--node) node=yes ;;
*) echo "usage: $0 [--node]" >&2; exit 2 ;;
esac

module_version() { # module_version DIR MODULE
	sed -n "s#^[[:space:]]*\(require[[:space:]]\+\)\?$2 \(v[^[:space:]]*\).*#\2#p" "$here/$1/go.mod" | head -n1
}
kube_version=$(module_version kube-apiserver k8s.io/kubernetes)
etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] || { echo "cannot read the pinned versions from $here/*/go.mod" >&2; exit 1; }
if [ "$node" = yes ]; then
	node_version=$(module_version kube-node k8s.io/kubernetes)
	multus_version=$(module_version multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
	if [ -z "$node_version" ] || [ -z "$multus_version" ] || [ "$kube_version" != "$node_version" ]; then
		echo "kube-node/go.mod pins k8s.io/kubernetes ${node_version:-?}, kube-apiserver/go.mod ${kube_version:-?}: they must agree" >&2
		exit 1
	fi
fi

out="${NSINT_KUBE_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/nsint/kube-bins/$kube_version}"
mkdir -p "$out"

# Version information the Kubernetes binaries report (/version), as
# Kubernetes' own build sets it.
minor="${kube_version#v*.}"
minor="${minor%%.*}"
major="${kube_version#v}"
major="${major%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean"

# build MODULE LDFLAGS NAME=PACKAGE...: builds each PACKAGE of the scratch
# module MODULE into $out/NAME, unless $out/.stamp-MODULE says they were built
# from the same go.mod, go.sum, flags and packages. Several packages are built
# by one go command (their names must then be the packages' last elements).
build() {
	local module=$1 ldflags=$2
	shift 2
	local names=() pkgs=() pair stamp complete=yes
	for pair in "$@"; do
		names+=("${pair%%=*}")
		pkgs+=("${pair#*=}")
	done
	stamp="$({ cat "$here/$module"/go.{mod,sum}; printf '%s\n' "$ldflags" "$@"; } | sha256sum | cut -d' ' -f1)"
	for n in "${names[@]}"; do [ -x "$out/$n" ] || complete=no; done
	if [ "$complete" = yes ] && [ "$(cat "$out/.stamp-$module" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	local tmp target
	tmp="$(mktemp -d "$out/.build-$module.XXXXXX")"
	target="$tmp/"
	[ "${#pkgs[@]}" -eq 1 ] && target="$tmp/${names[0]}"
	echo "building ${names[*]} as $module/go.mod pins them into $out (cold: minutes)" >&2
	if ! (cd "$here/$module" && go build -trimpath -ldflags "$ldflags" -o "$target" "${pkgs[@]}"); then
		rm -rf "$tmp"
		return 1
	fi
	for n in "${names[@]}"; do mv -f "$tmp/$n" "$out/"; done
	rm -rf "$tmp"
	echo "$stamp" >"$out/.stamp-$module"
}

build etcd "-s -w" etcd=go.etcd.io/etcd/server/v3
build kube-apiserver "$kube_ldflags" kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver
if [ "$node" = yes ]; then
	build multus "-s -w" multus=gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus
	build kube-node "$kube_ldflags" \
		kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
		kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
		kubelet=k8s.io/kubernetes/cmd/kubelet \
		kubectl=k8s.io/kubernetes/cmd/kubectl
fi
echo "$out"
