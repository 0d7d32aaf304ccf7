#!/usr/bin/env bash
# make e2e-kind: up.sh, the Go suite (e2e/kind), then down.sh on every exit
# path (success, failure, Ctrl-C, TERM). On failure the cluster's state and
# logs are saved under $ARTIFACTS first. Needs Docker.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
need docker go
docker info >/dev/null 2>&1 || die "Docker is not running (or not reachable): the kind suite needs Docker"

collect() {
	log "saving the cluster's state and logs to $ARTIFACTS"
	mkdir -p "$ARTIFACTS"
	{
		kctl get nodes -o wide
		kctl get pods -A -o wide
		kctl get network-attachment-definitions -A -o yaml
		kctl get events -A --sort-by=.lastTimestamp
	} >"$ARTIFACTS/cluster.txt" 2>&1 || true
	for sel in "nsint app.kubernetes.io/name=nsint-agent" "nsint app.kubernetes.io/name=nsint-collector" "kube-system app=multus"; do
		read -r ns label <<<"$sel"
		kctl -n "$ns" logs -l "$label" --all-containers --prefix --tail=-1 \
			>"$ARTIFACTS/logs-${label#*=}.txt" 2>&1 || true
	done
	"$KIND" export logs --name "$CLUSTER_NAME" "$ARTIFACTS/kind-logs" >/dev/null 2>&1 || true
}

status=1
finish() {
	[[ $status -eq 0 ]] || collect
	"$KIND_DIR/down.sh" || log "cleanup failed: run hack/kind/down.sh"
	exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$KIND_DIR/up.sh"
log "running e2e/kind"
cd "$REPO_ROOT"
set +e
NSINT_KIND_KUBECONFIG="$KUBECONFIG_FILE" go test -count=1 -v -timeout 20m ./e2e/kind/ 2>&1 | tee "$ARTIFACTS/go-test.txt"
status=${PIPESTATUS[0]}
set -e
