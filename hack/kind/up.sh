#!/usr/bin/env bash
# Brings up the kind cluster of the e2e suite (needs Docker): one control plane
# and two workers of the pinned node image, each worker with a second
# interface eth1 on a Docker network of its own (the macvlan master of the
# test pods' net1), the macvlan and static CNI plugins, the nsint and
# testbox images built and loaded, and deploy/overlays/kind applied (the
# Multus thick plugin and nsint). Writes the kubeconfig to $KUBECONFIG_FILE.
# A cluster or network of the same name from an earlier run is removed first.
# hack/kind/down.sh removes everything again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
need docker go curl sha256sum
docker info >/dev/null 2>&1 || die "Docker is not running (or not reachable): the kind suite needs Docker"

"$KIND_DIR/tools.sh" >/dev/null
"$KIND_DIR/down.sh"
mkdir -p "$ARTIFACTS"

log "creating cluster $CLUSTER_NAME ($KIND_NODE_IMAGE)"
"$KIND" create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
	--kubeconfig "$KUBECONFIG_FILE" --wait 5m --config - <<'CONFIG'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
CONFIG

mapfile -t nodes < <("$KIND" get nodes --name "$CLUSTER_NAME")
workers=()
for n in "${nodes[@]}"; do
	[[ $n == *-control-plane ]] || workers+=("$n")
done
[[ ${#workers[@]} -eq 2 ]] || die "want 2 workers, kind reports: ${nodes[*]}"

log "second node interface: Docker network $NET1_NETWORK ($NET1_SUBNET, internal) as eth1 of ${workers[*]}"
docker network create --internal --subnet "$NET1_SUBNET" --ip-range "$NET1_DOCKER_RANGE" \
	--label io.nsint.e2e=kind "$NET1_NETWORK" >/dev/null
for w in "${workers[@]}"; do
	docker network connect "$NET1_NETWORK" "$w"
	mac=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET1_NETWORK\").MacAddress}}" "$w")
	[[ -n $mac ]] || die "$w: Docker reports no MAC address on $NET1_NETWORK"
	# Docker names the new interface after the ones it already made (eth1
	# here); find it by MAC and make sure the NAD's master name holds.
	dev=$(docker exec "$w" ip -o link show | awk -v mac="$mac" '$0 ~ mac {sub(/@.*/, "", $2); sub(/:$/, "", $2); print $2}')
	[[ -n $dev ]] || die "$w: no interface with MAC $mac"
	if [[ $dev != eth1 ]]; then
		docker exec "$w" ip link set dev "$dev" down
		docker exec "$w" ip link set dev "$dev" name eth1
	fi
	docker exec "$w" ip link set dev eth1 up
done

log "CNI plugins macvlan and static $CNI_PLUGINS_VERSION into every node"
for n in "${nodes[@]}"; do
	for p in macvlan static; do
		docker cp "$TOOLS_DIR/cni/$p" "$n:/opt/cni/bin/$p"
	done
done

log "building $NSINT_IMAGE and $TESTBOX_IMAGE"
docker build -t "$NSINT_IMAGE" "$REPO_ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -o "$tmp/testbox" ./hack/testbox)
docker build -t "$TESTBOX_IMAGE" -f - "$tmp" <<'DOCKERFILE'
FROM scratch
COPY testbox /testbox
USER 65532:65532
ENTRYPOINT ["/testbox"]
DOCKERFILE
docker pull --quiet "$MULTUS_IMAGE" >/dev/null
for img in "$NSINT_IMAGE" "$TESTBOX_IMAGE" "$MULTUS_IMAGE"; do
	"$KIND" load docker-image --name "$CLUSTER_NAME" "$img"
done

log "cert-manager $CERT_MANAGER_VERSION (the overlay's certificates)"
kctl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml" >/dev/null
for d in cert-manager cert-manager-webhook cert-manager-cainjector; do
	kctl -n cert-manager rollout status "deployment/$d" --timeout 5m
done

log "deploying deploy/overlays/kind"
kctl apply -f "$REPO_ROOT/deploy/overlays/kind/network-attachment-definition-crd.yaml"
kctl wait --for condition=established --timeout 60s crd/network-attachment-definitions.k8s.cni.cncf.io
kctl apply -k "$REPO_ROOT/deploy/overlays/kind"
kctl -n kube-system rollout status daemonset/kube-multus-ds --timeout 5m
kctl -n nsint rollout status daemonset/nsint-agent --timeout 5m
kctl -n nsint rollout status deployment/nsint-collector --timeout 5m
kctl get pods -A -o wide >&2
log "cluster ready: KUBECONFIG=$KUBECONFIG_FILE"
