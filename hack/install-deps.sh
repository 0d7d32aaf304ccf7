#!/usr/bin/env bash
# Installs the Debian packages that building and testing nsint need. Idempotent;
# runs apt only when something is missing.
set -euo pipefail

packages=(
	clang llvm libbpf-dev gcc-multilib # eBPF objects (bpf2go)
	clang-format-14                    # C format check (make lint)
	iproute2 iputils-ping netcat-openbsd iptables ethtool util-linux procps # test namespaces and traffic
	busybox-static tcpdump             # raw-socket ping (the VM initramfs uses the same busybox), a tap in the drop tests
	iperf3 bpftool                     # benchmarks and debugging
	chromium chromium-driver           # the collector page's browser test
	make git ca-certificates
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "Go 1.26 is required (not found on PATH)" >&2; exit 1; }
