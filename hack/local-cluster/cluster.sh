#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, without Docker: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet (built by
# hack/kube-bins/build.sh --node), Debian's containerd, runc and CNI plugins,
# the Multus thin plugin over a bridge network, and nsint deployed with
# deploy/overlays/local. See /work/shared/LOCAL-CLUSTER.md for why each setting is
# what it is.
#
#   cluster.sh up     start it; prints KUBECONFIG=, COLLECTOR=https://..., COLLECTOR_TOKEN= and
#                     COLLECTOR_CA= when the agent is ready
#   cluster.sh down   remove everything "up" created, checked against the snapshot "up" took
#   cluster.sh env    print the four lines again
#   cluster.sh running  exit 0 when a cluster's components run here
#
# One cluster at a time: "up" and "down" hold /run/lock/nsint-cluster.lock
# while they work, and "up" refuses (exit 3) while a cluster's components run
# (another run's, or one left up): it removes a previous cluster's files only
# when nothing of it runs any more.
#
# nsint's APIs need certificates and tokens here as on any cluster: "up" makes
# a CA of its own and the agents' and the collector's serving certificates
# (the Secrets and ConfigMap deploy/overlays/local expects), and a
# ServiceAccount that may read pods and nodes everywhere whose token
# (COLLECTOR_TOKEN) sees every row of the collector. All of it under $WORK.
#
# Root only. Everything lives in $WORK (fixed: deploy/overlays/local names paths
# in it), binds to 127.0.0.1 or the node IP (198.18.200.1 on a veth pair of our
# own), and uses addresses from 198.18.0.0/15 only. Interfaces: nskc-*.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
WORK=/var/lib/nsint-cluster
SNAP=/var/lib/nsint-cluster.snapshot
NODE=nsint-local
NODE_IP=198.18.200.1
SERVICE_CIDR=198.18.203.0/24
SERVICE_IP=198.18.203.1
POD_SUBNET=198.18.201.0/24
# The pod bridge's address: pods reach the node IP (the host-network agent and
# collector) through it, and only the node IP (no default route).
POD_GATEWAY=198.18.201.1
NSINT_PKI=$WORK/nsint-pki
ETCD_CLIENT=127.0.0.1:12379
ETCD_PEER=127.0.0.1:12380
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Paths kubelet, containerd and the CNI plugins write outside $WORK whatever
# their flags say: recorded before "up", removed by "down" when they were absent.
OUTSIDE=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni /opt/cni /run/netns)
SYSCTLS=(net/ipv4/ip_forward net/ipv6/conf/all/forwarding vm/overcommit_memory vm/panic_on_oom kernel/panic
	kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
PROCS=(kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd)

log() { printf '%s cluster: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "$*"
	exit 1
}
kctl() { KUBECACHEDIR="$WORK/kubectl-cache" "$BINS/kubectl" --kubeconfig "$WORK/pki/admin.kubeconfig" "$@"; }
ctrl() { ctr --address "$WORK/containerd/containerd.sock" -n k8s.io "$@"; }

# ---------------------------------------------------------------- snapshot

take_snapshot() {
	rm -rf "$SNAP"
	mkdir -p "$SNAP"
	for p in "${OUTSIDE[@]}"; do [ -e "$p" ] && echo "$p"; done >"$SNAP/paths"
	for d in /sys/fs/cgroup/*/; do [ -d "$d/kubepods" ] && echo "$d"; done >"$SNAP/cgroups"
	for s in "${SYSCTLS[@]}"; do echo "$s $(cat "/proc/sys/$s" 2>/dev/null || echo -)"; done >"$SNAP/sysctls"
	mounts >"$SNAP/mounts"
	ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort >"$SNAP/links"
	chains >"$SNAP/chains"
}

mounts() { awk '{print $5}' /proc/self/mountinfo | sort -u; }

chains() {
	local t
	for t in filter nat mangle raw; do
		iptables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" {print "4 " t " " $2}'
		ip6tables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" {print "6 " t " " $2}'
	done | sort
}

# ---------------------------------------------------------------- up

need_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v busybox >/dev/null || missing+=(busybox-static)
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]} from Debian"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 || {
			apt-get update >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
		}
	fi
}

make_network() {
	local l
	for l in nskc-br0 nskc-node nskc-mv0; do ip link del "$l" 2>/dev/null || true; done
	ip link add nskc-node type veth peer name nskc-peer
	ip addr add "$NODE_IP/30" dev nskc-node
	ip link add nskc-mv0 type veth peer name nskc-mv1
	for l in nskc-node nskc-peer nskc-mv0 nskc-mv1; do ip link set "$l" up; done
	# containerd creates pod namespaces under /run/netns; kubelet mounts the
	# agent's hostPath with HostToContainer propagation, which needs a shared mount.
	mkdir -p /run/netns
	if ! mountpoint -q /run/netns; then
		mount --bind /run/netns /run/netns
		touch "$SNAP/netns-bind"
	fi
	mount --make-shared /run/netns
}

cert() { # cert NAME CN O SAN... (SAN empty: client certificate)
	local name=$1 cn=$2 o=$3
	shift 3
	local subj="/CN=$cn"
	[ -n "$o" ] && subj="/O=$o$subj"
	local ext="$WORK/pki/$name.ext"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		if [ "$#" -gt 0 ]; then
			echo "extendedKeyUsage=serverAuth,clientAuth"
			local IFS=,
			echo "subjectAltName=$*"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/pki/$name.key" \
		-subj "$subj" -out "$WORK/pki/$name.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/pki/$name.csr" -CA "$WORK/pki/ca.crt" -CAkey "$WORK/pki/ca.key" -CAcreateserial \
		-days 30 -extfile "$ext" -out "$WORK/pki/$name.crt" 2>/dev/null
}

# nsint's own serving certificates, from a CA of their own (not the
# cluster's): the agents' for nsint-agent.nsint.svc (the name the collector and
# Prometheus check) and the node IP, the collector's for
# nsint-collector.nsint.svc and the node IP (COLLECTOR's address).
make_nsint_pki() {
	mkdir -p "$NSINT_PKI"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj /CN=nsint-local-serving-ca -keyout "$NSINT_PKI/ca.key" -out "$NSINT_PKI/ca.crt" 2>/dev/null
	serving_cert agent nsint-agent "DNS:nsint-agent.nsint.svc" "DNS:nsint-agent.nsint.svc.cluster.local" "IP:$NODE_IP"
	serving_cert collector nsint-collector "DNS:nsint-collector.nsint.svc" \
		"DNS:nsint-collector.nsint.svc.cluster.local" "IP:$NODE_IP"
}

serving_cert() { # serving_cert NAME CN SAN...
	local name=$1 cn=$2
	shift 2
	local ext="$NSINT_PKI/$name.ext" IFS=,
	printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
		extendedKeyUsage=serverAuth "subjectAltName=$*" >"$ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$NSINT_PKI/$name.key" \
		-subj "/CN=$cn" -out "$NSINT_PKI/$name.csr" 2>/dev/null
	openssl x509 -req -in "$NSINT_PKI/$name.csr" -CA "$NSINT_PKI/ca.crt" -CAkey "$NSINT_PKI/ca.key" -CAcreateserial \
		-days 30 -extfile "$ext" -out "$NSINT_PKI/$name.crt" 2>/dev/null
}

# deploy_nsint creates what deploy/overlays/local expects to exist (the
# namespace, the two Secrets, the CA ConfigMap), applies the overlay, and then
# the harness's own access: hack/local-cluster/access.yaml and the token of
# COLLECTOR_TOKEN.
deploy_nsint() {
	kctl create namespace nsint >/dev/null
	kctl -n nsint create secret tls nsint-agent-tls --cert "$NSINT_PKI/agent.crt" --key "$NSINT_PKI/agent.key" >/dev/null
	kctl -n nsint create secret tls nsint-collector-tls --cert "$NSINT_PKI/collector.crt" \
		--key "$NSINT_PKI/collector.key" >/dev/null
	kctl -n nsint create configmap nsint-ca --from-file "ca.crt=$NSINT_PKI/ca.crt" >/dev/null
	wait_for 60 "the nsint namespace's ServiceAccount" kctl apply -k "$repo/deploy/overlays/local"
	kctl apply -f "$here/access.yaml" >/dev/null
	wait_for 30 "the viewer's ServiceAccount" kctl -n nsint-local get serviceaccount collector-viewer
	(
		umask 077
		kctl -n nsint-local create token collector-viewer --duration 24h >"$NSINT_PKI/collector-token"
	)
}

kubeconfig() { # kubeconfig NAME SERVER
	cat >"$WORK/pki/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nsint-local
  cluster:
    server: $2
    certificate-authority: $WORK/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $WORK/pki/$1.crt
    client-key: $WORK/pki/$1.key
contexts:
- name: nsint-local
  context: {cluster: nsint-local, user: $1}
current-context: nsint-local
EOF
}

make_pki() {
	mkdir -p "$WORK/pki"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=nsint-local-ca \
		-keyout "$WORK/pki/ca.key" -out "$WORK/pki/ca.crt" 2>/dev/null
	cert apiserver kube-apiserver "" "IP:$NODE_IP" IP:127.0.0.1 "IP:$SERVICE_IP" DNS:kubernetes DNS:kubernetes.default \
		DNS:kubernetes.default.svc DNS:kubernetes.default.svc.cluster.local
	cert kubelet-serving "system:node:$NODE" system:nodes "IP:$NODE_IP"
	cert admin nsint-local-admin system:masters
	cert apiserver-kubelet nsint-apiserver-kubelet-client system:masters
	cert controller-manager system:kube-controller-manager ""
	cert scheduler system:kube-scheduler ""
	cert kubelet "system:node:$NODE" system:nodes
	cert multus nsint-multus ""
	openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/pki/sa.key" 2>/dev/null
	openssl ec -in "$WORK/pki/sa.key" -pubout -out "$WORK/pki/sa.pub" 2>/dev/null
	kubeconfig admin "https://$NODE_IP:6443"
	kubeconfig controller-manager "https://$NODE_IP:6443"
	kubeconfig scheduler "https://$NODE_IP:6443"
	kubeconfig kubelet "https://$NODE_IP:6443"
	kubeconfig multus "https://$NODE_IP:6443"
}

start() { # start NAME [ENV=VALUE...] -- COMMAND...
	local name=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	setsid env "${envs[@]}" "$@" </dev/null >"$WORK/logs/$name.log" 2>&1 &
	echo $! >"$WORK/pids/$name"
}

alive() { [ -f "$WORK/pids/$1" ] && kill -0 "$(cat "$WORK/pids/$1")" 2>/dev/null; }

wait_for() { # wait_for SECONDS WHAT COMMAND...
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "timed out waiting for $what (logs: $WORK/logs)"
		sleep 0.5
	done
}

write_configs() {
	mkdir -p "$WORK"/{cni/bin,cni/net.d,cni/ipam,cni/multus,containerd,runc,kubelet,pod-logs,node/bpffs,node/state,logs}
	for p in /usr/lib/cni/*; do ln -sf "$p" "$WORK/cni/bin/"; done
	cp "$BINS/multus" "$WORK/cni/bin/multus" 2>/dev/null || [ -n "${NSINT_CLUSTER_PARTIAL:-}" ]
	# A private BPF filesystem for the agent's pins (never /sys/fs/bpf here),
	# shared so that the agent's HostToContainer mount sees it.
	mount -t bpf nsint-cluster-bpffs "$WORK/node/bpffs"
	mount --make-shared "$WORK/node/bpffs"

	cat >"$WORK/cni/net.d/00-multus.conf" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "$WORK/pki/multus.kubeconfig",
  "cniDir": "$WORK/cni/multus",
  "binDir": "$WORK/cni/bin",
  "logFile": "$WORK/logs/multus.log",
  "logLevel": "error",
  "delegates": [{
    "cniVersion": "0.4.0",
    "name": "nsint-pods",
    "type": "bridge",
    "bridge": "nskc-br0",
    "isGateway": true,
    "isDefaultGateway": false,
    "ipMasq": false,
    "ipam": {
      "type": "host-local",
      "dataDir": "$WORK/cni/ipam",
      "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
      "routes": [{"dst": "$NODE_IP/32", "gw": "$POD_GATEWAY"}]
    }
  }]
}
EOF
	cat >"$WORK/containerd/config.toml" <<EOF
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$WORK/containerd/containerd.sock"
[ttrpc]
  address = "$WORK/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "nsint.local/pause:dev"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$WORK/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$WORK/cni/bin"
    conf_dir = "$WORK/cni/net.d"
    max_conf_num = 1
EOF
	cat >"$WORK/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $WORK/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $WORK/pki/kubelet-serving.crt
tlsPrivateKeyFile: $WORK/pki/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$WORK/containerd/containerd.sock
resolvConf: ""
volumePluginDir: $WORK/kubelet/volume-plugins
podLogsDir: $WORK/pod-logs
makeIPTablesUtilChains: false
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi"}
EOF
}

make_images() {
	mkdir -p "$WORK/images" "$WORK/tools"
	CGO_ENABLED=0 go build -C "$repo" -trimpath -o "$WORK/tools/" ./hack/local-cluster/mkimage ./hack/testbox
	local mk="$WORK/tools/mkimage" box="$WORK/tools/testbox"
	"$mk" -o "$WORK/images/pause.tar" -tag nsint.local/pause:dev -file "$box:/pause" -entrypoint /pause -entrypoint pause
	"$mk" -o "$WORK/images/agent.tar" -tag nsint.local/agent:dev -file "$repo/bin/nsint-agent:/nsint-agent" \
		-dir /tmp -dir /etc/nsint -dir /var/run/netns -dir /var/lib/nsint -dir /sys/fs/bpf -entrypoint /nsint-agent
	"$mk" -o "$WORK/images/collector.tar" -tag nsint.local/collector:dev \
		-file "$repo/bin/nsint-collector:/nsint-collector" -dir /tmp -entrypoint /nsint-collector
	local links=()
	for a in sh ping ping6 ip nc sleep cat ls ps kill echo grep sed awk wget ifconfig route ss netstat true false; do
		links+=(-link "/bin/$a:busybox")
	done
	"$mk" -o "$WORK/images/testbox.tar" -tag nsint.local/testbox:dev -file "$(command -v busybox):/bin/busybox" \
		-file "$box:/bin/testbox" "${links[@]}" -dir /tmp -env PATH=/bin -entrypoint /bin/testbox -entrypoint pause
	for i in pause agent collector testbox; do ctrl images import "$WORK/images/$i.tar" >/dev/null; done
}

# any_alive: is a component of a cluster running?
any_alive() {
	local f
	for f in "$WORK"/pids/*; do
		[ -f "$f" ] && alive "$(basename "$f")" && return 0
	done
	return 1
}

up() {
	[ "$(id -u)" = 0 ] || die "run as root"
	if any_alive; then
		log "a cluster runs here already (another run's, or one left up): make cluster-down first"
		exit 3
	fi
	if [ -e "$WORK" ] || [ -e "$SNAP" ]; then
		log "a previous cluster's files exist: removing it first"
		down || die "could not remove the previous cluster"
	fi
	if pgrep -x kubelet >/dev/null; then
		die "a kubelet already runs on this machine: the local cluster needs a machine that is not a Kubernetes node"
	fi
	local t0=$SECONDS
	UP_DONE=0
	trap '[ "$UP_DONE" = 1 ] || log "cluster-up failed: logs in $WORK/logs; run make cluster-down (hack/local-cluster/cluster.sh down)"' EXIT
	need_packages
	BINS="$("$repo/hack/kube-bins/build.sh" --node)"
	[ -x "$repo/bin/nsint-agent" ] && [ -x "$repo/bin/nsint-collector" ] || die "bin/nsint-agent missing: run make build"
	take_snapshot
	mkdir -p "$WORK/pids" "$WORK/logs"
	echo "$BINS" >"$WORK/bins"
	make_network
	make_pki
	make_nsint_pki
	write_configs

	start etcd -- "$BINS/etcd" --name nsint-local --data-dir "$WORK/etcd" \
		--listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
		--listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
		--initial-cluster "nsint-local=http://$ETCD_PEER" --log-level warn
	start containerd -- containerd --config "$WORK/containerd/config.toml" --log-level warn
	start kube-apiserver -- "$BINS/kube-apiserver" --etcd-servers "http://$ETCD_CLIENT" \
		--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
		--tls-cert-file "$WORK/pki/apiserver.crt" --tls-private-key-file "$WORK/pki/apiserver.key" \
		--client-ca-file "$WORK/pki/ca.crt" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-account-issuer https://kubernetes.default.svc --service-account-key-file "$WORK/pki/sa.pub" \
		--service-account-signing-key-file "$WORK/pki/sa.key" --service-cluster-ip-range "$SERVICE_CIDR" \
		--kubelet-client-certificate "$WORK/pki/apiserver-kubelet.crt" --kubelet-client-key "$WORK/pki/apiserver-kubelet.key" \
		--kubelet-preferred-address-types InternalIP --allow-privileged=true --profiling=false
	make_images
	wait_for 90 kube-apiserver kctl get --raw /readyz
	start kube-controller-manager -- "$BINS/kube-controller-manager" --kubeconfig "$WORK/pki/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$WORK/pki/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$WORK/pki/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
		--service-account-private-key-file "$WORK/pki/sa.key" --root-ca-file "$WORK/pki/ca.crt" \
		--flex-volume-plugin-dir "$WORK/kubelet/volume-plugins" --controllers '*,-nodeipam' --profiling=false
	start kube-scheduler -- "$BINS/kube-scheduler" --kubeconfig "$WORK/pki/scheduler.kubeconfig" \
		--authentication-kubeconfig "$WORK/pki/scheduler.kubeconfig" --authorization-kubeconfig "$WORK/pki/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false
	# PATH without iptables: kubelet adds its chains whenever it finds the tool.
	start kubelet PATH=/usr/bin:/bin -- "$BINS/kubelet" --config "$WORK/kubelet/config.yaml" \
		--kubeconfig "$WORK/pki/kubelet.kubeconfig" --root-dir "$WORK/kubelet" --cert-dir "$WORK/kubelet/pki" \
		--node-ip "$NODE_IP" --hostname-override "$NODE" --v 1

	wait_for 120 "node $NODE" kctl get node "$NODE"
	kctl wait --for condition=Ready "node/$NODE" --timeout 120s >/dev/null
	# kubelet sets kernel tunables once at start (kernel.panic=10,
	# panic_on_oops=1, vm.overcommit_memory=1, ...): give the machine its own back.
	restore_sysctls
	wait_for 60 "the default ServiceAccount" kctl -n default get serviceaccount default
	local nad_dir
	nad_dir="$(cd "$repo/hack/kube-bins/multus" && GOWORK=off GOFLAGS=-mod=readonly go mod download -json \
		github.com/k8snetworkplumbingwg/network-attachment-definition-client | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	kctl apply -f "$nad_dir/artifacts/networks-crd.yaml" >/dev/null
	kctl apply -f "$here/multus-rbac.yaml" >/dev/null
	kctl wait --for condition=Established crd/network-attachment-definitions.k8s.cni.cncf.io --timeout 60s >/dev/null
	deploy_nsint
	kctl -n nsint rollout status daemonset/nsint-agent --timeout 180s >&2
	kctl -n nsint rollout status deployment/nsint-collector --timeout 120s >&2
	wait_for 60 "the collector's API" curl -sf --cacert "$NSINT_PKI/ca.crt" "https://$NODE_IP:8080/healthz"
	wildcard_listeners
	log "cluster up in $((SECONDS - t0)) s"
	UP_DONE=1
	env_lines
}

# Our processes must bind to the node IP or 127.0.0.1 only: say so if one did not.
wildcard_listeners() {
	local p pid
	for p in "${PROCS[@]}"; do
		pid=$(cat "$WORK/pids/$p" 2>/dev/null) || continue
		if ss -Hltunp | awk '$5 ~ /^(0\.0\.0\.0|\*|\[::\]):/' | grep -q "pid=$pid,"; then
			log "warning: $p (pid $pid) listens on a wildcard address"
		fi
	done
	return 0
}

# The collector sees every row for COLLECTOR_TOKEN (a token of
# nsint-local/collector-viewer, valid 24 hours); COLLECTOR_CA is the CA file of
# its certificate (curl --cacert, nsint-collector flows --ca-file).
env_lines() {
	echo "KUBECONFIG=$WORK/pki/admin.kubeconfig"
	echo "COLLECTOR=https://$NODE_IP:8080"
	echo "COLLECTOR_TOKEN=$(cat "$NSINT_PKI/collector-token")"
	echo "COLLECTOR_CA=$NSINT_PKI/ca.crt"
}

# ---------------------------------------------------------------- down

stop_pid() { # stop_pid NAME SECONDS: SIGTERM, wait, SIGKILL
	local f="$WORK/pids/$1" pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + $2))
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		fi
	fi
	rm -f "$f"
}

# Processes in the kubepods cgroups (every container of ours), by PID.
kill_pods() {
	local d pids
	[ -d /sys/fs/cgroup/pids/kubepods ] || return 0
	grep -qx /sys/fs/cgroup/pids/ "$SNAP/cgroups" 2>/dev/null && return 0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.3
	done
}

# containerd-shim processes that serve our containerd (their -address names $WORK).
kill_shims() {
	local f pid
	for f in $(grep -laF -- "$WORK/containerd/containerd.sock" /proc/[0-9]*/cmdline 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in */containerd-shim*) kill -KILL "$pid" 2>/dev/null || true ;; esac
	done
}

under_ours() { # mount points that "up" created
	local m
	while read -r m; do
		case "$m" in
		"$WORK" | "$WORK"/*) echo "$m" ;;
		/run/netns/cni-*) grep -qx "$m" "$SNAP/mounts" 2>/dev/null || echo "$m" ;;
		/run/containerd | /run/containerd/*) grep -qx /run/containerd "$SNAP/paths" 2>/dev/null || echo "$m" ;;
		/var/lib/kubelet | /var/lib/kubelet/*) grep -qx /var/lib/kubelet "$SNAP/paths" 2>/dev/null || echo "$m" ;;
		esac
	done < <(mounts) | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

down() {
	[ "$(id -u)" = 0 ] || die "run as root"
	local t0=$SECONDS
	if [ -d "$WORK/pids" ]; then
		stop_pid kubelet 15
		if alive containerd; then
			local ids
			ids=$(ctrl tasks ls -q 2>/dev/null || true)
			for id in $ids; do ctrl tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
			kill_pods
			for id in $ids; do ctrl tasks delete -f "$id" >/dev/null 2>&1 || true; done
		fi
		stop_pid containerd 10
		kill_pods
		kill_shims
		for p in kube-scheduler kube-controller-manager; do stop_pid "$p" 10 & done
		wait
		stop_pid kube-apiserver 20
		stop_pid etcd 10
	fi
	local m
	for _ in 1 2 3; do
		while read -r m; do
			[ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
		done < <(under_ours)
	done
	local f
	for f in /run/netns/cni-*; do
		[ -e "$f" ] && ! grep -qx "$f" "$SNAP/mounts" 2>/dev/null && rm -f "$f"
	done
	if [ -f "$SNAP/netns-bind" ] && mountpoint -q /run/netns; then
		umount /run/netns 2>/dev/null || log "note: /run/netns is still a mount point (something else mounted namespaces under it)"
	fi
	local l
	for l in $(ip -o link show master nskc-br0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		ip link del "$l" 2>/dev/null || true
	done
	for l in nskc-br0 nskc-node nskc-mv0; do ip link del "$l" 2>/dev/null || true; done
	if [ -f "$SNAP/chains" ]; then
		local v t c
		while read -r v t c; do
			case "$c" in KUBE-* | CNI-*) ;; *) continue ;; esac
			local ipt=iptables
			[ "$v" = 6 ] && ipt=ip6tables
			$ipt -t "$t" -S | awk -v c="$c" '$1 == "-A" && $0 ~ "-j " c "( |$)" {sub(/^-A/, "-D"); print}' |
				while read -r rule; do eval "$ipt -t $t $rule" || true; done
			$ipt -t "$t" -F "$c" 2>/dev/null || true
			$ipt -t "$t" -X "$c" 2>/dev/null || true
		done < <(comm -13 "$SNAP/chains" <(chains))
	fi
	restore_sysctls
	local d
	for d in /sys/fs/cgroup/*/; do
		[ -d "$d/kubepods" ] || continue
		grep -qx "$d" "$SNAP/cgroups" 2>/dev/null && continue
		find "$d/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	if [ -f "$SNAP/paths" ]; then
		local p
		for p in "${OUTSIDE[@]}"; do
			[ "$p" = /run/netns ] && mountpoint -q /run/netns && continue
			if [ -e "$p" ] && ! grep -qx "$p" "$SNAP/paths"; then
				if [ "$p" = /run/netns ]; then rmdir "$p" 2>/dev/null || true; else rm -rf "$p"; fi
			fi
		done
	fi
	# Never recurse into a file system still mounted below $WORK.
	if [ -z "$(under_ours | grep -E "^$WORK(/|$)" || true)" ]; then rm -rf "$WORK"; fi
	local leaks
	leaks="$(leaks)"
	if [ -n "$leaks" ]; then
		log "left behind:"
		echo "$leaks" >&2
		return 1
	fi
	rm -rf "$SNAP"
	log "cluster down in $((SECONDS - t0)) s: nothing of ours left"
}

restore_sysctls() {
	[ -f "$SNAP/sysctls" ] || return 0
	local s v
	while read -r s v; do
		if [ "$v" != - ] && [ "$(cat "/proc/sys/$s" 2>/dev/null)" != "$v" ]; then echo "$v" >"/proc/sys/$s" || true; fi
	done <"$SNAP/sysctls"
}

# What "up" created and is still there, compared with the snapshot.
leaks() {
	local p
	for p in $(grep -laF -- "$WORK" /proc/[0-9]*/cmdline 2>/dev/null); do
		p=${p%/cmdline}
		[ "${p#/proc/}" = $$ ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
		echo "process ${p#/proc/}: $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | cut -c1-160)"
	done
	under_ours | sed 's/^/mount /'
	ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^nskc-' | sed 's/^/interface /'
	[ -f "$SNAP/chains" ] && comm -13 "$SNAP/chains" <(chains) | grep -E ' (KUBE|CNI)-' | sed 's/^/iptables chain /'
	for d in /sys/fs/cgroup/*/; do
		[ -d "$d/kubepods" ] && ! grep -qx "$d" "$SNAP/cgroups" 2>/dev/null && echo "cgroup ${d}kubepods"
	done
	if [ -f "$SNAP/paths" ]; then
		for p in "${OUTSIDE[@]}"; do
			[ "$p" = /run/netns ] && continue
			[ -e "$p" ] && ! grep -qx "$p" "$SNAP/paths" && echo "path $p"
		done
	fi
	if [ -f "$SNAP/sysctls" ]; then
		while read -r s v; do
			[ "$v" != - ] && [ "$(cat "/proc/sys/$s" 2>/dev/null)" != "$v" ] && echo "sysctl $s=$(cat "/proc/sys/$s") (was $v)"
		done <"$SNAP/sysctls"
	fi
	[ -e "$WORK" ] && echo "path $WORK"
	true
}

case "${1:-}" in
up | down)
	# One up or down at a time on this machine. flock(1) holds the lock on
	# a descriptor it closes for the script (-o): the components started by up
	# do not inherit it.
	rc=0
	flock -n -o -E 3 /run/lock/nsint-cluster.lock "$0" "locked-$1" || rc=$?
	[ "$rc" = 3 ] && log "another cluster.sh up or down is running, or a cluster refused to start under it"
	exit "$rc"
	;;
locked-up) up ;;
locked-down) down ;;
env) env_lines ;;
running) any_alive ;;
*) die "usage: $0 up|down|env|running" ;;
esac
