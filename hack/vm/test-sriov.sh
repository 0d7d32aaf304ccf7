#!/usr/bin/env bash
# make test-sriov: boots a Debian kernel under QEMU's software emulation with
# an emulated Intel 82576 (QEMU's igb: SR-IOV capable) on a QEMU-internal hub
# only — the VM reaches no network — and runs the SR-IOV tests there
# (hack/vm/tests-sriov; e2e/sriov_test.go): VFs made through sriov_numvfs,
# handed to pods as the SR-IOV CNI does, the real nsint-agent watching them.
# Prints one line per boot, then each VF the test found:
#   kernel <release>: attach=<tcx|tc> <N> passed, <M> failed, <K> skipped
#     VF <pod netns>/net1 driver=igbvf pci=<VF address> pf=<PF address>
#
# KERNELS    boots, each SUITE:ATTACH (as in test-kernels.sh). Default
#            "bookworm:tc" (Debian 12's 6.1, legacy tc): the short form CI
#            runs. The full form, KERNELS="bookworm:tc bookworm-backports:tcx",
#            adds Debian's 6.12 (TCX).
# VM_TIMEOUT seconds one boot may take, test included (default 600).
# Logs of the last run of each kernel: ${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm/out-sriov/<package>/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm
kernels=${KERNELS:-bookworm:tc}
bound=${VM_TIMEOUT:-600}

[ "$(id -u)" -eq 0 ] || { echo "hack/vm: run as root (installs packages; the guest runs as root anyway)" >&2; exit 1; }
"$here/install-deps.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"

t0=$(date +%s)
(
	cd "$repo"
	export CGO_ENABLED=0
	for p in ifacewatch e2e; do
		go test -c -vet=off -trimpath -ldflags '-s -w' -o "$work/bin/$p.test" "./$p"
	done
	go build -trimpath -ldflags '-s -w' -o "$work/bin/" ./cmd/nsint-agent ./cmd/nsint-collector
	go build -o "$work/summarize" ./hack/vm/summarize
)
echo "hack/vm: test binaries built in $(($(date +%s) - t0))s" >&2

# One igb (82576, SR-IOV) behind a PCIe root port, its only backend a port of
# QEMU's internal hub 0: no user, tap or socket networking, so no path out.
qemu_args="-device pcie-root-port,id=nsintrp0,chassis=1,slot=1 -netdev hubport,id=nsinthp0,hubid=0"
qemu_args+=" -device igb,bus=nsintrp0,netdev=nsinthp0"

failed=0
summaries=()
for k in $kernels; do
	suite=${k%%:*} attach=${k#*:}
	case $attach in tc | tcx) ;; *) echo "hack/vm: KERNELS entry $k: want SUITE:tc or SUITE:tcx" >&2; exit 1 ;; esac
	ktree=$("$here/fetch-kernel.sh" "$suite")/root
	pkgname=$(basename "$(dirname "$ktree")")
	out=$cache/out-sriov/$pkgname
	VM_EXTRA_MODULES="igb igbvf" "$here/build-initramfs.sh" "$ktree" "$work/bin" "$here/tests-sriov" \
		"$work/initramfs-$pkgname"
	args=(NSINT_SRIOV=1)
	[ "$attach" = tc ] && args+=(NSINT_NO_TCX=1)
	t1=$(date +%s)
	vmrc=0
	VM_QEMU_ARGS=$qemu_args VM_MEMORY=${VM_MEMORY:-1536} \
		"$here/boot.sh" "$ktree" "$work/initramfs-$pkgname" "$out" "$bound" "${args[@]}" || vmrc=$?
	echo "hack/vm: $pkgname booted and tested in $(($(date +%s) - t1))s (logs: $out)" >&2
	src=0
	"$work/summarize" -expect-attach "$attach" -list-vfs "$out/results.log" | tee "$out/summary.txt" || src=$?
	summaries+=("$(head -n1 "$out/summary.txt")")
	if ! grep -q '^  VF ' "$out/summary.txt"; then
		echo "hack/vm: no SR-IOV VF found in $pkgname" >&2
		failed=1
	fi
	if [ "$vmrc" -ne 0 ] || [ "$src" -ne 0 ]; then
		failed=1
	fi
done
if [ "${#summaries[@]}" -gt 1 ]; then
	printf '%s\n' "${summaries[@]}"
fi
echo "hack/vm: total $(($(date +%s) - t0))s" >&2
exit "$failed"
