# Sourced by the hack/kind scripts: pinned versions, names and tool paths.
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KIND_DIR/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$KIND_DIR/versions.env"

# Names of everything the suite creates on the Docker host; all removed by down.sh.
CLUSTER_NAME=${NSINT_KIND_CLUSTER:-nsint-e2e}
NET1_NETWORK=${NSINT_KIND_NET1_NETWORK:-nsint-kind-net1}
# The second node interface: a Docker network with no way out (--internal).
# Docker gives the nodes' eth1 addresses from the lower half; the test pods'
# static net1 addresses come from the upper half of the same /24, so that
# Docker's isolation rules (which match the subnet) never drop them.
NET1_SUBNET=198.18.100.0/24
NET1_DOCKER_RANGE=198.18.100.0/25
NSINT_IMAGE=nsint.local/nsint:dev
TESTBOX_IMAGE=nsint.local/testbox:dev # hack/testbox, as "talk"

TOOLS_DIR=${NSINT_KIND_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/nsint/kind-tools/$KIND_VERSION-$KUBECTL_VERSION-$CNI_PLUGINS_VERSION}
KIND="$TOOLS_DIR/kind"
KUBECTL="$TOOLS_DIR/kubectl"
# Kubeconfig, test output and, after a failure, the cluster's logs (bin/ is ignored by git).
ARTIFACTS=${NSINT_KIND_ARTIFACTS:-$REPO_ROOT/bin/e2e-kind}
KUBECONFIG_FILE=$ARTIFACTS/kubeconfig

log() { printf 'e2e-kind: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

kctl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || die "$c not found: the kind suite needs Docker, Go, curl and sha256sum"
	done
}
