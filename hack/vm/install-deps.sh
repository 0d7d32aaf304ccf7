#!/usr/bin/env bash
# Installs what the kernel-matrix VM needs from Debian: qemu-system-x86 from
# bookworm-backports (Debian 12's own qemu 7.2 lacks igb for the SR-IOV VM),
# busybox-static for the initramfs, the guest's ip/tc/nsenter/ping/sysctl/
# iptables (copied with their libraries), xz and zstd for compressed modules.
# Idempotent: writes its apt source once and runs apt only when something is missing.
set -euo pipefail

sources=/etc/apt/sources.list.d/nsint-bookworm-backports.list
line='deb http://deb.debian.org/debian bookworm-backports main'

need_update=0
if ! grep -qs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/* ; then
	[ "$(id -u)" -eq 0 ] || { echo "hack/vm: need root to add $sources" >&2; exit 1; }
	echo "$line" >"$sources"
	need_update=1
fi

have_qemu() {
	command -v qemu-system-x86_64 >/dev/null || return 1
	# The backports build (>= 8) is required: it has igb and a current TCG.
	local v
	v=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')
	[ "${v:-0}" -ge 8 ]
}

missing=()
have_qemu || missing+=(qemu)
for p in busybox-static iproute2 util-linux iputils-ping procps iptables xz-utils zstd; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || { echo "hack/vm: missing ${missing[*]}; run as root" >&2; exit 1; }
echo "hack/vm: installing ${missing[*]}" >&2
if [ "$need_update" -eq 1 ] || ! apt-cache policy qemu-system-x86 | grep -q bookworm-backports; then
	apt-get update -qq
fi
export DEBIAN_FRONTEND=noninteractive
for p in "${missing[@]}"; do
	case $p in
	qemu) apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null ;;
	*) apt-get install -y -qq --no-install-recommends "$p" >/dev/null ;;
	esac
done
