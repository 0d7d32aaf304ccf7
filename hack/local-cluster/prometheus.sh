#!/usr/bin/env bash
# A Prometheus of the test's own for the local cluster: Debian's prometheus
# binary (installed by hack/install-deps.sh prometheus; Debian's service is
# never started), run on 127.0.0.1 at a free port with its own configuration
# and data under DIR, scraping the pods whose prometheus.io/* annotations ask
# for it with the relabelling of the pod-discovery job docs/operations.md
# shows.
#
# Debian builds Prometheus without Kubernetes service discovery
# (kubernetes_sd_configs is rejected as an unknown field), so this script does
# the discovery: a loop lists the cluster's pods through the API server every
# second (kubectl with the cluster's kubeconfig) and writes them to a file_sd
# file with the meta labels kubernetes_sd_configs (role pod) would give them
# (__meta_kubernetes_namespace, _pod_name, _pod_ip and the prometheus.io
# annotations), so the job's relabel_configs are the documented ones, unchanged.
#
# The agents serve HTTPS and want a bearer token that may get /metrics: the
# job checks their certificates against the harness's CA (NSINT_CA, default
# the file cluster-up made) for the name nsint-agent.nsint.svc, and sends a
# token of the ServiceAccount nsint-local/prometheus, bound to deploy/'s
# nsint-metrics-reader (minted at start, kept in DIR). When COLLECTOR is set (an
# https:// URL, as cluster-up prints it) a second job scrapes the collector's
# /metrics the same way (name nsint-collector.nsint.svc).
#
#   prometheus.sh start DIR KUBECONFIG   start both; prints PROMETHEUS=http://127.0.0.1:<port>
#   prometheus.sh stop DIR               stop both by the PIDs start recorded in DIR, then remove DIR
#
# DIR must be a directory of the caller's (mktemp -d); stop is safe to run
# whatever start got to, and is what make e2e-cluster runs on every exit path.
# KUBECTL names the kubectl binary (default: kubectl on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

log() { printf '%s prometheus: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# Seconds between scrapes: short, so a test waits for a scrape briefly.
SCRAPE_INTERVAL=1s
NSINT_CA=${NSINT_CA:-/var/lib/nsint-cluster/nsint-pki/ca.crt}

write_config() {
	local dir=$1
	cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: nsint-agent
    file_sd_configs:
      - files: [$dir/pods.json]
        refresh_interval: $SCRAPE_INTERVAL
    tls_config:
      ca_file: $NSINT_CA
      server_name: nsint-agent.nsint.svc
    authorization:
      credentials_file: $dir/token
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "true", action: keep}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme], regex: "(https?)", target_label: __scheme__}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: (.+), target_label: __metrics_path__}
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: (.+);(.+)
        replacement: \$1:\$2
        target_label: __address__
      - {source_labels: [__meta_kubernetes_namespace], target_label: agent_namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: agent_pod}
YAML
	[ -n "${COLLECTOR:-}" ] || return 0
	cat >>"$dir/prometheus.yml" <<YAML
  - job_name: nsint-collector
    scheme: https
    static_configs:
      - targets: ["${COLLECTOR#https://}"]
    tls_config:
      ca_file: $NSINT_CA
      server_name: nsint-collector.nsint.svc
    authorization:
      credentials_file: $dir/token
YAML
}

# mint_token writes a token of nsint-local/prometheus (cluster-up's
# access.yaml) to DIR/token, readable by us only.
mint_token() {
	local dir=$1 kubeconfig=$2
	(
		umask 077
		"${KUBECTL:-kubectl}" --kubeconfig "$kubeconfig" -n nsint-local create token prometheus --duration 24h >"$dir/token.tmp"
	) || return 1
	mv "$dir/token.tmp" "$dir/token"
}

# list_pods writes the running pods that have an IP as file_sd targets with
# kubernetes_sd_configs' meta labels (jq writes the JSON).
list_pods() {
	local kubeconfig=$1 out=$2 pods
	# shellcheck disable=SC2016 # a JSONPath template, not a shell expansion
	pods=$("${KUBECTL:-kubectl}" --kubeconfig "$kubeconfig" get pods --all-namespaces \
		--field-selector status.phase=Running -o jsonpath='{range .items[*]}{.status.podIP}{"\t"}{.metadata.namespace}{"\t"}{.metadata.name}{"\t"}{.metadata.annotations.prometheus\.io/scrape}{"\t"}{.metadata.annotations.prometheus\.io/port}{"\t"}{.metadata.annotations.prometheus\.io/path}{"\t"}{.metadata.annotations.prometheus\.io/scheme}{"\n"}{end}') || return 1
	jq -Rn '[inputs | split("\t") | select(.[0] != "") | {targets: [.[0]], labels: {
		__meta_kubernetes_pod_ip: .[0], __meta_kubernetes_namespace: .[1], __meta_kubernetes_pod_name: .[2],
		__meta_kubernetes_pod_annotation_prometheus_io_scrape: .[3],
		__meta_kubernetes_pod_annotation_prometheus_io_port: .[4],
		__meta_kubernetes_pod_annotation_prometheus_io_path: .[5],
		__meta_kubernetes_pod_annotation_prometheus_io_scheme: .[6]}}]' <<<"$pods" >"$out.tmp" || return 1
	# Renamed into place: Prometheus never reads a half-written file.
	mv "$out.tmp" "$out"
}

# discover keeps DIR/pods.json current until it is killed.
discover() {
	local dir=$1 kubeconfig=$2
	while :; do
		list_pods "$kubeconfig" "$dir/pods.json" || log "listing pods failed; trying again"
		sleep 1
	done
}

# free_port prints a TCP port nothing listens on now (a start that loses the
# race to another process fails to bind and is retried with another port).
free_port() {
	local used port
	used=" $(ss -Htln | awk '{n = split($4, a, ":"); print a[n]}' | tr '\n' ' ') "
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 10000))
		[[ $used == *" $port "* ]] || {
			echo "$port"
			return
		}
	done
	die "no free port found"
}

# alive: pid runs (a child that exited stays a zombie until waited for, and
# kill -0 still finds a zombie).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $stat != *") Z "* ]]
}

start() {
	local dir=$1 kubeconfig=$2 port pid
	[ -d "$dir" ] || die "start: $dir is not a directory"
	[ -r "$kubeconfig" ] || die "start: cannot read kubeconfig $kubeconfig"
	"$here/../install-deps.sh" prometheus >&2
	[ -r "$NSINT_CA" ] || die "start: cannot read the CA file $NSINT_CA (NSINT_CA)"
	mint_token "$dir" "$kubeconfig" || die "cannot mint a token of nsint-local/prometheus"
	write_config "$dir"
	promtool check config "$dir/prometheus.yml" >&2 || die "invalid configuration $dir/prometheus.yml"
	mkdir -p "$dir/data"
	list_pods "$kubeconfig" "$dir/pods.json" || die "cannot list the cluster's pods"
	discover "$dir" "$kubeconfig" </dev/null >/dev/null 2>>"$dir/discover.log" &
	echo "$!" >"$dir/discover.pid"
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		# stdin and stdout away from the caller's: the caller reads our output
		# through a pipe that a child holding it would keep open.
		prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
			--web.listen-address="127.0.0.1:$port" </dev/null >>"$dir/prometheus.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/pid"
		for _ in $(seq 150); do
			alive "$pid" || break
			if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
				log "running pid=$pid addr=127.0.0.1:$port dir=$dir"
				echo "PROMETHEUS=http://127.0.0.1:$port"
				return
			fi
			sleep 0.2
		done
		if alive "$pid"; then
			tail -n 20 "$dir/prometheus.log" >&2
			die "pid $pid not ready after 30 s"
		fi
		wait "$pid" || true
		log "pid $pid exited before it was ready (port $port taken?); trying another port"
	done
	tail -n 20 "$dir/prometheus.log" >&2
	die "could not start"
}

stop() {
	local dir=$1 pid
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	if [ -s "$dir/discover.pid" ]; then
		pid=$(cat "$dir/discover.pid")
		# Ours only: the loop start left, a shell running this script.
		if alive "$pid" && grep -qz "prometheus.sh" "/proc/$pid/cmdline" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 50); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
	fi
	if [ -s "$dir/pid" ]; then
		pid=$(cat "$dir/pid")
		# Ours only: the PID recorded at start, still running our binary.
		if alive "$pid" && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(command -v prometheus)")" ]; then
			kill -TERM "$pid"
			for _ in $(seq 150); do
				alive "$pid" || break
				sleep 0.2
			done
			if alive "$pid"; then
				log "pid $pid still running after 30 s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
			log "stopped pid=$pid"
		fi
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start)
	[ $# -eq 3 ] || die "usage: $0 start DIR KUBECONFIG"
	start "$2" "$3"
	;;
stop)
	[ $# -eq 2 ] || die "usage: $0 stop DIR"
	stop "$2"
	;;
*) die "usage: $0 start DIR KUBECONFIG | stop DIR" ;;
esac
