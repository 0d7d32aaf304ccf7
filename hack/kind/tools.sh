#!/usr/bin/env bash
# Installs the pinned kind, kubectl and CNI plugins (macvlan, static) into
# $TOOLS_DIR, once; prints the directory. Needs Go and curl, not Docker.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
need go curl sha256sum

mkdir -p "$TOOLS_DIR/cni"
if [[ ! -x $KIND ]]; then
	log "building kind $KIND_VERSION"
	GOBIN="$TOOLS_DIR" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
if [[ ! -x $TOOLS_DIR/cni/macvlan || ! -x $TOOLS_DIR/cni/static ]]; then
	log "building CNI plugins macvlan and static $CNI_PLUGINS_VERSION"
	GOBIN="$TOOLS_DIR/cni" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
		"github.com/containernetworking/plugins/plugins/main/macvlan@$CNI_PLUGINS_VERSION" \
		"github.com/containernetworking/plugins/plugins/ipam/static@$CNI_PLUGINS_VERSION"
fi
if [[ ! -x $KUBECTL ]]; then
	log "downloading kubectl $KUBECTL_VERSION"
	arch=$(go env GOARCH)
	base="https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/$arch/kubectl"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsSL --retry 3 -o "$tmp/kubectl" "$base"
	curl -fsSL --retry 3 -o "$tmp/kubectl.sha256" "$base.sha256"
	echo "$(cat "$tmp/kubectl.sha256")  $tmp/kubectl" | sha256sum --check --quiet
	install -m 0755 "$tmp/kubectl" "$KUBECTL"
fi
"$KIND" version >&2
"$KUBECTL" version --client >&2
echo "$TOOLS_DIR"
