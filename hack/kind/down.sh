#!/usr/bin/env bash
# Removes what hack/kind/up.sh created: the kind cluster and the Docker network
# of the nodes' second interface, found by their names only. Idempotent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

if [[ -x $KIND ]] && "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
	log "deleting cluster $CLUSTER_NAME"
	"$KIND" delete cluster --name "$CLUSTER_NAME"
fi
if docker network inspect "$NET1_NETWORK" >/dev/null 2>&1; then
	log "removing Docker network $NET1_NETWORK"
	docker network rm "$NET1_NETWORK" >/dev/null
fi
