#!/usr/bin/env bash
# make e2e-cluster: cluster up, a Prometheus of its own that scrapes the agents
# (prometheus.sh), the e2e/cluster tests against both, then Prometheus stopped
# and its directory removed and the cluster down, on every exit path (success,
# failure, Ctrl-C). Root only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH=/usr/local/go/bin:$PATH

prom_dir=""
ours=0 # the cluster is this run's to take down
down() {
	local rc=$?
	"$here/prometheus.sh" stop "$prom_dir" || rc=1
	if [ "$ours" = 1 ]; then
		"$here/cluster.sh" down || rc=1
	fi
	exit $rc
}
trap down EXIT
trap 'exit 130' INT TERM

# Another run's cluster (or one left up) is never taken down by this one.
if "$here/cluster.sh" running; then
	echo "e2e-cluster: a cluster runs on this machine already (another run's, or make cluster-up's): make cluster-down first" >&2
	exit 3
fi
ours=1

lines="$("$here/cluster.sh" up)" || {
	rc=$?
	[ "$rc" = 3 ] && ours=0 # refused: another run got there first
	exit "$rc"
}
# The token stays out of the output (a log of the run).
sed 's/^COLLECTOR_TOKEN=.*/COLLECTOR_TOKEN=(set)/' <<<"$lines"
export KUBECONFIG COLLECTOR COLLECTOR_TOKEN COLLECTOR_CA
KUBECONFIG="$(sed -n 's/^KUBECONFIG=//p' <<<"$lines")"
COLLECTOR="$(sed -n 's/^COLLECTOR=//p' <<<"$lines")"
COLLECTOR_TOKEN="$(sed -n 's/^COLLECTOR_TOKEN=//p' <<<"$lines")"
COLLECTOR_CA="$(sed -n 's/^COLLECTOR_CA=//p' <<<"$lines")"
KUBECTL="$(cat /var/lib/nsint-cluster/bins)/kubectl"
export KUBECTL
# Made before the start, so that a start that fails half-way is cleaned up too.
prom_dir="$(mktemp -d /tmp/nsint-e2e-prometheus.XXXXXX)"
export PROMETHEUS
PROMETHEUS="$(NSINT_CA="$COLLECTOR_CA" "$here/prometheus.sh" start "$prom_dir" "$KUBECONFIG" | sed -n 's/^PROMETHEUS=//p')"
[ -n "$PROMETHEUS" ] || exit 1
echo "PROMETHEUS=$PROMETHEUS"
# kubectl's discovery cache in the cluster's directory, which cluster down removes.
export KUBECACHEDIR=/var/lib/nsint-cluster/kubectl-cache
cd "$repo"
go test -count=1 -v -timeout 20m ./e2e/cluster/
