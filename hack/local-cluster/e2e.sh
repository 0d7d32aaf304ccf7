#!/usr/bin/env bash
# make e2e-cluster: cluster up, the e2e/cluster tests against it, cluster down
# on every exit path (success, failure, Ctrl-C). Root only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH=/usr/local/go/bin:$PATH

down() {
	local rc=$?
	"$here/cluster.sh" down || rc=1
	exit $rc
}
trap down EXIT
trap 'exit 130' INT TERM

lines="$("$here/cluster.sh" up)"
echo "$lines"
export KUBECONFIG COLLECTOR
KUBECONFIG="$(sed -n 's/^KUBECONFIG=//p' <<<"$lines")"
COLLECTOR="$(sed -n 's/^COLLECTOR=//p' <<<"$lines")"
KUBECTL="$(cat /var/lib/nsint-cluster/bins)/kubectl"
export KUBECTL
# kubectl's discovery cache in the cluster's directory, which cluster down removes.
export KUBECACHEDIR=/var/lib/nsint-cluster/kubectl-cache
cd "$repo"
go test -count=1 -v -timeout 20m ./e2e/cluster/
