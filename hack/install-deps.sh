#!/usr/bin/env bash
# Installs the Debian packages that building and testing nsint need. Idempotent:
# one dpkg query (a few tens of milliseconds) when everything is there; apt runs
# only when something is missing. make demo and make test run it themselves.
#
#   hack/install-deps.sh        everything: build, lint, tests, benchmarks (make test)
#   hack/install-deps.sh demo   only what make demo runs besides Go (ip, nsenter, ping, sysctl)
#   hack/install-deps.sh prometheus   only Debian's prometheus (make e2e-cluster runs the binary itself)
set -euo pipefail

demo=(iproute2 iputils-ping util-linux procps) # the demo's namespaces and traffic
prometheus=(prometheus jq)                     # e2e-cluster scrapes the agents (hack/local-cluster/prometheus.sh)
packages=(
	clang llvm libbpf-dev gcc-multilib # eBPF objects (bpf2go)
	clang-format-14                    # C format check (make lint)
	iproute2 iputils-ping netcat-openbsd iptables ethtool util-linux procps # test namespaces and traffic
	busybox-static tcpdump             # raw-socket ping (the VM initramfs uses the same busybox), a tap in the drop tests
	iperf3 bpftool                     # benchmarks and debugging
	prometheus jq                      # the cluster suite's Prometheus (the binary only: its service stays off) and its pod list
	chromium chromium-driver           # the collector page's browser test
	make git ca-certificates
)
case "${1:-all}" in
all) ;;
demo) packages=("${demo[@]}") ;;
prometheus) packages=("${prometheus[@]}") ;;
*) echo "usage: $0 [all|demo|prometheus]" >&2; exit 2 ;;
esac

# One query for all of them; a package dpkg has never heard of is simply not
# listed (dpkg-query then exits 1, which says nothing more).
installed=" $({ dpkg-query -W -f='${Package}:${Status}\n' "${packages[@]}" 2>/dev/null || true; } |
	sed -n 's/:install ok installed$//p' | tr '\n' ' ') "
missing=()
for p in "${packages[@]}"; do
	[[ $installed == *" $p "* ]] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	# The tests run the prometheus binary themselves. Debian's package would
	# start its service (listening on every address); on a systemd host it is
	# masked before the install, so it never starts.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
		systemctl mask prometheus.service >/dev/null
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "Go 1.26 is required (not found on PATH)" >&2; exit 1; }
